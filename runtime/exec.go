package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"
	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// ExecIO is where an exec'd process's standard streams go.
type ExecIO struct {
	Stdin          io.Reader // nil = no stdin
	Stdout, Stderr io.Writer // with Terminal everything goes to Stdout
	Terminal       bool
	Height, Width  uint16 // initial console size
}

// Errors a start failure matches besides its errdefs class, so callers can
// pick the exit code Docker uses.
var (
	// ErrCommandNotFound: the executable does not exist (exit code 127).
	ErrCommandNotFound = errors.New("command not found")
	// ErrCommandNotExecutable: permission denied or a directory (exit code 126).
	ErrCommandNotExecutable = errors.New("command not executable")
)

// StartError is the runtime's refusal to start a process, with runc's
// message. It is an errdefs.ErrInvalidArgument and, when the message says
// so, ErrCommandNotFound or ErrCommandNotExecutable.
type StartError struct {
	Msg  string
	kind error
}

func (e *StartError) Error() string { return e.Msg }

// Is reports the class and the kind of failure.
func (e *StartError) Is(target error) bool {
	return target == errdefs.ErrInvalidArgument || (e.kind != nil && target == e.kind)
}

// ExitCode is the code Docker reports for a process that failed to start:
// 127 not found, 126 not executable, 126 otherwise.
func (e *StartError) ExitCode() int {
	if e.kind == ErrCommandNotFound {
		return 127
	}
	return 126
}

// NewStartError classes runc's message about a failed start ("exec:
// \"nope\": executable file not found in $PATH" -> ErrCommandNotFound,
// "permission denied" / "is a directory" -> ErrCommandNotExecutable).
// The daemon uses it for container starts too.
func NewStartError(prefix, runcMsg string) *StartError {
	msg := runcMessage(runcMsg)
	e := &StartError{Msg: prefix + msg}
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "executable file not found"), strings.Contains(low, "no such file or directory"):
		e.kind = ErrCommandNotFound
	case strings.Contains(low, "permission denied"), strings.Contains(low, "is a directory"):
		e.kind = ErrCommandNotExecutable
	}
	return e
}

// ExecProcess is a process started in a running container by Exec.
type ExecProcess struct {
	id       string
	pid      int
	terminal console.Console // the container's pty master, nil without Terminal
	stdinW   *os.File        // feeds the process's stdin, nil without stdin or with Terminal
	tmp      string

	stdinOnce sync.Once
	copies    sync.WaitGroup
	exited    chan struct{} // closed when runc exec (or the terminal reaper) returned
	runErr    error         // runc exec's result, valid after exited
	waitOnce  sync.Once
	exitCode  int
	waitErr   error
}

// execIO hands go-runc the files runc exec gets as its stdio. With reaper
// set, runc is started through the terminal reaper (see execReaper).
type execIO struct {
	stdin, stdout, stderr *os.File // runc's ends
	reaperPidFile         string   // non-empty: run runc under the reaper
}

func (e *execIO) Close() error           { e.CloseAfterStart(); return nil }
func (e *execIO) Stdin() io.WriteCloser  { return nil }
func (e *execIO) Stdout() io.ReadCloser  { return nil }
func (e *execIO) Stderr() io.ReadCloser  { return nil }
func (e *execIO) CloseAfterStart() error { closeFiles(e.stdin, e.stdout, e.stderr); return nil }
func (e *execIO) Set(cmd *exec.Cmd) {
	if e.stdin != nil {
		cmd.Stdin = e.stdin
	}
	cmd.Stdout, cmd.Stderr = e.stdout, e.stderr
	if e.reaperPidFile != "" {
		// Same runc command line, run by our own binary acting as a
		// subreaper: argv = reaper name, pid file, runc path, runc args.
		args := append([]string{execReaperName, e.reaperPidFile, cmd.Path}, cmd.Args[1:]...)
		cmd.Path, cmd.Args = "/proc/self/exe", args
		cmd.Env = append(cmd.Environ(), execReaperEnv+"=1")
		// Its own process group: a Ctrl-C meant for the daemon's group
		// must not kill the reaper and orphan the process.
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Setpgid = true
	}
}

func closeFiles(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// gate holds a stream back until the process is known to have started:
// before that, what arrives may be runc's own error message.
type gate struct {
	mu     sync.Mutex
	open   bool
	buf    bytes.Buffer
	target io.Writer
}

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.open {
		return g.buf.Write(p)
	}
	if g.target == nil {
		return len(p), nil
	}
	return g.target.Write(p)
}

// release lets the held bytes and everything after them through.
func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = true
	if g.target != nil && g.buf.Len() > 0 {
		_, _ = g.target.Write(g.buf.Bytes())
	}
	g.buf.Reset()
}

func (g *gate) held() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

// Exec starts p inside container id with `runc exec` and returns once the
// process runs. Without a terminal runc stays in the foreground as the
// process's parent: it forwards signals, proxies the pipes and exits with
// the process's status. With a terminal runc runs `--detach
// --console-socket` under a per-exec reaper (see execReaper) that exits
// with the process's status, and the container's pty master is ours: we
// copy through it and resize it directly. Either way no reaper is needed
// in the daemon. A failed start is a *StartError carrying runc's message.
func (r *Runtime) Exec(ctx context.Context, id string, p specs.Process, eio ExecIO) (*ExecProcess, error) {
	if len(p.Args) == 0 {
		return nil, errdefs.InvalidArgument("No exec command specified")
	}
	p.Terminal = eio.Terminal
	if eio.Terminal && eio.Height > 0 && eio.Width > 0 {
		p.ConsoleSize = &specs.Box{Height: uint(eio.Height), Width: uint(eio.Width)}
	} else {
		p.ConsoleSize = nil
	}
	tmp, err := os.MkdirTemp("", "berth-exec-")
	if err != nil {
		return nil, errdefs.System("exec in container %s: %w", id, err)
	}
	ep := &ExecProcess{id: id, tmp: tmp, exited: make(chan struct{})}
	rio := &execIO{}
	var runcErr bytes.Buffer // runc's own messages (terminal mode)
	var errGate *gate        // process stderr, held until started (pipe mode)
	var local []*os.File     // our ends, closed on failure
	var sock *runc.Socket    // receives the container's pty master (terminal mode)
	var masterC chan masterResult
	fail := func(err error) (*ExecProcess, error) {
		if sock != nil {
			// Ends a pending Accept; a master runc sent but we did not
			// accept is dropped with the socket.
			sock.Close()
		}
		if masterC != nil {
			// runc may have sent a master before it failed.
			go func() {
				if res := <-masterC; res.master != nil {
					res.master.Close()
				}
			}()
		}
		rio.CloseAfterStart()
		closeFiles(local...)
		if ep.terminal != nil {
			ep.terminal.Close()
		}
		os.RemoveAll(tmp)
		return nil, err
	}

	pidFile := filepath.Join(tmp, "pid")
	if eio.Terminal {
		// runc allocates the container's terminal and sends us its master
		// over a console socket (runc exec --detach --console-socket, as
		// containerd's shim does): one terminal, one output translation,
		// resized directly.
		if sock, err = runc.NewTempConsoleSocket(); err != nil {
			sock = nil
			return fail(errdefs.System("exec in container %s: create console socket: %w", id, err))
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			return fail(errdefs.System("exec in container %s: %w", id, err))
		}
		local = append(local, errR)
		rio.stderr, rio.reaperPidFile = errW, pidFile
		ep.copies.Add(1)
		go func() {
			defer ep.copies.Done()
			_, _ = io.Copy(&runcErr, errR)
			errR.Close()
		}()
	} else {
		if eio.Stdin != nil {
			inR, inW, err := os.Pipe()
			if err != nil {
				return fail(errdefs.System("exec in container %s: %w", id, err))
			}
			rio.stdin, ep.stdinW = inR, inW
			local = append(local, inW)
			go func() {
				_, _ = io.Copy(inW, eio.Stdin)
				ep.CloseStdin()
			}()
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			return fail(errdefs.System("exec in container %s: %w", id, err))
		}
		rio.stdout = outW
		local = append(local, outR)
		errR, errW, err := os.Pipe()
		if err != nil {
			return fail(errdefs.System("exec in container %s: %w", id, err))
		}
		rio.stderr = errW
		local = append(local, errR)
		errGate = &gate{target: eio.Stderr}
		ep.copies.Add(2)
		go func() {
			defer ep.copies.Done()
			copyOut(eio.Stdout, outR)
			outR.Close()
		}()
		go func() {
			defer ep.copies.Done()
			_, _ = io.Copy(errGate, errR)
			errR.Close()
		}()
	}

	started := make(chan int, 1)
	// The process outlives the request that started it.
	runCtx := context.WithoutCancel(ctx)
	go func() {
		opts := &runc.ExecOpts{IO: rio, PidFile: pidFile, Started: started}
		if sock != nil {
			opts.ConsoleSocket, opts.Detach = sock, true
		}
		ep.runErr = r.runc.Exec(runCtx, id, p, opts)
		close(ep.exited)
	}()
	if sock != nil {
		masterC = make(chan masterResult, 1)
		go func() {
			m, err := sock.ReceiveMaster()
			masterC <- masterResult{m, err}
		}()
	}
	if _, ok := <-started; !ok {
		// runc itself could not be started.
		<-ep.exited
		return fail(errdefs.System("exec in container %s: start %s: %v", id, r.binary, ep.runErr))
	}

	// Started means runc runs; the process runs once runc wrote its pid.
	if err := ep.awaitPid(pidFile); err != nil {
		ep.copies.Wait()
		msg := runcErr.String()
		if errGate != nil {
			msg = errGate.held()
		}
		if strings.TrimSpace(msg) == "" {
			msg = ep.runErr.Error()
		}
		fail(nil)
		return nil, execStartError(id, msg)
	}
	if errGate != nil {
		errGate.release()
	}
	if masterC != nil {
		// The process runs, so runc init sent the master before it exec'd:
		// it is accepted or waiting in the socket's queue. Only if the
		// process already exited and it still is not there, give up.
		res, got := masterResult{}, false
		select {
		case res, got = <-masterC:
		case <-ep.exited:
			select {
			case res, got = <-masterC:
			case <-time.After(10 * time.Second):
				res.err = errors.New("runc sent no terminal")
			}
		}
		if got {
			masterC = nil // consumed: fail must not wait for it
		}
		if res.err != nil {
			select {
			case <-ep.exited:
			default:
				_ = syscall.Kill(ep.pid, syscall.SIGKILL)
				<-ep.exited
			}
			ep.copies.Wait()
			fail(nil)
			return nil, errdefs.System("exec in container %s: receive terminal: %w", id, res.err)
		}
		sock.Close()
		ep.terminal = res.master
		ep.copies.Add(1)
		go func() {
			defer ep.copies.Done()
			copyOut(eio.Stdout, res.master)
		}()
		if eio.Stdin != nil {
			go func() { _, _ = io.Copy(res.master, eio.Stdin) }()
		}
	}
	return ep, nil
}

type masterResult struct {
	master console.Console
	err    error
}

// awaitPid waits until runc wrote the process's pid (it started) or runc
// exited without writing it (it failed to start).
func (p *ExecProcess) awaitPid(pidFile string) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if pid, err := readPid(pidFile); err == nil {
			p.pid = pid
			return nil
		}
		select {
		case <-p.exited:
			pid, err := readPid(pidFile)
			if err == nil {
				p.pid = pid
			}
			return err
		case <-tick.C:
		}
	}
}

// execStartError classes runc's message about an exec that did not start.
func execStartError(id, msg string) error {
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "container does not exist"):
		return errdefs.NotFound("No such container: %s", id)
	case strings.Contains(low, "paused container"):
		return errdefs.Conflict("Container %s is paused, unpause the container before exec", id)
	case strings.Contains(low, "stopped container"), strings.Contains(low, "not running"):
		return errdefs.Conflict("Container %s is not running", id)
	}
	return NewStartError("OCI runtime exec failed: ", msg)
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// copyOut copies a process stream to w (discarding without a writer) until
// EOF, or EIO from a terminal whose other side closed.
func copyOut(w io.Writer, r io.Reader) {
	if w == nil {
		w = io.Discard
	}
	_, _ = io.Copy(w, r)
}

// Pid is the host pid of the exec'd process.
func (p *ExecProcess) Pid() int { return p.pid }

// Resize changes the process's terminal size; without a terminal it does
// nothing.
func (p *ExecProcess) Resize(height, width uint16) error {
	if p.terminal == nil {
		return nil
	}
	select {
	case <-p.exited:
		return errdefs.Conflict("exec process %d in container %s has exited", p.pid, p.id)
	default:
	}
	if err := p.terminal.Resize(console.WinSize{Height: height, Width: width}); err != nil {
		return errdefs.System("resize terminal of exec process %d in container %s: %w", p.pid, p.id, err)
	}
	return nil
}

// CloseStdin closes the process's stdin (the attached client half-closed).
// With a terminal there is nothing to close: the terminal stays open.
func (p *ExecProcess) CloseStdin() error {
	p.stdinOnce.Do(func() {
		if p.stdinW != nil {
			p.stdinW.Close()
		}
	})
	return nil
}

// Wait returns the process's exit code once it exited and all its output
// was copied.
func (p *ExecProcess) Wait() (int, error) {
	p.waitOnce.Do(func() {
		<-p.exited
		p.copies.Wait()
		if p.terminal != nil {
			p.terminal.Close()
		}
		p.CloseStdin()
		os.RemoveAll(p.tmp)
		err := p.runErr
		var ee *runc.ExitError
		switch {
		case err == nil:
			p.exitCode = 0
		case errors.As(err, &ee):
			p.exitCode = ee.Status
		default:
			p.exitCode = -1
			p.waitErr = errdefs.System("wait for exec process %d in container %s: %w", p.pid, p.id, err)
		}
	})
	return p.exitCode, p.waitErr
}

// Signal sends sig to the exec'd process.
func (p *ExecProcess) Signal(sig syscall.Signal) error {
	select {
	case <-p.exited:
		return errdefs.Conflict("exec process %d in container %s has exited", p.pid, p.id)
	default:
	}
	if err := syscall.Kill(p.pid, sig); err != nil {
		return errdefs.System("signal exec process %d in container %s: %w", p.pid, p.id, err)
	}
	return nil
}

// The terminal reaper: runc exec --detach exits once the process started,
// and the process is re-parented to the nearest child subreaper. Rather
// than making the daemon a subreaper (it would inherit, and have to reap,
// every orphan of its other children, racing os/exec), Exec runs runc
// through a re-exec of the daemon's own binary that is a subreaper for this
// one exec: it waits for runc, then for the process named in runc's pid
// file, and exits with the process's status (128+N for signal N), exactly
// like a foreground runc exec.
const (
	execReaperName = "berth-exec-reaper"
	execReaperEnv  = "_BERTH_EXEC_REAPER"
)

// RunExecReaper must be called first thing in the main of every program that
// uses Exec with a terminal (berthd, and this package's tests): when the
// process is the re-executed reaper it does the reaper's work and exits;
// otherwise it returns at once. It is explicit rather than an init() so the
// program's start-up stays visible in its main.
func RunExecReaper() {
	if os.Getenv(execReaperEnv) != "1" || len(os.Args) < 3 || os.Args[0] != execReaperName {
		return
	}
	os.Exit(execReaper(os.Args[1], os.Args[2], os.Args[3:]))
}

// execReaper runs runcPath with args, then waits for the process whose pid
// runc wrote to pidFile, and returns its exit code. When runc fails (no pid
// file), it returns runc's code; runc's message is on the shared stderr.
func execReaper(pidFile, runcPath string, args []string) int {
	_ = os.Unsetenv(execReaperEnv)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "exec reaper: become child subreaper: %v\n", err)
		return 255
	}
	proc, err := os.StartProcess(runcPath, append([]string{runcPath}, args...), &os.ProcAttr{
		Env:   os.Environ(),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "exec reaper: start %s: %v\n", runcPath, err)
		return 255
	}
	exited := map[int]int{} // reaped pid -> exit code
	target := 0
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			// No child left before the process was seen: nothing to report.
			fmt.Fprintf(os.Stderr, "exec reaper: wait: %v\n", err)
			return 255
		}
		code := ws.ExitStatus()
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		exited[pid] = code
		if pid == proc.Pid {
			// runc exited: the process started iff runc wrote its pid.
			if target, err = readPid(pidFile); err != nil || target <= 0 {
				if code == 0 {
					code = 255
				}
				return code
			}
		}
		if target > 0 {
			if c, ok := exited[target]; ok {
				return c
			}
		}
	}
}
