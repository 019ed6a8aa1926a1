package shim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/shim/internal/proto"
)

// Options say which container a shim monitors and how.
type Options struct {
	ID          string // container id (64 hex)
	Bundle      string // OCI bundle dir: config.json written, rootfs/ already mounted by the daemon
	StateDir    string // dir for shim.sock, shim.pid, exit.json (the daemon passes <exec-root>/containers/<id>)
	LogPath     string // json-file log (<data-root>/containers/<id>/<id>-json.log), open O_APPEND, create 0640; "": none
	LogMaxSize  int64  // json-file max-size in bytes: rotate before the log grows past it; <= 0: never
	LogMaxFiles int    // json-file max-file: files kept in all (<LogPath>, <LogPath>.1 ...); 0 means 1
	Runtime     string // OCI runtime binary, e.g. "runc" or "/usr/sbin/runc"
	RuntimeRoot string // value for the runtime's --root (state dir of runc), e.g. <exec-root>/runtime/runc
	ShimBinary  string // path of the berth-shim executable to launch
	Terminal    bool   // config.json has process.terminal=true: use --console-socket, hold the pty master
	Stdin       bool   // OpenStdin: give the process a stdin pipe (otherwise /dev/null)
	StdinOnce   bool   // close the process's stdin when the first attached stdin stream reaches EOF
}

// Exit is how the container's init ended, as recorded in <StateDir>/exit.json.
type Exit struct {
	Code     int       `json:"code"` // exit status, or 128+signal if killed by a signal
	ExitedAt time.Time `json:"exited_at"`
	Error    string    `json:"error,omitempty"`
	// OOMKilled says the kernel's OOM killer killed a process of the container during this run.
	OOMKilled bool `json:"oom_killed,omitempty"`
}

// Client talks to one shim. It holds no connection between calls, so it is cheap to keep and safe to use
// from several goroutines; every call dials <StateDir>/shim.sock.
type Client struct {
	id       string
	stateDir string
	pid      int
	terminal bool
	exited   bool // as of Connect
}

// maxSocketPath is the room sockaddr_un has for a path.
const maxSocketPath = 107

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)

func (o *Options) validate() error {
	switch {
	case !validID.MatchString(o.ID):
		return errdefs.InvalidArgument("start shim: invalid container id %q", o.ID)
	case o.Bundle == "", o.StateDir == "", o.RuntimeRoot == "", o.ShimBinary == "":
		return errdefs.InvalidArgument("start shim for container %s: Bundle, StateDir, RuntimeRoot and ShimBinary are required", o.ID)
	case o.LogPath == "" && (o.LogMaxSize > 0 || o.LogMaxFiles > 1):
		return errdefs.InvalidArgument("start shim for container %s: log max-size and max-file need a LogPath", o.ID)
	case o.LogMaxFiles < 0:
		return errdefs.InvalidArgument("start shim for container %s: log max-file %d cannot be less than 1", o.ID, o.LogMaxFiles)
	case o.LogMaxFiles > 1 && o.LogMaxSize <= 0:
		return errdefs.InvalidArgument("start shim for container %s: log max-file %d needs a max-size", o.ID, o.LogMaxFiles)
	case len(filepath.Join(o.StateDir, proto.ConsoleSock)) > maxSocketPath:
		return errdefs.InvalidArgument("start shim for container %s: state dir %s is too long for a unix socket path", o.ID, o.StateDir)
	}
	return nil
}

// Start launches a detached berth-shim (own session, stdio on /dev/null and <StateDir>/shim.log) that runs
// `<runtime> --root R create ...` and returns once the container is created but not started. If create
// fails, the error carries the runtime's own message and no shim is left behind.
//
// While the daemon lives, the shim is its child and is reaped by a goroutine started here; after the daemon
// dies the shim is inherited by init (or the nearest subreaper).
func Start(ctx context.Context, o Options) (*Client, error) {
	if o.Runtime == "" {
		o.Runtime = "runc"
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, errdefs.System("start shim for container %s: create state dir: %v", o.ID, err)
	}
	lock, err := lockStateDir(ctx, o.ID, o.StateDir)
	if err != nil {
		return nil, err
	}
	defer lock.Close() // the shim holds its own copy of the lock from here on
	// A restarted container reuses its state dir: an old exit must not answer for the new run.
	for _, f := range []string{proto.ExitFile, proto.PidFile, proto.InitPidFile} {
		if err := os.Remove(filepath.Join(o.StateDir, f)); err != nil && !os.IsNotExist(err) {
			return nil, errdefs.System("start shim for container %s: remove stale %s: %v", o.ID, f, err)
		}
	}
	logf, err := os.OpenFile(filepath.Join(o.StateDir, proto.LogFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, errdefs.System("start shim for container %s: open shim log: %v", o.ID, err)
	}
	defer logf.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, errdefs.System("start shim for container %s: %v", o.ID, err)
	}
	defer devnull.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, errdefs.System("start shim for container %s: ready pipe: %v", o.ID, err)
	}
	defer readyR.Close()

	args := []string{filepath.Base(o.ShimBinary),
		"-id", o.ID, "-bundle", o.Bundle, "-state-dir", o.StateDir,
		"-runtime", o.Runtime, "-runtime-root", o.RuntimeRoot}
	if o.LogPath != "" {
		args = append(args, "-log-path", o.LogPath)
	}
	if o.LogMaxSize > 0 {
		args = append(args, "-log-max-size", strconv.FormatInt(o.LogMaxSize, 10))
		if o.LogMaxFiles > 1 {
			args = append(args, "-log-max-file", strconv.Itoa(o.LogMaxFiles))
		}
	}
	for _, f := range []struct {
		on   bool
		flag string
	}{{o.Terminal, "-terminal"}, {o.Stdin, "-stdin"}, {o.StdinOnce, "-stdin-once"}} {
		if f.on {
			args = append(args, f.flag)
		}
	}
	proc, err := os.StartProcess(o.ShimBinary, args, &os.ProcAttr{
		Dir:   o.StateDir,
		Env:   shimEnv(),
		Files: []*os.File{devnull, devnull, logf, readyW, lock},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	readyW.Close()
	if err != nil {
		return nil, errdefs.System("start shim for container %s: %v", o.ID, err)
	}
	exited := make(chan struct{})
	go func() {
		proc.Wait()
		close(exited)
	}()

	type result struct {
		line string
		err  error
	}
	rc := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(readyR).ReadString('\n')
		rc <- result{strings.TrimSpace(line), err}
	}()
	var res result
	select {
	case res = <-rc:
	case <-ctx.Done():
		syscall.Kill(-proc.Pid, syscall.SIGKILL) // the shim leads its own process group, with the runtime in it
		<-exited
		// The runtime may have created the container before the shim died: leave nothing behind.
		exec.Command(o.Runtime, "--root", o.RuntimeRoot, "delete", "--force", o.ID).Run()
		os.Remove(filepath.Join(o.StateDir, proto.SocketFile))
		return nil, fmt.Errorf("start shim for container %s: %w", o.ID, ctx.Err())
	}
	if pid, ok := strings.CutPrefix(res.line, "ok "); ok {
		n, err := strconv.Atoi(pid)
		if err == nil && n > 0 {
			return &Client{id: o.ID, stateDir: o.StateDir, pid: n, terminal: o.Terminal}, nil
		}
	}
	msg, failed := strings.CutPrefix(res.line, "error ")
	if !failed && res.err == nil {
		syscall.Kill(-proc.Pid, syscall.SIGKILL) // it said something else than ok or error: do not trust it
	}
	<-exited // a failed shim exits at once; wait so none is left behind
	if failed {
		return nil, errdefs.System("create container %s: %s", o.ID, msg)
	}
	return nil, errdefs.System("start shim for container %s: shim exited before it was ready (see %s): %s",
		o.ID, filepath.Join(o.StateDir, proto.LogFile), lastLine(filepath.Join(o.StateDir, proto.LogFile)))
}

// lockStateDir takes the state dir's shim.lock, which a shim holds until it has exited. If an earlier shim for
// the same state dir is still finishing (its container exited, it is deleting the runtime's state), it waits
// for it, so a restart never races the old shim; if that shim's container still runs, it is a conflict.
func lockStateDir(ctx context.Context, id, stateDir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(stateDir, proto.LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, errdefs.System("start shim for container %s: open lock: %v", id, err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return f, nil
	}
	if err != syscall.EWOULDBLOCK {
		f.Close()
		return nil, errdefs.System("start shim for container %s: lock %s: %v", id, stateDir, err)
	}
	if old, cerr := Connect(ctx, stateDir); cerr == nil && !old.exited {
		f.Close()
		return nil, errdefs.Conflict("start shim for container %s: a shim still runs the container (pid %d)", id, old.pid)
	}
	locked := make(chan error, 1)
	go func() { locked <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
	select {
	case err = <-locked:
	case <-ctx.Done():
		f.Close() // the pending flock fails or its lock dies with the file
		return nil, fmt.Errorf("start shim for container %s: wait for the previous shim: %w", id, ctx.Err())
	}
	if err != nil {
		f.Close()
		return nil, errdefs.System("start shim for container %s: lock %s: %v", id, stateDir, err)
	}
	return f, nil
}

// shimEnv is the shim's environment: the daemon's PATH and XDG_RUNTIME_DIR (for the runtime), nothing else,
// so no GODEBUG or GOGC meant for the daemon reaches it.
func shimEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") {
			env = append(env, kv)
		}
	}
	return env
}

func lastLine(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// Connect reconnects to a living shim, e.g. after a daemon restart. When no shim answers it returns an error
// wrapping errdefs.ErrNotFound; the daemon then reads the exit with ReadExit.
func Connect(ctx context.Context, stateDir string) (*Client, error) {
	c := &Client{stateDir: stateDir, id: filepath.Base(stateDir)}
	resp, conn, _, err := c.call(ctx, proto.OpInfo)
	if err != nil {
		return nil, err
	}
	conn.Close()
	for _, kv := range strings.Fields(resp) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "pid":
			c.pid, _ = strconv.Atoi(v)
		case "terminal":
			c.terminal = v == "1"
		case "exited":
			c.exited = v == "1"
		}
	}
	if c.pid <= 0 {
		return nil, errdefs.System("connect to shim in %s: bad info answer %q", stateDir, resp)
	}
	return c, nil
}

// ReadExit reads <stateDir>/exit.json. It returns an error wrapping errdefs.ErrNotFound if there is none yet.
func ReadExit(stateDir string) (*Exit, error) {
	path := filepath.Join(stateDir, proto.ExitFile)
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, errdefs.NotFound("no exit recorded in %s", stateDir)
		}
		return nil, errdefs.System("read exit of container: %v", err)
	}
	var e Exit
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, errdefs.System("read exit of container: %s: %v", path, err)
	}
	return &e, nil
}

// Pid is the host pid of the container's init.
func (c *Client) Pid() int { return c.pid }

// Start runs `runtime start ID` in the shim; the error text carries the runtime's message.
func (c *Client) Start(ctx context.Context) error {
	_, conn, _, err := c.call(ctx, proto.OpStart)
	if err != nil {
		return err
	}
	return conn.Close()
}

// Resize sets the pty's window size. Without a tty it does nothing and returns nil.
func (c *Client) Resize(ctx context.Context, height, width uint16) error {
	_, conn, _, err := c.call(ctx, fmt.Sprintf("%s %d %d", proto.OpResize, height, width))
	if err != nil {
		return err
	}
	return conn.Close()
}

// Wait blocks until the init has exited and exit.json is written, and returns the exit. When the shim is
// already gone (or goes away while waiting) it reads exit.json instead.
func (c *Client) Wait(ctx context.Context) (*Exit, error) {
	resp, conn, _, err := c.call(ctx, proto.OpWait)
	if err == nil {
		conn.Close()
		var e Exit
		if jerr := json.Unmarshal([]byte(resp), &e); jerr == nil {
			return &e, nil
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil && !errdefs.IsNotFound(err) && !errors.Is(err, errShimGone) {
		return nil, err
	}
	e, rerr := ReadExit(c.stateDir)
	if rerr != nil {
		return nil, errdefs.System("wait for container %s: the shim is gone and recorded no exit", c.id)
	}
	return e, nil
}

// Close releases the client. The shim and the container go on.
func (c *Client) Close() error { return nil }

// Attach streams the container's output to stdout and stderr (nil: not wanted; with a tty all output goes to
// stdout) and copies stdin (nil: none) into the process. Each attached client gets all output produced after
// it attached. It returns when the output has ended (the process exited and everything was delivered) or ctx
// is done. At stdin's EOF the shim closes the process's stdin if StdinOnce is set; output goes on until the
// process exits. A stdin Read that never returns keeps one goroutine until it does.
func (c *Client) Attach(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	wait, err := c.OpenAttach(ctx, stdin, stdout, stderr)
	if err != nil {
		return err
	}
	return wait()
}

// OpenAttach is Attach in two steps: it returns once the shim has registered the client, so all output
// produced from then on (e.g. after a Start that follows) reaches it. Streaming runs in the background from
// that moment; the returned wait blocks until it is over and returns what Attach would.
func (c *Client) OpenAttach(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) (wait func() error, err error) {
	req := proto.OpAttach
	for _, w := range []struct {
		on   bool
		name string
	}{{stdin != nil, "stdin"}, {stdout != nil, "stdout"}, {stderr != nil, "stderr"}} {
		if w.on {
			req += " " + w.name
		}
	}
	_, conn, br, err := c.call(ctx, req)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	if stdin != nil {
		go func() {
			io.Copy(conn, stdin)
			conn.(*net.UnixConn).CloseWrite()
		}()
	}
	done := make(chan error, 1)
	go func() {
		defer stop()
		defer conn.Close()
		done <- c.readOutput(ctx, br, stdout, stderr)
	}()
	return func() error { return <-done }, nil
}

// readOutput copies attach frames to stdout and stderr until the end frame.
func (c *Client) readOutput(ctx context.Context, br *bufio.Reader, stdout, stderr io.Writer) error {
	var buf []byte
	for {
		stream, p, err := proto.ReadFrame(br, buf)
		buf = p
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errdefs.System("attach to container %s: output stream broken before its end: %v", c.id, err)
		}
		var w io.Writer
		switch stream {
		case proto.StreamEnd:
			return nil
		case proto.StreamStdout:
			w = stdout
		case proto.StreamStderr:
			w = stderr
		}
		if w != nil && len(p) > 0 {
			if _, err := w.Write(p); err != nil {
				return fmt.Errorf("attach to container %s: write output: %w", c.id, err)
			}
		}
	}
}

var errShimGone = errors.New("shim gone")

// call dials the shim, sends the request line and reads the answer. On success it returns what follows "ok"
// and the open connection, which the caller must close (attach streams on it).
func (c *Client) call(ctx context.Context, req string) (string, net.Conn, *bufio.Reader, error) {
	sock := filepath.Join(c.stateDir, proto.SocketFile)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		if ctx.Err() != nil {
			return "", nil, nil, ctx.Err()
		}
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return "", nil, nil, fmt.Errorf("no shim answers on %s: %w", sock, errdefs.ErrNotFound)
		}
		return "", nil, nil, errdefs.System("dial shim on %s: %v", sock, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	op, _, _ := strings.Cut(req, " ")
	br := bufio.NewReader(conn)
	var line string
	if _, err = io.WriteString(conn, req+"\n"); err == nil {
		line, err = br.ReadString('\n')
	}
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return "", nil, nil, ctx.Err()
		}
		return "", nil, nil, fmt.Errorf("%s container %s: %w (%w): %v", op, c.id, errShimGone, errdefs.ErrUnavailable, err)
	}
	line = strings.TrimSuffix(line, "\n")
	if rest, ok := strings.CutPrefix(line, "error "); ok {
		conn.Close()
		code, msg, _ := strings.Cut(rest, " ")
		return "", nil, nil, answerError(op, c.id, code, msg)
	}
	if line != "ok" && !strings.HasPrefix(line, "ok ") {
		conn.Close()
		return "", nil, nil, errdefs.System("%s container %s: bad answer from shim: %q", op, c.id, line)
	}
	return strings.TrimPrefix(strings.TrimPrefix(line, "ok"), " "), conn, br, nil
}

func answerError(op, id, code, msg string) error {
	switch code {
	case proto.CodeInvalid:
		return errdefs.InvalidArgument("%s container %s: %s", op, id, msg)
	case proto.CodeConflict:
		return errdefs.Conflict("%s container %s: %s", op, id, msg)
	}
	return errdefs.System("%s container %s: %s", op, id, msg)
}
