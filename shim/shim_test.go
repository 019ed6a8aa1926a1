package shim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

const runtimeBin = "/usr/sbin/runc"

var shimBin string // built by TestMain when running as root

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		daemonHelper()
		return
	}
	code := func() int {
		if os.Geteuid() != 0 {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "berth-shim-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		shimBin = filepath.Join(dir, "berth-shim")
		if bin := os.Getenv("BERTH_BIN"); bin != "" && os.Getenv("BERTH_SHIM_RACE") != "1" && exists(filepath.Join(bin, "berth-shim")) {
			shimBin = filepath.Join(bin, "berth-shim") // `make test` built it already: test the shipped binary
			defer removeTestCgroups()
			return m.Run()
		}
		// Built as the Makefile builds it (static, no cgo), or with the race detector when BERTH_SHIM_RACE=1.
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", shimBin, "github.com/berth-dev/berth/cmd/berth-shim")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if os.Getenv("BERTH_SHIM_RACE") == "1" {
			build = exec.Command("go", "build", "-race", "-o", shimBin, "github.com/berth-dev/berth/cmd/berth-shim")
			build.Env = append(os.Environ(), "CGO_ENABLED=1")
		}
		out, err := build.CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build berth-shim: %v\n%s", err, out)
			return 1
		}
		defer removeTestCgroups()
		return m.Run()
	}()
	os.Exit(code)
}

// removeTestCgroups removes the parent cgroup the test containers used, in every hierarchy.
func removeTestCgroups() {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/berth-test")
	if d := "/sys/fs/cgroup/berth-test"; exists(d) {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		os.Remove(d)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (runc, namespaces, cgroups)")
	}
	for _, p := range []string{runtimeBin, "/usr/bin/busybox"} {
		if !exists(p) {
			t.Skipf("needs %s", p)
		}
	}
}

type testContainer struct {
	opts   Options
	rootfs string
}

type bundleOpt func(*specs.Spec, *Options)

func withTerminal(s *specs.Spec, o *Options)  { s.Process.Terminal, o.Terminal = true, true }
func withStdinOnce(s *specs.Spec, o *Options) { o.Stdin, o.StdinOnce = true, true }

// newContainer writes a bundle (busybox rootfs, runtime-spec config) and returns Options for it. Everything
// it makes is removed by t.Cleanup, including runtime state left by a failing test.
func newContainer(t testing.TB, args []string, opts ...bundleOpt) *testContainer {
	t.Helper()
	needRoot(t)
	base, err := os.MkdirTemp("", "bs") // short: socket paths live under it
	if err != nil {
		t.Fatal(err)
	}
	idb := make([]byte, 32)
	rand.Read(idb)
	id := hex.EncodeToString(idb)
	o := Options{
		ID:          id,
		Bundle:      filepath.Join(base, "bundle"),
		StateDir:    filepath.Join(base, "state"),
		LogPath:     filepath.Join(base, "ctr-json.log"),
		Runtime:     runtimeBin,
		RuntimeRoot: filepath.Join(base, "runc"),
		ShimBinary:  shimBin,
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(o.StateDir, "shim.log")); err == nil &&
			(bytes.Contains(b, []byte("DATA RACE")) || bytes.Contains(b, []byte("panic:"))) {
			t.Errorf("shim.log:\n%s", b)
		}
		exec.Command(runtimeBin, "--root", o.RuntimeRoot, "delete", "--force", id).Run()
		if b, err := os.ReadFile(filepath.Join(o.StateDir, "shim.pid")); err == nil {
			if pid, _ := strconv.Atoi(string(b)); pid > 0 {
				if err := killShim(pid, base); err != nil {
					t.Error(err)
				}
			}
		}
		if err := os.RemoveAll(base); err != nil {
			t.Errorf("remove the test's directory: %v", err)
		}
	})
	rootfs := filepath.Join(o.Bundle, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"proc", "dev", "tmp", "etc"} {
		os.MkdirAll(filepath.Join(rootfs, d), 0o755)
	}
	bb, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"sh", "echo", "cat", "sleep", "true", "seq", "stty", "printf", "head", "yes", "test", "["} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", l)); err != nil {
			t.Fatal(err)
		}
	}
	spec := &specs.Spec{
		Version:  specs.Version,
		Hostname: "shimtest",
		Root:     &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Args: args,
			Env:  []string{"PATH=/bin", "TERM=xterm"},
			Cwd:  "/",
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024},
			},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: "/berth-test/" + id,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace},
			},
		},
	}
	for _, f := range opts {
		f(spec, &o)
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(o.Bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return &testContainer{opts: o, rootfs: rootfs}
}

// waitShimGone waits until the shim recorded in stateDir has exited.
func waitShimGone(t testing.TB, stateDir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateDir, "shim.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(string(b))
	for processAlive(pid) {
		time.Sleep(time.Millisecond)
	}
}

// killShim kills a shim together with the runtime commands it runs (its process group) and waits until none of
// them runs any more. Only processes whose command line names the test's directory are killed, so a recycled
// pid or group id never hits a stranger. Killing the shim alone let a `runc delete` it had started outlive it
// and re-create <state>/runtime.log after the test's directory was removed, leaving /tmp/bs* behind.
func killShim(pgid int, dir string) error {
	// SIGKILL cannot be caught; the bound only turns a process stuck in the kernel into a test error.
	deadline := time.Now().Add(time.Minute)
	for {
		pids := groupMembers(pgid, dir)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v of the shim's group %d still run after SIGKILL", pids, pgid)
		}
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(time.Millisecond)
	}
}

// groupMembers lists the running (not zombie) processes of group pgid whose command line contains dir.
func groupMembers(pgid int, dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := strconv.Itoa(pgid)
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// after the command in parentheses: state, ppid, pgrp
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		if f := strings.Fields(s[i+1:]); len(f) < 3 || f[2] != want || f[0] == "Z" {
			continue
		}
		if cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && bytes.Contains(cmdline, []byte(dir)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// the state field follows the command in parentheses; Z is a zombie
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// start starts a shim for tc and registers cleanup that waits for its exit.
func (tc *testContainer) start(t testing.TB) *Client {
	t.Helper()
	c, err := Start(context.Background(), tc.opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// release makes a container blocked in waitForGo carry on.
func (tc *testContainer) release(t testing.TB) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(tc.rootfs, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitForGo is a shell fragment that blocks until the test calls release.
const waitForGo = `while [ ! -e /go ]; do sleep 0.01; done; `

type logEntry struct {
	Log    string `json:"log"`
	Stream string `json:"stream"`
	Time   string `json:"time"`
}

func readLog(t testing.TB, path string) []logEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []logEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e logEntry
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil || !strings.HasSuffix(e.Time, "Z") {
			t.Fatalf("log line %q: time is not RFC3339Nano UTC: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func streamText(entries []logEntry, stream string) string {
	var b strings.Builder
	for _, e := range entries {
		if e.Stream == stream {
			b.WriteString(e.Log)
		}
	}
	return b.String()
}

func wait(t testing.TB, c *Client) *Exit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := c.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return e
}

func TestLogJSONFile(t *testing.T) {
	tc := newContainer(t, []string{"sh", "-c", `echo out1; echo err1 >&2; echo "<q\"\\>"; printf partial`})
	c := tc.start(t)
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("Client.Start: %v", err)
	}
	if e := wait(t, c); e.Code != 0 {
		t.Fatalf("exit code %d, want 0", e.Code)
	}
	entries := readLog(t, tc.opts.LogPath)
	want := []logEntry{
		{Log: "out1\n", Stream: "stdout"},
		{Log: "<q\"\\>\n", Stream: "stdout"},
		{Log: "partial", Stream: "stdout"},
	}
	var stdout []logEntry
	for _, e := range entries {
		if e.Stream == "stdout" {
			stdout = append(stdout, logEntry{Log: e.Log, Stream: e.Stream})
		}
	}
	if fmt.Sprint(stdout) != fmt.Sprint(want) {
		t.Errorf("stdout entries %q, want %q", stdout, want)
	}
	if got := streamText(entries, "stderr"); got != "err1\n" {
		t.Errorf("stderr %q, want %q", got, "err1\n")
	}
	raw, _ := os.ReadFile(tc.opts.LogPath)
	if !bytes.Contains(raw, []byte(`{"log":"\u003cq\"\\\u003e\n","stream":"stdout","time":"`)) {
		t.Errorf("log is not in Docker's byte layout:\n%s", raw)
	}
	if fi, err := os.Stat(tc.opts.LogPath); err != nil || fi.Mode().Perm()&0o077 != 0o040 && fi.Mode().Perm() != 0o640 {
		t.Errorf("log mode %v, want 0640", fi.Mode().Perm())
	}
	// Once the shim is gone (it deletes the runtime's container after answering), Connect says not found and
	// the exit stays readable.
	waitShimGone(t, tc.opts.StateDir)
	if _, err := Connect(context.Background(), tc.opts.StateDir); !errdefs.IsNotFound(err) {
		t.Errorf("Connect after exit: %v, want not found", err)
	}
	if e, err := ReadExit(tc.opts.StateDir); err != nil || e.Code != 0 || e.ExitedAt.IsZero() {
		t.Errorf("ReadExit: %+v, %v", e, err)
	}
	if e := wait(t, c); e.Code != 0 {
		t.Errorf("Wait after the shim is gone: code %d", e.Code)
	}
}

func TestAttachBeforeStart(t *testing.T) {
	tc := newContainer(t, []string{"sh", "-c", `seq 1 3000; echo done >&2; seq 1 5 >&2`})
	c := tc.start(t)
	ctx := context.Background()
	type result struct {
		out, err bytes.Buffer
		wait     func() error
	}
	clients := make([]*result, 3)
	for i := range clients {
		r := &result{}
		var err error
		stderr := io.Writer(&r.err)
		if i == 2 {
			stderr = nil // this one only wants stdout
		}
		if r.wait, err = c.OpenAttach(ctx, nil, &r.out, stderr); err != nil {
			t.Fatalf("OpenAttach: %v", err)
		}
		clients[i] = r
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Client.Start: %v", err)
	}
	var wantOut strings.Builder
	for i := 1; i <= 3000; i++ {
		fmt.Fprintf(&wantOut, "%d\n", i)
	}
	wantErr := "done\n1\n2\n3\n4\n5\n"
	for i, r := range clients {
		if err := r.wait(); err != nil {
			t.Fatalf("client %d: attach: %v", i, err)
		}
		if r.out.String() != wantOut.String() {
			t.Errorf("client %d: stdout has %d bytes, want %d", i, r.out.Len(), wantOut.Len())
		}
		want := wantErr
		if i == 2 {
			want = ""
		}
		if r.err.String() != want {
			t.Errorf("client %d: stderr %q, want %q", i, r.err.String(), want)
		}
	}
	if e := wait(t, c); e.Code != 0 {
		t.Errorf("exit code %d", e.Code)
	}
	entries := readLog(t, tc.opts.LogPath)
	if got := streamText(entries, "stdout"); got != wantOut.String() {
		t.Errorf("log stdout has %d bytes, want %d", len(got), wantOut.Len())
	}
	if got := streamText(entries, "stderr"); got != wantErr {
		t.Errorf("log stderr %q, want %q", got, wantErr)
	}
	// Attaching after the output ended returns at once with nothing.
	var late bytes.Buffer
	if err := c.Attach(ctx, nil, &late, nil); err == nil && late.Len() != 0 {
		t.Errorf("late attach got %q", late.String())
	}
}

// TestNoLog is --log-driver none: without a LogPath the shim writes no log file, and an attached client still
// gets both streams and the exit is recorded.
func TestNoLog(t *testing.T) {
	tc := newContainer(t, []string{"sh", "-c", `echo out; echo err >&2; exit 3`})
	logPath := tc.opts.LogPath
	tc.opts.LogPath = ""
	c := tc.start(t)
	ctx := context.Background()
	var out, errb bytes.Buffer
	attached, err := c.OpenAttach(ctx, nil, &out, &errb)
	if err != nil {
		t.Fatalf("OpenAttach: %v", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Client.Start: %v", err)
	}
	if err := attached(); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if out.String() != "out\n" || errb.String() != "err\n" {
		t.Errorf("attached stdout %q, stderr %q; want \"out\\n\", \"err\\n\"", out.String(), errb.String())
	}
	if e := wait(t, c); e.Code != 3 {
		t.Errorf("exit code %d, want 3", e.Code)
	}
	waitShimGone(t, tc.opts.StateDir)
	if e, err := ReadExit(tc.opts.StateDir); err != nil || e.Code != 3 {
		t.Errorf("ReadExit: %+v, %v", e, err)
	}
	if logs, _ := filepath.Glob(filepath.Join(filepath.Dir(logPath), "*.log*")); len(logs) != 0 {
		t.Errorf("log files written without a LogPath: %v", logs)
	}
}

func TestStdinOnce(t *testing.T) {
	tc := newContainer(t, []string{"sh", "-c", "cat; echo after-eof"}, withStdinOnce)
	c := tc.start(t)
	ctx := context.Background()
	in := strings.Repeat("hello stdin\n", 10000) // larger than a pipe buffer
	var out bytes.Buffer
	attachWait, err := c.OpenAttach(ctx, strings.NewReader(in), &out, nil)
	if err != nil {
		t.Fatalf("OpenAttach: %v", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Client.Start: %v", err)
	}
	if err := attachWait(); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if want := in + "after-eof\n"; out.String() != want {
		t.Errorf("echoed %d bytes, want %d", out.Len(), len(want))
	}
	if e := wait(t, c); e.Code != 0 {
		t.Errorf("exit code %d", e.Code)
	}
}

func TestNoStdin(t *testing.T) {
	// Without Stdin the process reads /dev/null; a client's stdin is ignored.
	tc := newContainer(t, []string{"sh", "-c", "cat; echo eof"})
	c := tc.start(t)
	var out bytes.Buffer
	attachWait, err := c.OpenAttach(context.Background(), strings.NewReader("ignored\n"), &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := attachWait(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "eof\n" {
		t.Errorf("output %q, want %q", out.String(), "eof\n")
	}
}

func TestTerminal(t *testing.T) {
	tc := newContainer(t, []string{"sh", "-c", `[ -t 0 ] && [ -t 1 ] && echo is-a-tty; stty size; echo err >&2; read line; echo "got $line"`},
		withTerminal, withStdinOnce)
	c := tc.start(t)
	ctx := context.Background()
	if err := c.Resize(ctx, 40, 123); err != nil {
		t.Fatalf("Resize: %v", err)
	}
	pr, pw := io.Pipe()
	var out bytes.Buffer
	attachWait, err := c.OpenAttach(ctx, pr, &out, &out)
	if err != nil {
		t.Fatalf("OpenAttach: %v", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Client.Start: %v", err)
	}
	pw.Write([]byte("typed\n"))
	if err := attachWait(); err != nil {
		t.Fatalf("attach: %v", err)
	}
	pw.Close()
	got := strings.ReplaceAll(out.String(), "\r\n", "\n")
	for _, want := range []string{"is-a-tty\n", "40 123\n", "err\n", "got typed\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("tty output %q lacks %q", got, want)
		}
	}
	if e := wait(t, c); e.Code != 0 {
		t.Errorf("exit code %d", e.Code)
	}
	entries := readLog(t, tc.opts.LogPath)
	if s := streamText(entries, "stderr"); s != "" {
		t.Errorf("tty log has stderr entries: %q", s)
	}
	if s := streamText(entries, "stdout"); !strings.Contains(s, "40 123\r\n") {
		t.Errorf("tty log stdout %q lacks the size", s)
	}
}

func TestResizeWithoutTerminal(t *testing.T) {
	tc := newContainer(t, []string{"true"})
	c := tc.start(t)
	if err := c.Resize(context.Background(), 10, 10); err != nil {
		t.Errorf("Resize without tty: %v", err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	wait(t, c)
}

func TestExitCodes(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		kill bool
		want int
	}{
		{"true", []string{"true"}, false, 0},
		{"exit 3", []string{"sh", "-c", "exit 3"}, false, 3},
		{"killed", []string{"sleep", "1000"}, true, 128 + 9},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc := newContainer(t, tt.args)
			c := tc.start(t)
			if c.Pid() <= 0 || !processAlive(c.Pid()) {
				t.Fatalf("Pid %d is not a living process", c.Pid())
			}
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			if tt.kill {
				out, err := exec.Command(runtimeBin, "--root", tc.opts.RuntimeRoot, "kill", tc.opts.ID, "KILL").CombinedOutput()
				if err != nil {
					t.Fatalf("runc kill: %v: %s", err, out)
				}
			}
			e := wait(t, c)
			if e.Code != tt.want {
				t.Errorf("exit code %d, want %d", e.Code, tt.want)
			}
			if r, err := ReadExit(tc.opts.StateDir); err != nil || r.Code != tt.want {
				t.Errorf("ReadExit: %+v, %v", r, err)
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	tc := newContainer(t, []string{"nope"})
	_, err := Start(context.Background(), tc.opts)
	if err == nil {
		t.Fatal("Start of a missing executable succeeded")
	}
	if want := `exec: "nope": executable file not found in $PATH`; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks the runtime's message %q", err, want)
	}
	if !errors.Is(err, errdefs.ErrSystem) {
		t.Errorf("error %v has no errdefs class", err)
	}
	// No shim left behind: no socket, nothing answers, no runtime state.
	if _, err := Connect(context.Background(), tc.opts.StateDir); !errdefs.IsNotFound(err) {
		t.Errorf("Connect after failed Start: %v, want not found", err)
	}
	if exists(filepath.Join(tc.opts.StateDir, "shim.sock")) {
		t.Error("shim.sock left behind")
	}
	if exists(filepath.Join(tc.opts.RuntimeRoot, tc.opts.ID)) {
		t.Error("runtime state left behind")
	}

	// The same with a tty: the runtime may have sent the pty master before it failed.
	tty := newContainer(t, []string{"nope"}, withTerminal)
	if _, err := Start(context.Background(), tty.opts); err == nil ||
		!strings.Contains(err.Error(), `exec: "nope": executable file not found in $PATH`) {
		t.Errorf("tty Start of a missing executable: %v", err)
	}
	if exists(filepath.Join(tty.opts.StateDir, "shim.sock")) || exists(filepath.Join(tty.opts.StateDir, "console.sock")) {
		t.Error("tty: sockets left behind")
	}

	bad := tc.opts
	bad.ID = "../x"
	if _, err := Start(context.Background(), bad); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Start with id %q: %v, want invalid argument", bad.ID, err)
	}
	bad = tc.opts
	bad.StateDir = "/tmp/" + strings.Repeat("x", 120)
	if _, err := Start(context.Background(), bad); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Start with a long state dir: %v, want invalid argument", err)
	}
}

func TestStartTwice(t *testing.T) {
	tc := newContainer(t, []string{"sh", "-c", waitForGo})
	c := tc.start(t)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := c.Start(context.Background())
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "cannot start") {
		t.Errorf("second Start: %v, want a conflict with the runtime's refusal", err)
	}
	tc.release(t)
	wait(t, c)
}

// TestReconnect closes the client while the container runs (the daemon going away) and reconnects: nothing
// the container wrote meanwhile is lost, and Wait still reports the exit.
func TestReconnect(t *testing.T) {
	tc := newContainer(t, []string{"sh", "-c", `echo before; ` + waitForGo + `seq 1 2000; exit 7`})
	c := tc.start(t)
	pid := c.Pid()
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c2, err := Connect(context.Background(), tc.opts.StateDir)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if c2.Pid() != pid {
		t.Errorf("reconnected Pid %d, want %d", c2.Pid(), pid)
	}
	tc.release(t)
	if e := wait(t, c2); e.Code != 7 {
		t.Errorf("exit code %d, want 7", e.Code)
	}
	checkSeqLog(t, tc.opts.LogPath, 2000)
}

func checkSeqLog(t *testing.T, path string, n int) {
	t.Helper()
	var want strings.Builder
	want.WriteString("before\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if got := streamText(readLog(t, path), "stdout"); got != want.String() {
		t.Errorf("log stdout has %d bytes, want %d", len(got), want.Len())
	}
}

const helperEnv = "BERTH_SHIM_TEST_DAEMON"

// daemonHelper plays a daemon in a child process: it starts the container, says "started <shim pid>" and
// waits to be killed.
func daemonHelper() {
	var o Options
	if err := json.Unmarshal([]byte(os.Getenv(helperEnv)), &o); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	c, err := Start(context.Background(), o)
	if err == nil {
		err = c.Start(context.Background())
	}
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	b, _ := os.ReadFile(filepath.Join(o.StateDir, "shim.pid"))
	fmt.Printf("started %s\n", b)
	select {}
}

// TestDaemonKilled kills -9 the process that started the shim, then reconnects from another one.
func TestDaemonKilled(t *testing.T) {
	tc := newContainer(t, []string{"sh", "-c", `echo before; ` + waitForGo + `seq 1 2000; exit 7`})
	// Orphaned shims come to this process, which then reaps them.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })

	b, _ := json.Marshal(tc.opts)
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"="+string(b))
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	helper.Process.Kill()
	helper.Wait()
	shimPid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "started ")))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	t.Cleanup(func() {
		var ws unix.WaitStatus
		unix.Wait4(shimPid, &ws, 0, nil)
	})
	if !processAlive(shimPid) {
		t.Fatalf("shim %d died with its daemon", shimPid)
	}

	c, err := Connect(context.Background(), tc.opts.StateDir)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	var out bytes.Buffer
	attachWait, err := c.OpenAttach(context.Background(), nil, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	tc.release(t)
	if err := attachWait(); err != nil {
		t.Fatalf("attach: %v", err)
	}
	var want strings.Builder
	for i := 1; i <= 2000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	// "before" was written around the time of the reconnect: it may or may not come after the attach.
	if got := strings.TrimPrefix(out.String(), "before\n"); got != want.String() {
		t.Errorf("attached output has %d bytes, want %d", len(got), want.Len())
	}
	if e := wait(t, c); e.Code != 7 {
		t.Errorf("exit code %d, want 7", e.Code)
	}
	checkSeqLog(t, tc.opts.LogPath, 2000)
}

// TestShimRSS measures the resident memory of a shim holding a container: created and idle, then after
// 110 KB of output went through the log and an attached client.
func TestShimRSS(t *testing.T) {
	if os.Getenv("BERTH_SHIM_RACE") == "1" {
		t.Skip("a race-detector build is larger by design")
	}
	tc := newContainer(t, []string{"sh", "-c", `seq 1 20000; ` + waitForGo})
	c := tc.start(t)
	b, err := os.ReadFile(filepath.Join(tc.opts.StateDir, "shim.pid"))
	if err != nil {
		t.Fatal(err)
	}
	shimPid := string(b)
	checkRSS(t, "created, idle", shimPid)

	out := &countWriter{want: len(seqText(20000)), done: make(chan struct{})}
	attachWait, err := c.OpenAttach(context.Background(), nil, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-out.done // the output went through, so the shim has done real work
	checkRSS(t, "after output", shimPid)
	if os.Getenv("BERTH_SHIM_SMAPS") != "" {
		smaps, _ := os.ReadFile("/proc/" + shimPid + "/smaps")
		os.WriteFile(os.Getenv("BERTH_SHIM_SMAPS"), smaps, 0o644)
	}
	tc.release(t)
	attachWait()
	wait(t, c)
}

// checkRSS logs a process's resident memory and fails past the shim's 5 MiB budget.
func checkRSS(t *testing.T, when, pid string) {
	t.Helper()
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var rssKB int
	var parts []string
	for _, l := range strings.Split(string(status), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rssKB, _ = strconv.Atoi(f[1])
			parts = append(parts, "VmRSS "+f[1]+" kB")
		case "RssAnon:", "RssFile:":
			parts = append(parts, strings.TrimSuffix(f[0], ":")+" "+f[1]+" kB")
		}
	}
	t.Logf("shim %s: %s", when, strings.Join(parts, ", "))
	if rssKB == 0 || rssKB > 5*1024 {
		t.Errorf("shim %s: VmRSS %d kB, want at most 5 MiB", when, rssKB)
	}
}

// countWriter closes done once want bytes were written.
type countWriter struct {
	n, want int
	done    chan struct{}
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	if w.n >= w.want && w.n-len(p) < w.want {
		close(w.done)
	}
	return len(p), nil
}

func seqText(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.String()
}

// BenchmarkRunTrue is the shim's share of `docker run --rm busybox true`: create, attach, start, wait.
func BenchmarkRunTrue(b *testing.B) {
	tc := newContainer(b, []string{"true"})
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := Start(ctx, tc.opts)
		if err != nil {
			b.Fatal(err)
		}
		attachWait, err := c.OpenAttach(ctx, nil, io.Discard, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			b.Fatal(err)
		}
		if err := attachWait(); err != nil {
			b.Fatal(err)
		}
		if e, err := c.Wait(ctx); err != nil || e.Code != 0 {
			b.Fatalf("Wait: %+v, %v", e, err)
		}
	}
}

// TestRestart re-creates a container in the same state dir right after its exit (a restart policy), which must
// not race the old shim's cleanup, and refuses a second shim while the container runs.
func TestRestart(t *testing.T) {
	tc := newContainer(t, []string{"sh", "-c", waitForGo + "echo run"})
	ctx := context.Background()
	c := tc.start(t)
	if _, err := Start(ctx, tc.opts); !errdefs.IsConflict(err) {
		t.Errorf("second Start while the first runs: %v, want conflict", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tc.release(t)
	for i := 0; i < 3; i++ {
		if e := wait(t, c); e.Code != 0 {
			t.Fatalf("run %d: exit code %d", i, e.Code)
		}
		var err error
		if c, err = Start(ctx, tc.opts); err != nil {
			t.Fatalf("restart %d: %v", i, err)
		}
		if _, err := ReadExit(tc.opts.StateDir); !errdefs.IsNotFound(err) {
			t.Errorf("restart %d: the old exit is still there: %v", i, err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wait(t, c)
	if got := streamText(readLog(t, tc.opts.LogPath), "stdout"); got != strings.Repeat("run\n", 4) {
		t.Errorf("log of four runs: %q", got)
	}
}

// TestContextCancel: a cancelled Wait or Attach returns ctx's error and leaves the container alone.
func TestContextCancel(t *testing.T) {
	tc := newContainer(t, []string{"sh", "-c", waitForGo + "echo done"})
	c := tc.start(t)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	attachWait, err := c.OpenAttach(ctx, nil, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() {
		_, err := c.Wait(ctx)
		waitErr <- err
	}()
	cancel()
	if err := attachWait(); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled attach: %v", err)
	}
	if err := <-waitErr; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
	var out bytes.Buffer
	attachWait, err = c.OpenAttach(context.Background(), nil, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	tc.release(t)
	if err := attachWait(); err != nil || out.String() != "done\n" {
		t.Errorf("attach after the cancelled ones: %q, %v", out.String(), err)
	}
	if e := wait(t, c); e.Code != 0 {
		t.Errorf("exit code %d", e.Code)
	}
}

// TestLargeOutput pushes a few MiB through the shim with an attached client that keeps reading: the client
// and the log both get every byte.
func TestLargeOutput(t *testing.T) {
	const lines = 2000000 // 4 MB of "y\n", more than the per-client queue bound
	tc := newContainer(t, []string{"sh", "-c", fmt.Sprintf("yes | head -n %d", lines)})
	c := tc.start(t)
	out := &countWriter{want: 2 * lines, done: make(chan struct{})}
	attachWait, err := c.OpenAttach(context.Background(), nil, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := attachWait(); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if out.n != 2*lines {
		t.Errorf("client got %d bytes, want %d", out.n, 2*lines)
	}
	if e := wait(t, c); e.Code != 0 {
		t.Errorf("exit code %d", e.Code)
	}
	raw, err := os.ReadFile(tc.opts.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(raw, []byte("\n")); n != lines {
		t.Errorf("log has %d entries, want %d", n, lines)
	}
	for _, line := range [][]byte{raw[:bytes.IndexByte(raw, '\n')], raw[bytes.LastIndexByte(raw[:len(raw)-1], '\n')+1:]} {
		var e logEntry
		if err := json.Unmarshal(line, &e); err != nil || e.Log != "y\n" || e.Stream != "stdout" {
			t.Errorf("log entry %q: %+v, %v", line, e, err)
		}
	}
}
