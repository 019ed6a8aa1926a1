package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/shim/internal/proto"
)

// Config is what the daemon hands a shim on its command line.
type Config struct {
	ID          string
	Bundle      string
	StateDir    string
	LogPath     string
	Runtime     string
	RuntimeRoot string
	Terminal    bool
	Stdin       bool
	StdinOnce   bool
}

// drainTimeout bounds how long the shim waits, after the init exited, for the output pipes to close. Without
// a pid namespace a daemonised child can hold them open forever; its later output is then not collected.
const drainTimeout = 2 * time.Second

// shutdownTimeout bounds how long the shim waits for slow attach clients to take their last frames.
const shutdownTimeout = 5 * time.Second

type shim struct {
	cfg    Config
	log    *log.Logger
	reaper *reaper
	hub    *hub

	initPid int
	outputs []*os.File // read ends of the container's output (pipes, or the pty master)
	copied  sync.WaitGroup

	stdinMu sync.Mutex
	stdin   *os.File // write end of the container's stdin pipe; nil when closed or not wanted
	master  *os.File // pty master (tty mode)

	exited chan struct{} // closed once exit.json is written
	exit   proto.Exit

	hmu      sync.Mutex
	closing  bool // no new handlers once set
	handlers sync.WaitGroup
	ln       net.Listener
}

// Run is the whole life of a shim: create the container, report on ready (one line, "ok <pid>" or
// "error <message>", then closed), serve clients until the init has exited, record the exit, clean up.
func Run(cfg Config, ready io.WriteCloser) error {
	lg := log.New(os.Stderr, "berth-shim "+short(cfg.ID)+" ", log.LstdFlags|log.Lmicroseconds|log.LUTC)
	s := &shim{cfg: cfg, log: lg, hub: newHub(), exited: make(chan struct{})}

	ln, err := s.create()
	if err != nil {
		fmt.Fprintf(ready, "error %s\n", oneLine(err.Error()))
		ready.Close()
		lg.Printf("create failed: %v", err)
		return err
	}
	fmt.Fprintf(ready, "ok %d\n", s.initPid)
	ready.Close()

	s.ln = ln
	go s.serve(ln)
	s.waitExit()
	return nil
}

// create starts the runtime's create and returns the listening control socket once the container is created.
// On failure nothing is left: no runtime state, no socket.
func (s *shim) create() (net.Listener, error) {
	cfg := s.cfg
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("become child subreaper: %w", err)
	}
	ignoreSignals()
	s.reaper = newReaper()

	logFile, err := os.OpenFile(cfg.LogPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open container log: %w", err)
	}
	jl := &jsonLog{f: logFile, now: time.Now}

	sock := filepath.Join(cfg.StateDir, proto.SocketFile)
	os.Remove(sock)
	old := unix.Umask(0o077)
	ln, err := net.Listen("unix", sock)
	unix.Umask(old)
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("listen on %s: %w", sock, err)
	}
	fail := func(err error) (net.Listener, error) {
		ln.Close()
		os.Remove(sock)
		logFile.Close()
		return nil, err
	}

	runtimeLog := filepath.Join(cfg.StateDir, proto.RuntimeLog)
	os.Remove(runtimeLog)
	pidFile := filepath.Join(cfg.StateDir, proto.InitPidFile)
	os.Remove(pidFile)
	args := []string{"create", "--bundle", cfg.Bundle, "--pid-file", pidFile}

	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fail(err)
	}
	defer devnull.Close()
	var (
		childEnds   []*os.File // closed once the runtime has passed them on
		stdoutR     *os.File
		stderrR     *os.File
		consoleLn   *net.UnixListener
		masterCh    chan masterResult
		stdinR      = devnull
		stdoutW     = devnull
		stderrW     = devnull
		consolePath = filepath.Join(cfg.StateDir, proto.ConsoleSock)
	)
	closeChildEnds := func() {
		for _, f := range childEnds {
			f.Close()
		}
		childEnds = nil
	}
	if cfg.Terminal {
		os.Remove(consolePath)
		consoleLn, err = net.ListenUnix("unix", &net.UnixAddr{Name: consolePath, Net: "unix"})
		if err != nil {
			return fail(fmt.Errorf("listen on console socket: %w", err))
		}
		defer os.Remove(consolePath)
		defer consoleLn.Close()
		masterCh = make(chan masterResult, 1)
		go func() { masterCh <- receiveMaster(consoleLn) }()
		args = append(args, "--console-socket", consolePath)
	} else {
		if stdoutR, stdoutW, err = os.Pipe(); err != nil {
			return fail(err)
		}
		if stderrR, stderrW, err = os.Pipe(); err != nil {
			stdoutR.Close()
			stdoutW.Close()
			return fail(err)
		}
		childEnds = append(childEnds, stdoutW, stderrW)
		s.outputs = []*os.File{stdoutR, stderrR}
		if cfg.Stdin {
			r, w, err := os.Pipe()
			if err != nil {
				closeChildEnds()
				s.closeOutputs()
				return fail(err)
			}
			stdinR, s.stdin = r, w
			childEnds = append(childEnds, r)
		}
	}
	args = append(args, cfg.ID)

	cmd := s.runtime(args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, stdoutW, stderrW
	ch, err := s.reaper.start(cmd)
	if err != nil {
		closeChildEnds()
		s.closeOutputs()
		s.closeStdin()
		return fail(fmt.Errorf("run %s create: %w", cfg.Runtime, err))
	}
	ws := <-ch
	cmd.Process.Release()
	closeChildEnds()
	if cfg.Terminal {
		consoleLn.Close() // unblocks the receiver if the runtime never connected
	}
	if ws != 0 {
		msg := runtimeError(runtimeLog)
		if msg == "" && stderrR != nil {
			msg = drainMessage(stderrR)
		}
		if msg == "" {
			msg = fmt.Sprintf("exit status %d", exitCode(ws))
		}
		s.closeOutputs()
		s.closeStdin()
		if cfg.Terminal {
			if m := <-masterCh; m.f != nil {
				m.f.Close()
			}
		}
		// The runtime removes what it made when create fails; delete anyway so no state can linger.
		s.runRuntime("delete", "--force", cfg.ID)
		return fail(fmt.Errorf("%s", msg))
	}

	pid, err := readPid(pidFile)
	if err == nil && cfg.Terminal {
		m := <-masterCh
		if m.err != nil {
			err = fmt.Errorf("receive the pty master: %w", m.err)
		} else {
			s.master, s.outputs = m.f, []*os.File{m.f}
		}
	}
	if err != nil {
		s.closeOutputs()
		s.closeStdin()
		s.runRuntime("delete", "--force", cfg.ID)
		return fail(err)
	}
	s.initPid = pid

	streams := []string{"stdout", "stderr"}
	for i, f := range s.outputs {
		s.copied.Add(1)
		go s.copyOutput(f, byte(i+1), jl.stream(streams[i]))
	}
	go func() {
		s.copied.Wait()
		if jl.err != nil {
			s.log.Printf("writing the container log failed: %v", jl.err)
		}
		logFile.Close()
	}()
	if err := writeFileAtomic(filepath.Join(cfg.StateDir, proto.PidFile), []byte(strconv.Itoa(os.Getpid()))); err != nil {
		s.log.Printf("write %s: %v", proto.PidFile, err)
	}
	return ln, nil
}

// copyOutput copies one output stream into the log and to the attached clients until it ends.
func (s *shim) copyOutput(f *os.File, stream byte, lw *lineLog) {
	defer s.copied.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			lw.Write(buf[:n])
			s.hub.publish(stream, buf[:n])
		}
		if err != nil {
			// EIO is how a pty master reports that the last slave fd closed.
			if err != io.EOF && !errors.Is(err, unix.EIO) && !errors.Is(err, os.ErrClosed) {
				s.log.Printf("read container output: %v", err)
			}
			break
		}
	}
	lw.Close()
}

// waitExit waits for the init, drains its output and records the exit.
func (s *shim) waitExit() {
	ws := <-s.reaper.wait(s.initPid)
	exitedAt := time.Now().UTC()
	s.closeStdin()

	drained := make(chan struct{})
	go func() { s.copied.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		s.log.Printf("output still open %s after the init exited; closing it", drainTimeout)
		s.closeOutputs()
		<-drained
	}
	s.closeOutputs()
	s.hub.end()

	if out, err := s.runRuntime("delete", "--force", s.cfg.ID); err != nil {
		s.log.Printf("%s delete: %v: %s", s.cfg.Runtime, err, out)
	}

	s.exit = proto.Exit{Code: exitCode(ws), ExitedAt: exitedAt}
	b, _ := json.Marshal(s.exit)
	if err := writeFileAtomic(filepath.Join(s.cfg.StateDir, proto.ExitFile), b); err != nil {
		s.log.Printf("write %s: %v", proto.ExitFile, err)
	}
	close(s.exited)

	// Stop taking clients: one that comes now finds no socket and reads exit.json instead.
	os.Remove(filepath.Join(s.cfg.StateDir, proto.SocketFile))
	s.hmu.Lock()
	s.closing = true
	s.hmu.Unlock()
	s.ln.Close()

	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownTimeout):
		s.log.Printf("clients still connected %s after the exit; leaving", shutdownTimeout)
	}
}

func (s *shim) closeOutputs() {
	for _, f := range s.outputs {
		f.Close()
	}
}

func (s *shim) closeStdin() {
	s.stdinMu.Lock()
	defer s.stdinMu.Unlock()
	if s.stdin != nil {
		s.stdin.Close()
		s.stdin = nil
	}
}

// runtime builds a runtime command. Its own logs go to runtime.log as JSON, where create's errors are read.
func (s *shim) runtime(args ...string) *exec.Cmd {
	full := append([]string{
		"--root", s.cfg.RuntimeRoot,
		"--log", filepath.Join(s.cfg.StateDir, proto.RuntimeLog),
		"--log-format", "json",
	}, args...)
	cmd := exec.Command(s.cfg.Runtime, full...)
	cmd.Dir = s.cfg.StateDir
	return cmd
}

// runRuntime runs a runtime command whose stdio is not the container's and returns its error output.
func (s *shim) runRuntime(args ...string) (string, error) {
	cmd := s.runtime(args...)
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	cmd.Stdout, cmd.Stderr = w, w
	ch, err := s.reaper.start(cmd)
	w.Close()
	if err != nil {
		r.Close()
		return "", err
	}
	out, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	r.Close()
	ws := <-ch
	cmd.Process.Release()
	msg := strings.TrimSpace(string(out))
	if ws != 0 {
		if m := runtimeError(filepath.Join(s.cfg.StateDir, proto.RuntimeLog)); msg == "" {
			msg = m
		}
		return msg, fmt.Errorf("%s %s: exit status %d", s.cfg.Runtime, args[0], exitCode(ws))
	}
	return msg, nil
}

// runtimeError returns the last error a runtime wrote to its JSON log (runc: {"level":"error","msg":...}).
func runtimeError(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var msg string
	for _, line := range bytes.Split(b, []byte("\n")) {
		var e struct{ Level, Msg string }
		if json.Unmarshal(line, &e) == nil && (e.Level == "error" || e.Level == "fatal") && e.Msg != "" {
			msg = e.Msg
		}
	}
	return msg
}

// drainMessage reads what a failed runtime left on the container's stderr pipe, without waiting long.
func drainMessage(f *os.File) string {
	f.SetReadDeadline(time.Now().Add(time.Second))
	b, _ := io.ReadAll(io.LimitReader(f, 8<<10))
	return strings.TrimSpace(string(b))
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read the init's pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("read the init's pid: bad pid file %q", b)
	}
	return pid, nil
}

// writeFileAtomic writes a file under a temporary name, syncs it and renames it into place, so a reader sees
// the old file or the whole new one.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// handle serves one client connection: a request line, a response line, and for attach the streams.
func (s *shim) handle(c *net.UnixConn) {
	defer s.handlers.Done()
	defer c.Close()
	br := bufio.NewReaderSize(c, 4096)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return
	}
	var req proto.Request
	if err := json.Unmarshal(line, &req); err != nil {
		s.respond(c, proto.Response{Error: "bad request: " + err.Error(), Code: proto.CodeInvalid})
		return
	}
	switch req.Op {
	case proto.OpInfo:
		s.respond(c, proto.Response{Pid: s.initPid, Terminal: s.cfg.Terminal})
	case proto.OpStart:
		s.respond(c, s.start())
	case proto.OpResize:
		s.respond(c, s.resize(req.Height, req.Width))
	case proto.OpWait:
		<-s.exited
		exit := s.exit
		s.respond(c, proto.Response{Exit: &exit})
	case proto.OpAttach:
		s.attach(c, br, req)
	default:
		s.respond(c, proto.Response{Error: fmt.Sprintf("unknown op %q", req.Op), Code: proto.CodeInvalid})
	}
}

func (s *shim) respond(c net.Conn, r proto.Response) error {
	b, _ := json.Marshal(r)
	_, err := c.Write(append(b, '\n'))
	return err
}

func (s *shim) serve(ln net.Listener) {
	ul := ln.(*net.UnixListener)
	for {
		c, err := ul.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Printf("accept: %v", err)
			}
			return
		}
		s.hmu.Lock()
		if s.closing {
			s.hmu.Unlock()
			c.Close()
			return
		}
		s.handlers.Add(1)
		s.hmu.Unlock()
		go s.handle(c)
	}
}

func (s *shim) start() proto.Response {
	select {
	case <-s.exited:
		return proto.Response{Error: "container " + s.cfg.ID + " has already exited", Code: proto.CodeConflict}
	default:
	}
	out, err := s.runRuntime("start", s.cfg.ID)
	if err != nil {
		if out == "" {
			out = err.Error()
		}
		code := proto.CodeSystem
		if strings.Contains(out, "cannot start") {
			code = proto.CodeConflict
		}
		return proto.Response{Error: out, Code: code}
	}
	return proto.Response{}
}

func (s *shim) resize(h, w uint16) proto.Response {
	if s.master == nil {
		return proto.Response{}
	}
	rc, err := s.master.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			err = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: h, Col: w})
		})
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		return proto.Response{Error: fmt.Sprintf("resize the tty of container %s: %v", s.cfg.ID, err), Code: proto.CodeSystem}
	}
	return proto.Response{}
}

// attach registers the client for output, answers, then copies stdin in and output out until the output is
// over. The answer is written only after registration, so a client that attached before start misses nothing.
func (s *shim) attach(c *net.UnixConn, br *bufio.Reader, req proto.Request) {
	stdout, stderr := req.Stdout, req.Stderr
	if s.cfg.Terminal { // a tty has one stream, delivered as stdout
		stdout, stderr = stdout || stderr, false
	}
	sub := s.hub.add(stdout, stderr)
	defer s.hub.remove(sub)
	if err := s.respond(c, proto.Response{Terminal: s.cfg.Terminal}); err != nil {
		return
	}
	if req.Stdin {
		go s.copyStdin(br)
	}
	if err := sub.deliver(c); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Printf("attach: %v", err)
	}
}

// copyStdin copies one client's stdin into the container. At the client's EOF (its half-close) the process's
// stdin is closed when StdinOnce is set; a tty's master stays open.
func (s *shim) copyStdin(r io.Reader) {
	var dst *os.File
	s.stdinMu.Lock()
	if s.cfg.Terminal {
		dst = s.master
	} else {
		dst = s.stdin
	}
	s.stdinMu.Unlock()
	if dst == nil {
		io.Copy(io.Discard, r)
		return
	}
	_, err := io.Copy(dst, r)
	if err != nil {
		return // the client went away or the process closed its stdin: not an EOF to pass on
	}
	if s.cfg.StdinOnce && !s.cfg.Terminal {
		s.closeStdin()
	}
}
