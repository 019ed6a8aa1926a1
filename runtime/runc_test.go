package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	runc "github.com/containerd/go-runc"
	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/errdefs"
)

// testEnv is a runc state root and a cgroup parent of our own.
type testEnv struct {
	rt     *Runtime
	dir    string
	parent string
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, bin := range []string{"runc", "/usr/bin/busybox", "ps"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s", bin)
		}
	}
	dir := t.TempDir()
	env := &testEnv{rt: New("runc", filepath.Join(dir, "state")), dir: dir, parent: fmt.Sprintf("berth-test-%d", os.Getpid())}
	t.Cleanup(func() {
		// runc delete removed the containers' cgroups; remove the parent.
		ents, _ := os.ReadDir("/sys/fs/cgroup")
		for _, e := range ents {
			_ = os.Remove(filepath.Join("/sys/fs/cgroup", e.Name(), env.parent))
		}
		_ = os.Remove(filepath.Join("/sys/fs/cgroup", env.parent))
	})
	return env
}

// busyboxRootfs builds a rootfs of the static busybox with its applets
// linked, a passwd and a group file.
func busyboxRootfs(t *testing.T, dir string) string {
	t.Helper()
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "sleep", "cat", "echo", "id", "ls", "env", "pwd", "stty", "tty", "ps", "true", "false", "hostname", "grep", "tr", "touch"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(rootfs, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return rootfs
}

// run creates and starts a container from cfg/hc in its own bundle and
// deletes it at cleanup.
func (e *testEnv) run(t *testing.T, id string, cfg *container.Config, hc *container.HostConfig, mod func(*SpecOptions)) *specs.Spec {
	t.Helper()
	bundle := filepath.Join(e.dir, id)
	rootfs := busyboxRootfs(t, bundle)
	o := SpecOptions{ID: id, Config: cfg, HostConfig: hc, Rootfs: rootfs, CgroupParent: e.parent}
	if mod != nil {
		mod(&o)
	}
	s, err := GenerateSpec(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.rt.Delete(context.Background(), id, true); err != nil {
			t.Errorf("delete %s: %v", id, err)
		}
	})
	// The container inherits runc's stdio: give it a file, not a pipe
	// whose copy would wait for the container to exit.
	logPath := filepath.Join(bundle, "runc.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	if _, err := e.rt.runc.Run(context.Background(), id, bundle, &runc.CreateOpts{Detach: true, IO: &logIO{logFile}}); err != nil {
		out, _ := os.ReadFile(logPath)
		t.Fatalf("runc run %s: %v: %s", id, err, out)
	}
	// runc run -d returns once the init was told to start, maybe before it
	// exec'd the container's command: wait until it did.
	_, pid, err := e.rt.State(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && !bytes.HasPrefix(cmdline, []byte("runc")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s never ran its command (%q, %v)", id, cmdline, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// logIO sends a detached runc's output to a file.
type logIO struct{ f *os.File }

func (l *logIO) Close() error          { return nil }
func (l *logIO) Stdin() io.WriteCloser { return nil }
func (l *logIO) Stdout() io.ReadCloser { return nil }
func (l *logIO) Stderr() io.ReadCloser { return nil }
func (l *logIO) Set(cmd *exec.Cmd)     { cmd.Stdout, cmd.Stderr = l.f, l.f }

// waitStatus polls the runtime until the container reaches status.
func waitStatus(t *testing.T, rt *Runtime, id, status string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, _, err := rt.State(context.Background(), id)
		if err == nil && st == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: status %q (%v), want %q", id, st, err, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sleeper() *container.Config {
	return &container.Config{Cmd: []string{"sleep", "100000"}}
}

func TestRuncLifecycle(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	rt := env.rt
	const id = "berth-life"
	s := env.run(t, id, sleeper(), &container.HostConfig{Resources: container.Resources{PidsLimit: ptr(int64(50)), Memory: 64 << 20}}, nil)

	status, pid, err := rt.State(ctx, id)
	if err != nil || status != "running" || pid <= 0 {
		t.Fatalf("state %q pid %d err %v", status, pid, err)
	}
	pids, err := rt.Pids(ctx, id)
	if err != nil || !slices.Contains(pids, pid) {
		t.Fatalf("pids %v err %v", pids, err)
	}

	top, err := rt.Top(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(top.Titles, "PID") || len(top.Processes) != 1 || !strings.Contains(strings.Join(top.Processes[0], " "), "sleep 100000") {
		t.Errorf("top %+v", top)
	}
	top, err = rt.Top(ctx, id, "-o pid,comm")
	if err != nil || len(top.Titles) != 2 || len(top.Processes) != 1 || top.Processes[0][1] != "sleep" {
		t.Errorf("top -o: %+v %v", top, err)
	}

	st, err := rt.Stats(ctx, id, s.Linux.CgroupsPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUStats.OnlineCPUs == 0 || st.CPUStats.SystemUsage == 0 || st.MemoryStats.Usage == 0 || st.PidsStats.Current != 1 {
		t.Errorf("stats %+v", st)
	}
	if st.MemoryStats.Limit != 64<<20 || st.PidsStats.Limit != 50 {
		t.Errorf("limits: memory %d pids %d", st.MemoryStats.Limit, st.PidsStats.Limit)
	}
	if _, err := rt.Stats(ctx, "gone", filepath.Join("/", env.parent, "gone")); !errdefs.IsNotFound(err) {
		t.Errorf("stats of missing cgroup: %v", err)
	}

	res, err := Resources(container.Resources{Memory: 128 << 20, PidsLimit: ptr(int64(60))})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Update(ctx, id, res); err != nil {
		t.Fatal(err)
	}
	if st, err := rt.Stats(ctx, id, s.Linux.CgroupsPath); err != nil || st.MemoryStats.Limit != 128<<20 || st.PidsStats.Limit != 60 {
		t.Errorf("after update: %+v %v", st, err)
	}
	if err := rt.Update(ctx, "nosuch", res); !errdefs.IsNotFound(err) {
		t.Errorf("update missing: %v", err)
	}

	if err := rt.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, rt, id, "paused")
	if _, err := rt.Exec(ctx, id, specs.Process{Args: []string{"true"}, Cwd: "/"}, ExecIO{}); !errdefs.IsConflict(err) {
		t.Errorf("exec in paused container: %v", err)
	}
	if err := rt.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, rt, id, "running")
	if err := rt.Resume(ctx, id); !errdefs.IsConflict(err) {
		t.Errorf("resume running: %v", err)
	}
	if err := rt.Delete(ctx, id, false); !errdefs.IsConflict(err) {
		t.Errorf("delete running without force: %v", err)
	}

	// SIGKILL reaches a paused container's process.
	if err := rt.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, rt, id, "paused")
	if err := rt.Kill(ctx, id, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, rt, id, "stopped")
	if err := rt.Kill(ctx, id, syscall.SIGKILL); !errdefs.IsConflict(err) || err.Error() != "container berth-life is not running" {
		t.Errorf("kill stopped: %v", err)
	}
	if err := rt.Delete(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := rt.State(ctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("state after delete: %v", err)
	}
	if err := rt.Delete(ctx, id, false); err != nil {
		t.Errorf("delete twice: %v", err)
	}
	if err := rt.Kill(ctx, "nosuch", syscall.SIGTERM); !errdefs.IsNotFound(err) {
		t.Errorf("kill missing: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the copy goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitOutput polls until buf holds want.
func waitOutput(t *testing.T, buf *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output %q never contained %q", buf.String(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRuncExec(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	const id = "berth-exec"
	base := env.run(t, id, sleeper(), &container.HostConfig{}, nil)
	rootfs := base.Root.Path
	proc := func(t *testing.T, req container.ExecCreateRequest) specs.Process {
		t.Helper()
		p, err := ExecProcessSpec(base, rootfs, req)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("pipes and exit code", func(t *testing.T) {
		var out, errb syncBuffer
		p, err := env.rt.Exec(ctx, id, proc(t, container.ExecCreateRequest{Cmd: []string{"sh", "-c", "cat; echo err >&2; ulimit -n; exit 3"}}),
			ExecIO{Stdin: strings.NewReader("hello\n"), Stdout: &out, Stderr: &errb})
		if err != nil {
			t.Fatal(err)
		}
		if p.Pid() <= 0 {
			t.Errorf("pid %d", p.Pid())
		}
		code, err := p.Wait()
		if err != nil || code != 3 {
			t.Fatalf("exit %d err %v", code, err)
		}
		if out.String() != "hello\n20000\n" || errb.String() != "err\n" {
			t.Errorf("stdout %q stderr %q", out.String(), errb.String())
		}
	})

	t.Run("half close", func(t *testing.T) {
		pr, pw := io.Pipe()
		var out syncBuffer
		p, err := env.rt.Exec(ctx, id, proc(t, container.ExecCreateRequest{Cmd: []string{"cat"}}), ExecIO{Stdin: pr, Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pw.Write([]byte("hi\n")); err != nil {
			t.Fatal(err)
		}
		waitOutput(t, &out, "hi\n")
		if err := p.CloseStdin(); err != nil {
			t.Fatal(err)
		}
		code, err := p.Wait()
		if err != nil || code != 0 || out.String() != "hi\n" {
			t.Errorf("exit %d err %v out %q", code, err, out.String())
		}
		pw.Close()
	})

	t.Run("user env cwd", func(t *testing.T) {
		var out syncBuffer
		p, err := env.rt.Exec(ctx, id, proc(t, container.ExecCreateRequest{Cmd: []string{"sh", "-c", "id -u; pwd; echo $FOO"}, User: "nobody", WorkingDir: "/tmp", Env: []string{"FOO=bar"}}),
			ExecIO{Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if code, err := p.Wait(); err != nil || code != 0 {
			t.Fatalf("exit %d err %v", code, err)
		}
		if out.String() != "65534\n/tmp\nbar\n" {
			t.Errorf("out %q", out.String())
		}
	})

	t.Run("not found", func(t *testing.T) {
		var out, errb syncBuffer
		_, err := env.rt.Exec(ctx, id, proc(t, container.ExecCreateRequest{Cmd: []string{"nope"}}), ExecIO{Stdout: &out, Stderr: &errb})
		var se *StartError
		if !errors.As(err, &se) || !errors.Is(err, ErrCommandNotFound) || se.ExitCode() != 127 {
			t.Fatalf("error %v", err)
		}
		if !strings.Contains(err.Error(), `exec: "nope": executable file not found in $PATH`) {
			t.Errorf("message %q", err)
		}
		if out.String() != "" || errb.String() != "" {
			t.Errorf("runc's message leaked into the streams: %q %q", out.String(), errb.String())
		}
	})

	t.Run("not executable", func(t *testing.T) {
		_, err := env.rt.Exec(ctx, id, proc(t, container.ExecCreateRequest{Cmd: []string{"/etc/passwd"}}), ExecIO{})
		if !errors.Is(err, ErrCommandNotExecutable) {
			t.Fatalf("error %v", err)
		}
	})

	t.Run("tty and resize", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		var out syncBuffer
		p, err := env.rt.Exec(ctx, id, proc(t, container.ExecCreateRequest{Cmd: []string{"sh", "-c", "stty size; tty; read x; stty size"}, Tty: true}),
			ExecIO{Stdin: pr, Stdout: &out, Terminal: true, Height: 30, Width: 100})
		if err != nil {
			t.Fatal(err)
		}
		waitOutput(t, &out, "/dev/pts/")
		if !strings.Contains(out.String(), "30 100") {
			t.Errorf("initial size: %q", out.String())
		}
		if err := p.Resize(40, 120); err != nil {
			t.Fatal(err)
		}
		// runc resizes the container's terminal on SIGWINCH; give the line
		// only once the new size is visible to the process.
		deadline := time.Now().Add(30 * time.Second)
		for {
			var probe syncBuffer
			q, err := env.rt.Exec(ctx, id, proc(t, container.ExecCreateRequest{Cmd: []string{"stty", "-F", strings.TrimSpace(lastLine(out.String())), "size"}}), ExecIO{Stdout: &probe})
			if err == nil {
				q.Wait()
			}
			if strings.Contains(probe.String(), "40 120") || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := pw.Write([]byte("\n")); err != nil {
			t.Fatal(err)
		}
		code, err := p.Wait()
		if err != nil || code != 0 {
			t.Fatalf("exit %d err %v", code, err)
		}
		if !strings.Contains(out.String(), "40 120") {
			t.Errorf("after resize: %q", out.String())
		}
		if err := p.Resize(10, 10); !errdefs.IsConflict(err) {
			t.Errorf("resize after exit: %v", err)
		}
	})

	t.Run("tty early input echoed once", func(t *testing.T) {
		var out syncBuffer
		p, err := env.rt.Exec(ctx, id, proc(t, container.ExecCreateRequest{Cmd: []string{"cat"}, Tty: true}),
			ExecIO{Stdin: strings.NewReader("abc\n\x04"), Stdout: &out, Terminal: true})
		if err != nil {
			t.Fatal(err)
		}
		code, err := p.Wait()
		if err != nil || code != 0 {
			t.Fatalf("exit %d err %v", code, err)
		}
		// The container's terminal echoes the line once and cat prints it once.
		if got := out.String(); strings.Count(got, "abc") != 2 || !strings.Contains(got, "abc\r\n") {
			t.Errorf("output %q", got)
		}
	})

	t.Run("killed by signal", func(t *testing.T) {
		p, err := env.rt.Exec(ctx, id, proc(t, container.ExecCreateRequest{Cmd: []string{"sleep", "1000"}}), ExecIO{})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if code, err := p.Wait(); err != nil || code != 137 {
			t.Errorf("exit %d err %v, want 137", code, err)
		}
		if err := p.Signal(syscall.SIGKILL); !errdefs.IsConflict(err) {
			t.Errorf("signal after exit: %v", err)
		}
	})

	t.Run("tty not found", func(t *testing.T) {
		var out syncBuffer
		_, err := env.rt.Exec(ctx, id, proc(t, container.ExecCreateRequest{Cmd: []string{"nope"}, Tty: true}), ExecIO{Stdout: &out, Terminal: true})
		if !errors.Is(err, ErrCommandNotFound) || out.String() != "" {
			t.Fatalf("error %v output %q", err, out.String())
		}
	})

	t.Run("missing container", func(t *testing.T) {
		_, err := env.rt.Exec(ctx, "nosuch", specs.Process{Args: []string{"true"}, Cwd: "/"}, ExecIO{})
		if !errdefs.IsNotFound(err) {
			t.Fatalf("error %v", err)
		}
	})
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r", ""), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.TrimSpace(lines[i]) != "" {
			return lines[i]
		}
	}
	return ""
}

func TestRuncSpecFeatures(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	hostDir := filepath.Join(env.dir, "shared")
	if err := os.WriteFile(filepath.Join(env.dir, "hostname"), []byte("features\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hc := &container.HostConfig{
		Binds:          []string{hostDir + ":/shared"},
		Tmpfs:          map[string]string{"/scratch": "size=1m"},
		ReadonlyRootfs: true,
		Init:           ptr(true),
		CapDrop:        []string{"ALL"},
		CapAdd:         []string{"CHOWN"},
		SecurityOpt:    []string{"no-new-privileges"},
		Sysctls:        map[string]string{"net.ipv4.ip_forward": "1"},
		Resources:      container.Resources{Ulimits: []*container.Ulimit{{Name: "nofile", Soft: 512, Hard: 1024}}, NanoCPUs: 5e8},
	}
	if _, err := os.Stat("/usr/bin/tini-static"); err != nil {
		t.Skip("needs /usr/bin/tini-static")
	}
	cfg := &container.Config{Cmd: []string{"sleep", "100000"}, Hostname: "features", Env: []string{"X=1"}}
	base := env.run(t, "berth-features", cfg, hc, func(o *SpecOptions) {
		o.InitPath = "/usr/bin/tini-static"
		o.HostnamePath = filepath.Join(env.dir, "hostname")
	})
	// The rlimits are read from the container's init: runc 1.1 exec races
	// its own Go runtime when it applies them to an exec'd process (the
	// soft limit is sometimes raised to the hard one), fixed in runc 1.2.
	script := `hostname; cat /etc/hostname; grep "open files" /proc/1/limits | tr -s " "; echo $X; cat /proc/sys/net/ipv4/ip_forward;
		touch /shared/from-container && echo bind-ok; touch /root-write 2>/dev/null || echo ro-ok;
		echo x > /scratch/f && echo tmpfs-ok; cat /proc/1/cmdline | tr '\0' ' '; echo;
		grep CapBnd /proc/self/status; grep NoNewPrivs /proc/self/status`
	var out, errb syncBuffer
	proc, err := ExecProcessSpec(base, base.Root.Path, container.ExecCreateRequest{Cmd: []string{"sh", "-c", script}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.rt.Exec(ctx, "berth-features", proc, ExecIO{Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"features\nfeatures\nMax open files 512 1024 files \n1\n1\n", "bind-ok", "ro-ok", "tmpfs-ok", "/sbin/docker-init -- sleep 100000", "CapBnd:\t0000000000000001", "NoNewPrivs:\t1"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s\nstderr: %s", want, got, errb.String())
		}
	}
	if _, err := os.Stat(filepath.Join(hostDir, "from-container")); err != nil {
		t.Errorf("bind mount not shared with host: %v", err)
	}
}

func TestRuncPrivileged(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	base := env.run(t, "berth-priv", sleeper(), &container.HostConfig{Privileged: true}, nil)
	proc, err := ExecProcessSpec(base, base.Root.Path, container.ExecCreateRequest{
		Cmd: []string{"sh", "-c", "grep CapEff /proc/self/status; ls /dev/null /dev/loop-control; grep Seccomp: /proc/self/status; true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out, errb syncBuffer
	p, err := env.rt.Exec(ctx, "berth-priv", proc, ExecIO{Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(); err != nil || code != 0 {
		t.Fatalf("exit %d err %v stderr %s", code, err, errb.String())
	}
	bnd, _ := ownBoundingSet()
	want := fmt.Sprintf("CapEff:\t%016x", bnd)
	for _, w := range []string{want, "/dev/loop-control", "Seccomp:\t0"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
}
