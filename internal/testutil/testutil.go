package testutil

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireRoot skips the test unless it runs as root with runc available.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("integration test needs root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("integration test needs runc")
	}
	if testing.Short() {
		t.Skip("integration test skipped in -short mode")
	}
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
	// binReaper is the write end of the pipe removeAtExit's watcher waits
	// on. It stays open (and referenced, so no finalizer closes it) for the
	// life of the process.
	binReaper *os.File
)

// RepoRoot finds the module root from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Bin returns the path of a Berth binary: from $BERTH_BIN (set by make
// test) or built once per test process, with every main under cmd/, into a
// temporary directory that is removed when the process ends.
func Bin(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv("BERTH_BIN"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "berth-bin-")
		if buildErr != nil {
			return
		}
		if binReaper, buildErr = removeAtExit(binDir); buildErr != nil {
			os.RemoveAll(binDir)
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/...")
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

// removeAtExit starts a watcher process that removes dir once this process
// has ended, however it ends (return from the tests, os.Exit, a panic, the
// test timeout, a signal). A test binary without its own TestMain has no
// exit hook and the binaries must outlive every test, so t.Cleanup cannot do
// it. The watcher reads a pipe whose only write end is the returned file:
// the kernel closes it when this process dies, the read sees end-of-file and
// the watcher removes dir. The caller keeps the file open for the life of
// the process. The watcher runs in its own session so that a ^C to the test
// run does not stop it before it has cleaned up.
func removeAtExit(dir string) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("remove %s at exit: %w", dir, err)
	}
	defer r.Close()
	watcher := exec.Command("/bin/sh", "-c", `read -r _; rm -rf -- "$1"`, "berth-test-reaper", dir)
	watcher.Stdin = r // stdout and stderr stay /dev/null: go test waits for its output pipes to close
	watcher.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := watcher.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("remove %s at exit: start watcher: %w", dir, err)
	}
	// Not waited for: it ends after this process, adopted by init.
	watcher.Process.Release()
	return w, nil
}

// Daemon is a berthd process on temporary roots.
type Daemon struct {
	t                  testing.TB
	Root               string
	DataRoot, ExecRoot string
	Socket             string
	cmd                *exec.Cmd
	logFile            string
	exited             chan struct{}
	args               []string // the daemon's extra arguments, kept for Restart
}

// Host is the -H / DOCKER_HOST value.
func (d *Daemon) Host() string { return "unix://" + d.Socket }

// StartDaemon starts berthd and waits until /_ping answers. Unless the
// arguments name a bridge, the daemon gets its own (FreeNetwork). Cleanup
// stops it and removes every container process, mount, file, bridge and
// nftables table it made.
func StartDaemon(t testing.TB, extraArgs ...string) *Daemon {
	t.Helper()
	RequireRoot(t)
	// BERTH_TEST_DAEMON_ARGS runs every test daemon with more flags, e.g.
	// "--storage-opt overlay2.layer-images=false" to test the directory
	// layers kernels without file-backed EROFS get.
	if more := strings.Fields(os.Getenv("BERTH_TEST_DAEMON_ARGS")); len(more) > 0 && !slices.Contains(extraArgs, "--storage-opt") {
		extraArgs = append(extraArgs, more...)
	}
	if !slices.Contains(extraArgs, "--bridge") && !slices.Contains(extraArgs, "-b") {
		// A private bridge and subnet per daemon: daemons in parallel test
		// packages never share (or tear down) each other's network.
		extraArgs = append(extraArgs, FreeNetwork(t, 0).Args()...)
	}
	root, err := os.MkdirTemp("", "berth-it-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{t: t, Root: root, DataRoot: filepath.Join(root, "data"), ExecRoot: filepath.Join(root, "exec")}
	d.Socket = filepath.Join(d.ExecRoot, "berth.sock")
	d.logFile = filepath.Join(root, "berthd.log")
	t.Cleanup(d.cleanup)
	d.args = extraArgs
	d.start(extraArgs...)
	return d
}

func (d *Daemon) start(extraArgs ...string) {
	d.t.Helper()
	logf, err := os.OpenFile(d.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	args := append([]string{"--data-root", d.DataRoot, "--exec-root", d.ExecRoot, "-H", d.Host(), "--log-level", "debug",
		"--cgroup-parent", "berth-test"}, extraArgs...)
	d.cmd = exec.Command(Bin(d.t, "berthd"), args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	logf.Close()
	d.exited = make(chan struct{})
	go func(cmd *exec.Cmd, ch chan struct{}) { cmd.Wait(); close(ch) }(d.cmd, d.exited)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if d.ping() == nil {
			return
		}
		select {
		case <-d.exited:
			d.t.Fatalf("berthd exited at start:\n%s", d.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
	d.t.Fatalf("berthd did not answer /_ping:\n%s", d.Log())
}

// HTTPClient talks to the daemon's socket.
func (d *Daemon) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", d.Socket)
	}}}
}

func (d *Daemon) ping() error {
	resp, err := d.HTTPClient().Get("http://berth/_ping")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("ping: %s", resp.Status)
	}
	return nil
}

// Log returns berthd's output so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.logFile)
	return string(b)
}

// Kill9 kills berthd with SIGKILL, leaving its containers to their shims.
func (d *Daemon) Kill9() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
}

// Stop ends berthd with SIGTERM.
func (d *Daemon) Stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
}

// Restart starts a new berthd on the same roots, with the same arguments
// unless others are given.
func (d *Daemon) Restart(extraArgs ...string) {
	if len(extraArgs) == 0 {
		extraArgs = d.args
	}
	d.start(extraArgs...)
}

func (d *Daemon) cleanup() {
	d.Stop()
	if d.t.Failed() {
		d.t.Logf("berthd log:\n%s", lastLines(d.Log(), 80))
	}
	// Kill shims and container processes started from these roots.
	killMatching(d.Root)
	runcRoot := filepath.Join(d.ExecRoot, "runtime", "runc")
	if out, err := exec.Command("runc", "--root", runcRoot, "list", "-q").Output(); err == nil {
		for _, id := range strings.Fields(string(out)) {
			exec.Command("runc", "--root", runcRoot, "kill", id, "KILL").Run()
			exec.Command("runc", "--root", runcRoot, "delete", "-f", id).Run()
		}
	}
	UnmountUnder(d.Root)
	os.RemoveAll(d.Root)
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// killMatching SIGKILLs every process whose command line mentions path.
func killMatching(path string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid := 0
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(path)) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// UnmountUnder lazily unmounts every mount point below dir, deepest first.
func UnmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir) {
			points = append(points, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// Result is a finished command.
type Result struct {
	Stdout, Stderr string
	ExitCode       int
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.ExitCode, r.Stdout, r.Stderr)
}

// Run runs a command with optional stdin and returns its result.
func Run(t testing.TB, env []string, stdin io.Reader, name string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			t.Fatalf("run %s %v: %v", name, args, err)
		}
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), ExitCode: code}
}

// Berth runs the berth CLI against d.
func (d *Daemon) Berth(args ...string) Result {
	d.t.Helper()
	return Run(d.t, []string{"BERTH_HOST=" + d.Host()}, nil, Bin(d.t, "berth"), args...)
}

// BerthIn runs berth with stdin.
func (d *Daemon) BerthIn(stdin io.Reader, args ...string) Result {
	d.t.Helper()
	return Run(d.t, []string{"BERTH_HOST=" + d.Host()}, stdin, Bin(d.t, "berth"), args...)
}

// DockerCLI returns the real docker CLI's path, or skips.
func DockerCLI(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/local/bin/docker", "/usr/bin/docker"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("docker CLI not installed")
	return ""
}

// Docker runs the real docker CLI against d.
func (d *Daemon) Docker(args ...string) Result {
	d.t.Helper()
	return d.DockerIn(nil, args...)
}

// DockerIn runs the docker CLI with stdin.
func (d *Daemon) DockerIn(stdin io.Reader, args ...string) Result {
	d.t.Helper()
	cfg := filepath.Join(d.Root, "docker-config")
	os.MkdirAll(cfg, 0o700)
	return Run(d.t, []string{"DOCKER_HOST=" + d.Host(), "DOCKER_CONFIG=" + cfg, "DOCKER_CLI_HINTS=false"}, stdin, DockerCLI(d.t), args...)
}

// BusyboxTar writes a rootfs tar of Debian's static busybox with every
// applet linked, minimal /etc files, and returns its path.
func BusyboxTar(t testing.TB) string {
	t.Helper()
	src := "/usr/bin/busybox"
	data, err := os.ReadFile(src)
	if err != nil {
		t.Skip("busybox-static not installed")
	}
	out, err := exec.Command(src, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "busybox.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := WriteBusyboxTar(f, data, strings.Fields(string(out))); err != nil {
		t.Fatal(err)
	}
	return path
}

// WriteBusyboxTar writes the busybox rootfs tar to w.
func WriteBusyboxTar(w io.Writer, busybox []byte, applets []string) error {
	tw := tar.NewWriter(w)
	now := time.Unix(1700000000, 0)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: now})
	}
	file := func(name string, mode int64, body []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: now}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	for _, d := range []string{"bin", "etc", "tmp", "root", "proc", "sys", "dev", "home", "var", "usr", "usr/bin", "sbin"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := dir(d, mode); err != nil {
			return err
		}
	}
	if err := file("bin/busybox", 0o755, busybox); err != nil {
		return err
	}
	for _, a := range applets {
		if a == "busybox" {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", ModTime: now, Mode: 0o777}); err != nil {
			return err
		}
	}
	if err := file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")); err != nil {
		return err
	}
	if err := file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")); err != nil {
		return err
	}
	return tw.Close()
}

// ImportBusybox imports the busybox fixture as busybox:latest with CMD sh.
func (d *Daemon) ImportBusybox() {
	d.t.Helper()
	f, err := os.Open(BusyboxTar(d.t))
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	res := d.BerthIn(f, "import", "-c", `CMD ["sh"]`, "-", "busybox:latest")
	if res.ExitCode != 0 {
		d.t.Fatalf("import busybox: %s", res)
	}
}
