package runtime

import (
	"bytes"
	"context"
	"errors"
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
	terminal console.Console // our end of the terminal, nil without Terminal
	stdinW   *os.File        // feeds the process's stdin, nil without stdin or with Terminal
	tmp      string

	stdinOnce sync.Once
	copies    sync.WaitGroup
	exited    chan struct{} // closed when runc exec returned
	runErr    error         // runc exec's result, valid after exited
	waitOnce  sync.Once
	exitCode  int
	waitErr   error
}

// execIO hands go-runc the files runc exec gets as its stdio, and makes runc
// a session leader with our pty as controlling terminal when there is one.
type execIO struct {
	stdin, stdout, stderr *os.File // runc's ends
	ctty                  bool
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
	if e.ctty {
		cmd.SysProcAttr.Setsid = true
		cmd.SysProcAttr.Setctty = true
		cmd.SysProcAttr.Ctty = 0 // the child's stdin, our pty's slave
		cmd.SysProcAttr.Setpgid = false
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
// process runs. runc stays in the foreground as the process's parent: it
// forwards signals, proxies the terminal and exits with the process's
// status, so no reaper is needed in the daemon. A failed start is a
// *StartError carrying runc's message.
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
	fail := func(err error) (*ExecProcess, error) {
		rio.CloseAfterStart()
		closeFiles(local...)
		if ep.terminal != nil {
			ep.terminal.Close()
		}
		os.RemoveAll(tmp)
		return nil, err
	}

	if eio.Terminal {
		master, slavePath, err := console.NewPty()
		if err != nil {
			return fail(errdefs.System("exec in container %s: allocate terminal: %w", id, err))
		}
		ep.terminal = master
		// Raw from the start: runc makes it raw too, but input that arrives
		// before must not be echoed or line-buffered by this outer terminal.
		if err := master.SetRaw(); err != nil {
			return fail(errdefs.System("exec in container %s: set terminal raw: %w", id, err))
		}
		if eio.Height > 0 && eio.Width > 0 {
			_ = master.Resize(console.WinSize{Height: eio.Height, Width: eio.Width})
		}
		slave, err := os.OpenFile(slavePath, os.O_RDWR|syscall.O_NOCTTY, 0)
		if err != nil {
			return fail(errdefs.System("exec in container %s: open terminal: %w", id, err))
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			slave.Close()
			return fail(errdefs.System("exec in container %s: %w", id, err))
		}
		local = append(local, errR)
		rio.stdin, rio.stdout, rio.stderr, rio.ctty = slave, slave, errW, true
		ep.copies.Add(2)
		go func() {
			defer ep.copies.Done()
			copyOut(eio.Stdout, master)
		}()
		go func() {
			defer ep.copies.Done()
			_, _ = io.Copy(&runcErr, errR)
			errR.Close()
		}()
		if eio.Stdin != nil {
			go func() { _, _ = io.Copy(master, eio.Stdin) }()
		}
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

	pidFile := filepath.Join(tmp, "pid")
	started := make(chan int, 1)
	// The process outlives the request that started it.
	runCtx := context.WithoutCancel(ctx)
	go func() {
		ep.runErr = r.runc.Exec(runCtx, id, p, &runc.ExecOpts{IO: rio, PidFile: pidFile, Started: started})
		close(ep.exited)
	}()
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
	return ep, nil
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
