package server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/signal"
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
	LogPath     string // "": keep no log (--log-driver none)
	LogMaxSize  int64  // rotate the log before it grows past this many bytes; <= 0: never
	LogMaxFiles int    // log files kept in all when rotating; 0 means 1
	Runtime     string
	RuntimeRoot string
	Terminal    bool
	Stdin       bool
	StdinOnce   bool
}

// drainTimeout bounds how long the shim waits, after the init exited, for the output pipes to close. Without
// a pid namespace a daemonised child can hold them open forever; its later output is then not collected.
const drainTimeout = 2 * time.Second

// masterTimeout bounds the wait for a pty master the runtime should have sent before its create returned.
const masterTimeout = 10 * time.Second

// shutdownTimeout bounds how long the shim waits for slow attach clients to take their last frames.
const shutdownTimeout = 5 * time.Second

type shim struct {
	cfg    Config
	log    *logger
	reaper *reaper
	hub    *hub

	initPid int
	oom     oomCounter
	outputs []*os.File // read ends of the container's output (pipes, or the pty master)
	copied  sync.WaitGroup

	stdinMu sync.Mutex
	stdin   *os.File // write end of the container's stdin pipe; nil when closed or not wanted
	master  *os.File // pty master (tty mode)

	exited   chan struct{} // closed once exit.json is written
	exitJSON []byte

	hmu      sync.Mutex
	closing  bool // no new handlers once set
	handlers sync.WaitGroup
	ln       *os.File
}

// Run is the whole life of a shim: create the container, report on ready (one line, "ok <pid>" or
// "error <message>", then closed), serve clients until the init has exited, record the exit, clean up.
func Run(cfg Config, ready io.WriteCloser) error {
	s := &shim{cfg: cfg, log: newLogger(cfg.ID), hub: newHub(), exited: make(chan struct{})}
	if err := s.create(); err != nil {
		io.WriteString(ready, "error "+oneLine(err.Error())+"\n")
		ready.Close()
		s.log.printf("create failed: ", err.Error())
		return err
	}
	io.WriteString(ready, "ok "+strconv.Itoa(s.initPid)+"\n")
	ready.Close()

	go s.serve()
	s.waitExit()
	return nil
}

func (s *shim) path(name string) string { return s.cfg.StateDir + "/" + name }

// create runs the runtime's create and leaves the shim listening on its socket once the container is created.
// On failure nothing is left: no runtime state, no socket.
func (s *shim) create() error {
	cfg := s.cfg
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return errors.New("become child subreaper: " + err.Error())
	}
	// Keep alive through what a dying terminal or daemon could send.
	signal.Ignore(unix.SIGHUP, unix.SIGPIPE, unix.SIGINT)
	s.reaper = newReaper()
	if !strings.Contains(cfg.Runtime, "/") {
		p, err := lookPath(cfg.Runtime)
		if err != nil {
			return err
		}
		s.cfg.Runtime = p
		cfg.Runtime = p
	}

	// Without a log path (--log-driver none) the output is only passed to attached clients.
	var jl *jsonLog
	closeLog := func() {}
	if cfg.LogPath != "" {
		lf, err := openLogFile(cfg.LogPath, cfg.LogMaxSize, cfg.LogMaxFiles)
		if err != nil {
			return errors.New("open container log: " + err.Error())
		}
		jl = &jsonLog{f: lf, now: time.Now}
		closeLog = func() { lf.Close() }
	}

	var err error
	sock := s.path(proto.SocketFile)
	os.Remove(sock)
	if s.ln, err = listenUnix(sock); err != nil {
		closeLog()
		return err
	}
	fail := func(err error) error {
		s.ln.Close()
		os.Remove(sock)
		closeLog()
		return err
	}

	runtimeLog := s.path(proto.RuntimeLog)
	os.Remove(runtimeLog)
	pidFile := s.path(proto.InitPidFile)
	os.Remove(pidFile)
	args := []string{"create", "--bundle", cfg.Bundle, "--pid-file", pidFile}

	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fail(err)
	}
	defer devnull.Close()
	var (
		childEnds []*os.File // closed once the runtime has passed them on
		stderrR   *os.File
		consoleLn *os.File
		masterCh  chan masterResult
		stdio     = []*os.File{devnull, devnull, devnull}
		console   = s.path(proto.ConsoleSock)
	)
	closeAll := func() {
		for _, f := range childEnds {
			f.Close()
		}
		childEnds = nil
		s.closeOutputs()
		s.closeStdin()
	}
	if cfg.Terminal {
		os.Remove(console)
		if consoleLn, err = listenUnix(console); err != nil {
			return fail(errors.New("console socket: " + err.Error()))
		}
		defer os.Remove(console)
		defer consoleLn.Close()
		masterCh = make(chan masterResult, 1)
		go func() { masterCh <- receiveMaster(consoleLn) }()
		args = append(args, "--console-socket", console)
	} else {
		for i := 1; i <= 2; i++ {
			r, w, err := os.Pipe()
			if err != nil {
				closeAll()
				return fail(err)
			}
			stdio[i] = w
			childEnds = append(childEnds, w)
			s.outputs = append(s.outputs, r)
		}
		stderrR = s.outputs[1]
		if cfg.Stdin {
			r, w, err := os.Pipe()
			if err != nil {
				closeAll()
				return fail(err)
			}
			stdio[0], s.stdin = r, w
			childEnds = append(childEnds, r)
		}
	}
	args = append(args, cfg.ID)

	ch, err := s.runtimeStart(stdio, args...)
	if err != nil {
		closeAll()
		return fail(errors.New("run " + cfg.Runtime + " create: " + err.Error()))
	}
	ws := <-ch
	for _, f := range childEnds {
		f.Close()
	}
	childEnds = nil
	if ws != 0 {
		if cfg.Terminal {
			consoleLn.Close() // unblocks the receiver if the runtime never connected
		}
		msg := runtimeError(runtimeLog)
		if msg == "" && stderrR != nil {
			msg = drainMessage(stderrR)
		}
		if msg == "" {
			msg = cfg.Runtime + " create: exit status " + strconv.Itoa(exitCode(ws))
		}
		closeAll()
		if cfg.Terminal {
			if m := <-masterCh; m.f != nil {
				m.f.Close()
			}
		}
		// The runtime removes what it made when create fails; delete anyway so no state can linger.
		s.runRuntime("delete", "--force", cfg.ID)
		return fail(errors.New(msg))
	}

	pid, err := readPid(pidFile)
	if err == nil && cfg.Terminal {
		// A runtime that created a tty container has sent the master already, but the receiver may not have
		// taken the connection yet: wait for it rather than close the socket under it.
		var m masterResult
		select {
		case m = <-masterCh:
		case <-time.After(masterTimeout):
			consoleLn.Close()
			m = <-masterCh
		}
		if m.err != nil {
			err = m.err
		} else {
			s.master, s.outputs = m.f, []*os.File{m.f}
		}
	}
	if err != nil {
		closeAll()
		s.runRuntime("delete", "--force", cfg.ID)
		return fail(err)
	}
	s.initPid = pid
	s.oom = newOOMCounter(pid, cgroupRoot)

	streams := []string{"stdout", "stderr"}
	for i, f := range s.outputs {
		var lw *lineLog
		if jl != nil {
			lw = jl.stream(streams[i])
		}
		s.copied.Add(1)
		go s.copyOutput(f, byte(i+1), lw)
	}
	go func() {
		s.copied.Wait()
		if jl != nil && jl.err != nil {
			s.log.printf("writing the container log failed: ", jl.err.Error())
		}
		closeLog()
	}()
	if err := writeFileAtomic(s.path(proto.PidFile), []byte(strconv.Itoa(os.Getpid()))); err != nil {
		s.log.printf("write ", proto.PidFile, ": ", err.Error())
	}
	return nil
}

// copyOutput copies one output stream into the log (unless lw is nil) and to the attached clients until it ends.
func (s *shim) copyOutput(f *os.File, stream byte, lw *lineLog) {
	defer s.copied.Done()
	buf := make([]byte, 16<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if lw != nil {
				lw.Write(buf[:n])
			}
			s.hub.publish(stream, buf[:n])
		}
		if err != nil {
			// EIO is how a pty master reports that the last slave fd closed.
			if err != io.EOF && !errors.Is(err, unix.EIO) && !errors.Is(err, os.ErrClosed) {
				s.log.printf("read container output: ", err.Error())
			}
			break
		}
	}
	if lw != nil {
		lw.Close()
	}
}

// waitExit waits for the init, drains its output, records the exit, answers the waiters, deletes the runtime's
// container and stops serving.
func (s *shim) waitExit() {
	ws := <-s.reaper.wait(s.initPid)
	exitedAt := time.Now().UTC()
	s.closeStdin()

	drained := make(chan struct{})
	go func() { s.copied.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		s.log.printf("output still open ", drainTimeout.String(), " after the init exited; closing it")
		s.closeOutputs()
		<-drained
	}
	s.closeOutputs()
	s.hub.end()

	s.exitJSON = withOOMKilled(exitJSON(exitCode(ws), exitedAt, ""), s.oom.killed())
	if err := writeFileAtomic(s.path(proto.ExitFile), s.exitJSON); err != nil {
		s.log.printf("write ", proto.ExitFile, ": ", err.Error())
	}
	close(s.exited)

	// Delete after answering, off the path of `run --rm`. A daemon that creates the same id again at once
	// races this delete, so it deletes (--force, idempotent) itself before a re-create.
	if out, err := s.runRuntime("delete", "--force", s.cfg.ID); err != nil {
		s.log.printf("delete: ", err.Error(), ": ", out)
	}

	// Stop taking clients: one that comes now finds no socket and reads exit.json instead.
	os.Remove(s.path(proto.SocketFile))
	s.hmu.Lock()
	s.closing = true
	s.hmu.Unlock()
	s.ln.Close()

	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownTimeout):
		s.log.printf("clients still connected ", shutdownTimeout.String(), " after the exit; leaving")
	}
}

// exitJSON encodes exit.json as encoding/json would encode shim.Exit.
func exitJSON(code int, at time.Time, msg string) []byte {
	b := []byte(`{"code":`)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"exited_at":"`...)
	b = at.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if msg != "" {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, []byte(msg))
	}
	return append(b, '}')
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

func (s *shim) serve() {
	for {
		c, err := accept(s.ln)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				s.log.printf("accept: ", err.Error())
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

// handle serves one client connection: a request line, an answer line, and for attach the streams.
func (s *shim) handle(c *os.File) {
	defer s.handlers.Done()
	defer c.Close()
	br := bufio.NewReaderSize(c, 512)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return
	}
	words := strings.Fields(string(line))
	if len(words) == 0 {
		s.fail(c, proto.CodeInvalid, "empty request")
		return
	}
	switch words[0] {
	case proto.OpInfo:
		t := "0"
		if s.cfg.Terminal {
			t = "1"
		}
		x := "0"
		select {
		case <-s.exited:
			x = "1"
		default:
		}
		s.answer(c, "ok pid="+strconv.Itoa(s.initPid)+" terminal="+t+" exited="+x)
	case proto.OpStart:
		s.start(c)
	case proto.OpResize:
		s.resize(c, words[1:])
	case proto.OpWait:
		<-s.exited
		s.answer(c, "ok "+string(s.exitJSON))
	case proto.OpAttach:
		s.attach(c, br, words[1:])
	default:
		s.fail(c, proto.CodeInvalid, "unknown request "+strconv.Quote(words[0]))
	}
}

func (s *shim) answer(c *os.File, line string) error {
	_, err := io.WriteString(c, line+"\n")
	return err
}

func (s *shim) fail(c *os.File, code, msg string) error {
	return s.answer(c, "error "+code+" "+oneLine(msg))
}

func (s *shim) start(c *os.File) {
	select {
	case <-s.exited:
		s.fail(c, proto.CodeConflict, "container "+s.cfg.ID+" has already exited")
		return
	default:
	}
	out, err := s.runRuntime("start", s.cfg.ID)
	if err != nil && strings.Contains(out, "exec.fifo") && strings.Contains(out, "no such file or directory") {
		// A runc 1.1 race under heavy load: `runc start` read the exec fifo
		// (so the init was released and runs) and then failed to remove it.
		// The container did start; reporting a failure would leave it
		// running while recorded as created.
		s.log.printf("runc start: ", oneLine(out), " (the process was released; treating it as started)")
		err = nil
	}
	if err != nil {
		if out == "" {
			out = err.Error()
		}
		code := proto.CodeSystem
		if strings.Contains(out, "cannot start") {
			code = proto.CodeConflict
		}
		s.fail(c, code, out)
		return
	}
	s.answer(c, "ok")
}

func (s *shim) resize(c *os.File, args []string) {
	var hw [2]uint64
	for i := range hw {
		var err error
		if len(args) != 2 {
			err = errors.New("want height and width")
		} else {
			hw[i], err = strconv.ParseUint(args[i], 10, 16)
		}
		if err != nil {
			s.fail(c, proto.CodeInvalid, "resize: "+err.Error())
			return
		}
	}
	if s.master == nil {
		s.answer(c, "ok")
		return
	}
	rc, err := s.master.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			err = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(hw[0]), Col: uint16(hw[1])})
		})
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		s.fail(c, proto.CodeSystem, "resize the tty: "+err.Error())
		return
	}
	s.answer(c, "ok")
}

// attach registers the client for output, answers, then copies stdin in and output out until the output is
// over. The answer is written only after registration, so a client that attached before start misses nothing.
func (s *shim) attach(c *os.File, br *bufio.Reader, args []string) {
	var stdin, stdout, stderr bool
	for _, a := range args {
		switch a {
		case "stdin":
			stdin = true
		case "stdout":
			stdout = true
		case "stderr":
			stderr = true
		}
	}
	if s.cfg.Terminal { // a tty has one stream, delivered as stdout
		stdout, stderr = stdout || stderr, false
	}
	sub := s.hub.add(stdout, stderr)
	defer s.hub.remove(sub)
	if err := s.answer(c, "ok"); err != nil {
		return
	}
	if stdin {
		go s.copyStdin(br)
	}
	if err := sub.deliver(c); err != nil && !errors.Is(err, unix.EPIPE) && !errors.Is(err, unix.ECONNRESET) {
		s.log.printf("attach: ", err.Error())
	}
	shutdownWrite(c)
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
	buf := make([]byte, 8<<10)
	if _, err := io.CopyBuffer(onlyWriter{dst}, r, buf); err != nil {
		return // the client went away or the process closed its stdin: not an EOF to pass on
	}
	if s.cfg.StdinOnce && !s.cfg.Terminal {
		s.closeStdin()
	}
}

// onlyWriter hides ReadFrom, so io.CopyBuffer uses the small buffer given.
type onlyWriter struct{ io.Writer }

// runtimeArgs puts the global flags in front of a runtime command. The runtime's own logs go to runtime.log as
// JSON, where create's errors are read.
func (s *shim) runtimeArgs(args []string) []string {
	return append([]string{s.cfg.Runtime,
		"--root", s.cfg.RuntimeRoot,
		"--log", s.path(proto.RuntimeLog),
		"--log-format", "json",
	}, args...)
}

// runtimeStart starts a runtime command with the given stdio through the reaper.
func (s *shim) runtimeStart(stdio []*os.File, args ...string) (<-chan unix.WaitStatus, error) {
	return s.reaper.start(s.cfg.Runtime, s.runtimeArgs(args), &os.ProcAttr{
		Dir:   s.cfg.StateDir,
		Env:   os.Environ(),
		Files: stdio,
	})
}

// runRuntime runs a runtime command whose stdio is not the container's and returns its error output.
func (s *shim) runRuntime(args ...string) (string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		r.Close()
		w.Close()
		return "", err
	}
	ch, err := s.runtimeStart([]*os.File{devnull, w, w}, args...)
	w.Close()
	devnull.Close()
	if err != nil {
		r.Close()
		return "", err
	}
	out, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	r.Close()
	ws := <-ch
	msg := strings.TrimSpace(string(out))
	if ws != 0 {
		if msg == "" {
			msg = runtimeError(s.path(proto.RuntimeLog))
		}
		return msg, errors.New(s.cfg.Runtime + " " + args[0] + ": exit status " + strconv.Itoa(exitCode(ws)))
	}
	return msg, nil
}

// runtimeError returns the last error a runtime wrote to its JSON log (runc: {"level":"error","msg":"..."}).
func runtimeError(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var msg string
	for _, line := range bytes.Split(b, []byte("\n")) {
		if !bytes.Contains(line, []byte(`"level":"error"`)) && !bytes.Contains(line, []byte(`"level":"fatal"`)) {
			continue
		}
		if m, ok := jsonField(line, "msg"); ok && m != "" {
			msg = m
		}
	}
	return msg
}

// jsonField returns the string value of a top-level "key" in a one-line JSON object written by encoding/json
// (whose escapes strconv.Unquote understands).
func jsonField(line []byte, key string) (string, bool) {
	i := bytes.Index(line, []byte(`"`+key+`":"`))
	if i < 0 {
		return "", false
	}
	rest := line[i+len(key)+4:]
	for j := 0; j < len(rest); j++ {
		switch rest[j] {
		case '\\':
			j++
		case '"':
			v, err := strconv.Unquote(`"` + string(rest[:j]) + `"`)
			if err != nil {
				return string(rest[:j]), true
			}
			return v, true
		}
	}
	return "", false
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
		return 0, errors.New("read the init's pid: " + err.Error())
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, errors.New("read the init's pid: bad pid file " + strconv.Quote(string(b)))
	}
	return pid, nil
}

// lookPath finds a runtime named without a slash in PATH.
func lookPath(name string) (string, error) {
	for _, dir := range strings.Split(os.Getenv("PATH"), ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("runtime " + strconv.Quote(name) + " not found in $PATH")
}

// writeFileAtomic writes a file under a temporary name, syncs it and renames it into place, so a reader sees
// the old file or the whole new one.
func writeFileAtomic(path string, data []byte) error {
	dir := path[:strings.LastIndexByte(path, '/')+1]
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
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

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// logger writes the shim's diagnostics to its stderr (the daemon points it at shim.log).
type logger struct {
	mu     sync.Mutex
	prefix string
}

func newLogger(id string) *logger {
	if len(id) > 12 {
		id = id[:12]
	}
	return &logger{prefix: " berth-shim " + id + " "}
}

func (l *logger) printf(parts ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := time.Now().UTC().AppendFormat(nil, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, l.prefix...)
	for _, p := range parts {
		b = append(b, p...)
	}
	os.Stderr.Write(append(b, '\n'))
}
