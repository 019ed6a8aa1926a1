package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// cli abstracts over berth and docker so each scenario runs with both.
type cli struct {
	name string
	run  func(args ...string) testutil.Result
	in   func(stdin string, args ...string) testutil.Result
}

func clis(t *testing.T, d *testutil.Daemon) []cli {
	out := []cli{{
		name: "berth",
		run:  d.Berth,
		in:   func(s string, a ...string) testutil.Result { return d.BerthIn(strings.NewReader(s), a...) },
	}}
	if _, err := os.Stat("/usr/local/bin/docker"); err == nil {
		out = append(out, cli{
			name: "docker",
			run:  d.Docker,
			in:   func(s string, a ...string) testutil.Result { return d.DockerIn(strings.NewReader(s), a...) },
		})
	}
	return out
}

func must(t *testing.T, r testutil.Result) testutil.Result {
	t.Helper()
	if r.ExitCode != 0 {
		t.Fatalf("command failed: %s", r)
	}
	return r
}

func newDaemon(t *testing.T) *testutil.Daemon {
	d := testutil.StartDaemon(t)
	d.ImportBusybox()
	return d
}

func TestRunBasics(t *testing.T) {
	d := newDaemon(t)
	for _, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			r := must(t, c.run("run", "--rm", "busybox", "echo", "hello", "world"))
			if r.Stdout != "hello world\n" {
				t.Fatalf("stdout %q", r.Stdout)
			}
			r = c.in("hi\n", "run", "-i", "--rm", "busybox", "cat")
			if r.ExitCode != 0 || r.Stdout != "hi\n" {
				t.Fatalf("stdin pipe: %s", r)
			}
			r = c.run("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
			if r.ExitCode != 3 || r.Stdout != "out\n" || !strings.Contains(r.Stderr, "err") {
				t.Fatalf("exit code/streams: %s", r)
			}
			r = c.run("run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "nobody", "-h", "box1", "busybox",
				"sh", "-c", `echo $FOO $(pwd) $(id -u) $(hostname)`)
			if strings.TrimSpace(r.Stdout) != "bar /tmp 65534 box1" {
				t.Fatalf("env/workdir/user/hostname: %s", r)
			}
			r = c.run("run", "--rm", "busybox", "nonexistent-binary")
			if r.ExitCode != 127 {
				t.Fatalf("missing command must exit 127: %s", r)
			}
			r = c.run("run", "--rm", "busybox", "/etc/passwd")
			if r.ExitCode != 126 {
				t.Fatalf("non-executable must exit 126: %s", r)
			}
			r = c.run("run", "--rm", "no-such-image-here")
			if r.ExitCode != 125 {
				t.Fatalf("missing image must exit 125: %s", r)
			}
			r = c.run("run", "--rm", "--init", "busybox", "ps", "-o", "pid,comm")
			if !strings.Contains(r.Stdout, "docker-init") && !strings.Contains(r.Stdout, "tini") {
				t.Fatalf("--init must run an init as pid 1: %s", r)
			}
			r = c.run("run", "--rm", "--entrypoint", "echo", "busybox", "via", "entrypoint")
			if r.Stdout != "via entrypoint\n" {
				t.Fatalf("entrypoint: %s", r)
			}
		})
	}
}

func TestIsolation(t *testing.T) {
	d := newDaemon(t)
	r := must(t, d.Berth("run", "--rm", "--network", "none", "busybox", "sh", "-c",
		"echo pid1=$(cat /proc/1/comm); ls /sys/class/net | tr '\\n' ' '; echo; cat /proc/self/status | grep CapEff; ulimit -n"))
	out := r.Stdout
	if !strings.Contains(out, "pid1=sh") {
		t.Errorf("not in its own pid namespace: %s", out)
	}
	if strings.Contains(out, "eth0") {
		t.Errorf("host network visible: %s", out)
	}
	if !strings.Contains(out, "CapEff:\t00000000a80425fb") {
		t.Errorf("capabilities differ from docker's default set: %s", out)
	}
	// Masked /proc paths and a read-only /sys.
	r = d.Berth("run", "--rm", "busybox", "sh", "-c", "cat /proc/kcore | head -c1 | wc -c; touch /sys/x 2>&1 || true")
	if !strings.Contains(r.Stdout+r.Stderr, "Read-only file system") {
		t.Errorf("/sys must be read-only: %s", r)
	}
	// The image never changes: a write in one container is not seen by the next.
	must(t, d.Berth("run", "--rm", "busybox", "sh", "-c", "echo dirty > /etc/dirty"))
	r = d.Berth("run", "--rm", "busybox", "cat", "/etc/dirty")
	if r.ExitCode == 0 {
		t.Fatalf("a container's write leaked into the image: %s", r)
	}
	// An rlimit above the host's hard limit is refused with a clear error.
	r = d.Berth("run", "--rm", "--ulimit", "nofile=99999999:99999999", "busybox", "true")
	if r.ExitCode != 125 || strings.Contains(r.Stderr, "goroutine") {
		t.Fatalf("ulimit above the host limit: %s", r)
	}
}

func TestLifecycle(t *testing.T) {
	d := newDaemon(t)
	for _, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			name := "life-" + c.name
			id := strings.TrimSpace(must(t, c.run("run", "-d", "--name", name, "busybox", "sh", "-c",
				"trap 'echo got-term; exit 7' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")).Stdout)
			if len(id) != 64 {
				t.Fatalf("run -d prints the full id, got %q", id)
			}
			waitFor(t, func() bool { return strings.Contains(c.run("logs", name).Stdout, "tick 1") })
			ps := must(t, c.run("ps")).Stdout
			if !strings.Contains(ps, id[:12]) || !strings.Contains(ps, name) || !strings.Contains(ps, "Up ") {
				t.Fatalf("ps: %s", ps)
			}
			if got := strings.TrimSpace(must(t, c.run("inspect", "-f", "{{.State.Status}} {{.Name}}", name)).Stdout); got != "running /"+name {
				t.Fatalf("inspect -f: %q", got)
			}
			must(t, c.run("pause", name))
			if st := strings.TrimSpace(c.run("inspect", "-f", "{{.State.Status}}", name).Stdout); st != "paused" {
				t.Fatalf("after pause: %s", st)
			}
			if r := c.run("pause", name); r.ExitCode == 0 {
				t.Fatalf("pausing twice must fail")
			}
			must(t, c.run("unpause", name))
			top := must(t, c.run("top", name)).Stdout
			if !strings.Contains(top, "PID") || !strings.Contains(top, "sleep") && !strings.Contains(top, "sh") {
				t.Fatalf("top: %s", top)
			}
			r := c.run("exec", name, "sh", "-c", "echo in-exec $(cat /proc/1/comm); exit 4")
			if r.ExitCode != 4 || !strings.Contains(r.Stdout, "in-exec sh") {
				t.Fatalf("exec: %s", r)
			}
			r = c.in("from-stdin\n", "exec", "-i", "-e", "V=1", "-w", "/tmp", name, "sh", "-c", "read x; echo $x $V $(pwd)")
			if strings.TrimSpace(r.Stdout) != "from-stdin 1 /tmp" {
				t.Fatalf("exec -i -e -w: %s", r)
			}
			if r := c.run("exec", name, "no-such-cmd"); r.ExitCode != 127 && r.ExitCode != 126 {
				t.Fatalf("exec of a missing command: %s", r)
			}
			if r := c.run("rm", name); r.ExitCode == 0 || !strings.Contains(r.Stderr, "stop the container before removing") {
				t.Fatalf("rm of a running container must fail: %s", r)
			}
			must(t, c.run("stop", "-t", "5", name))
			if r := c.run("wait", name); strings.TrimSpace(r.Stdout) != "7" {
				t.Fatalf("wait after stop: %s", r)
			}
			logs := must(t, c.run("logs", "--tail", "1", name)).Stdout
			if strings.TrimSpace(logs) != "got-term" {
				t.Fatalf("logs --tail 1: %q", logs)
			}
			ts := must(t, c.run("logs", "-t", "--tail", "1", name)).Stdout
			if _, err := time.Parse(time.RFC3339Nano, strings.Fields(ts)[0]); err != nil {
				t.Fatalf("logs -t: %q", ts)
			}
			if r := c.run("kill", name); r.ExitCode == 0 {
				t.Fatalf("kill of a stopped container must fail")
			}
			must(t, c.run("start", name))
			must(t, c.run("restart", "-t", "1", name))
			must(t, c.run("kill", "-s", "KILL", name))
			if r := c.run("wait", name); strings.TrimSpace(r.Stdout) != "137" {
				t.Fatalf("wait after kill: %s", r)
			}
			must(t, c.run("rename", name, name+"-2"))
			if r := c.run("rename", name+"-2", name+"-2"); r.ExitCode == 0 {
				t.Fatalf("rename to the same name must fail")
			}
			must(t, c.run("rm", name+"-2"))
			if r := c.run("inspect", name+"-2"); r.ExitCode == 0 || !strings.Contains(r.Stderr, "No such") {
				t.Fatalf("inspect after rm: %s", r)
			}
		})
	}
}

func TestNamesAndBadInput(t *testing.T) {
	d := newDaemon(t)
	for _, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			name := "dup-" + c.name
			must(t, c.run("create", "--name", name, "busybox", "true"))
			r := c.run("create", "--name", name, "busybox", "true")
			if r.ExitCode == 0 || !strings.Contains(r.Stderr, "is already in use") {
				t.Fatalf("duplicate name: %s", r)
			}
			for _, args := range [][]string{
				{"start", "no-such-container"},
				{"stop", "no-such-container"},
				{"logs", "no-such-container"},
				{"rm", "no-such-container"},
			} {
				r := c.run(args...)
				if r.ExitCode == 0 || !strings.Contains(r.Stderr, "No such container: no-such-container") {
					t.Errorf("%v: %s", args, r)
				}
				if strings.Contains(r.Stderr, "goroutine") || strings.Contains(r.Stderr, "panic") {
					t.Errorf("%v: stack trace in output: %s", args, r)
				}
			}
			r = c.run("run", "--restart", "sometimes", "busybox", "true")
			if r.ExitCode != 125 {
				t.Errorf("bad --restart: %s", r)
			}
			r = c.in("this is not a tar", "import", "-", "broken:tar")
			if r.ExitCode == 0 || strings.Contains(r.Stderr, "goroutine") {
				t.Errorf("malformed tar: %s", r)
			}
			must(t, c.run("rm", name))
		})
	}
}

func TestAttachWaitEvents(t *testing.T) {
	d := newDaemon(t)
	for _, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			name := "att-" + c.name
			since := time.Now().Add(-time.Second).Unix()
			must(t, c.run("create", "-i", "--name", name, "busybox", "sh", "-c", "read x; echo got $x; exit 5"))
			// start -ai attaches before the process runs: nothing is missed.
			r := c.in("line\n", "start", "-ai", name)
			if r.ExitCode != 5 || strings.TrimSpace(r.Stdout) != "got line" {
				t.Fatalf("start -ai: %s", r)
			}
			if w := strings.TrimSpace(c.run("wait", name).Stdout); w != "5" {
				t.Fatalf("wait: %q", w)
			}
			ev := must(t, c.run("events", "--since", itoa(since), "--until", itoa(time.Now().Unix()+1),
				"--filter", "container="+name, "--format", "{{.Action}}")).Stdout
			for _, want := range []string{"create", "start", "die"} {
				if !strings.Contains(ev, want) {
					t.Fatalf("events missing %s: %q", want, ev)
				}
			}
			ev = must(t, c.run("events", "--since", itoa(since), "--until", itoa(time.Now().Unix()+1),
				"--filter", "container="+name, "--filter", "event=die", "--format", "{{json .}}")).Stdout
			var m map[string]any
			if err := json.Unmarshal([]byte(strings.Split(strings.TrimSpace(ev), "\n")[0]), &m); err != nil {
				t.Fatalf("event json %q: %v", ev, err)
			}
			attrs := m["Actor"].(map[string]any)["Attributes"].(map[string]any)
			if attrs["exitCode"] != "5" || attrs["name"] != name || attrs["image"] != "busybox" {
				t.Fatalf("die event attributes: %v", attrs)
			}
			must(t, c.run("rm", name))

			// attach to a running container sees new output.
			must(t, c.run("run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 3; echo late; sleep 0.2"))
			r = c.run("attach", name)
			if !strings.Contains(r.Stdout, "late") {
				t.Fatalf("attach: %s", r)
			}
			must(t, c.run("rm", "-f", name))
		})
	}
}

func TestLogsFollow(t *testing.T) {
	d := newDaemon(t)
	for _, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			name := "follow-" + c.name
			must(t, c.run("run", "-d", "--name", name, "busybox", "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.3; done"))
			r := must(t, c.run("logs", "-f", name))
			if r.Stdout != "line 1\nline 2\nline 3\n" {
				t.Fatalf("logs -f: %q", r.Stdout)
			}
			// On an exited container -f returns at once.
			r = must(t, c.run("logs", "-f", name))
			if r.Stdout != "line 1\nline 2\nline 3\n" {
				t.Fatalf("logs -f (exited): %q", r.Stdout)
			}
			must(t, c.run("rm", name))
		})
	}
}

func TestRestartPolicies(t *testing.T) {
	d := newDaemon(t)
	must(t, d.Berth("run", "-d", "--name", "onfail", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 1"))
	waitFor(t, func() bool {
		out := d.Berth("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "onfail").Stdout
		return strings.TrimSpace(out) == "2 exited"
	})
	must(t, d.Berth("run", "-d", "--name", "always", "--restart", "always", "busybox", "sh", "-c", "sleep 0.1"))
	waitFor(t, func() bool {
		out := d.Berth("inspect", "-f", "{{.RestartCount}}", "always").Stdout
		return strings.TrimSpace(out) >= "2"
	})
	must(t, d.Berth("stop", "always"))
	time.Sleep(500 * time.Millisecond)
	if st := strings.TrimSpace(d.Berth("inspect", "-f", "{{.State.Status}}", "always").Stdout); st != "exited" {
		t.Fatalf("a stopped always-container must stay stopped, is %s", st)
	}
	must(t, d.Berth("rm", "-f", "onfail", "always"))
}

// TestDaemonKill9 proves containers and their output survive a SIGKILL of
// berthd and are adopted by the next one.
func TestDaemonKill9(t *testing.T) {
	d := newDaemon(t)
	must(t, d.Berth("run", "-d", "--name", "survivor", "busybox", "sh", "-c",
		"i=0; while [ $i -lt 400 ]; do echo n $i; i=$((i+1)); sleep 0.05; done; exit 9"))
	must(t, d.Berth("run", "-d", "--name", "short", "busybox", "sh", "-c", "sleep 1; echo bye; exit 3"))
	must(t, d.Berth("run", "-d", "--name", "forever", "--restart", "always", "busybox", "sleep", "1000"))
	waitFor(t, func() bool { return strings.Contains(d.Berth("logs", "survivor").Stdout, "n 5") })
	pid := strings.TrimSpace(d.Berth("inspect", "-f", "{{.State.Pid}}", "survivor").Stdout)
	d.Kill9()
	time.Sleep(1500 * time.Millisecond) // "short" exits while no daemon runs
	if _, err := os.Stat("/proc/" + pid); err != nil {
		t.Fatalf("container process died with the daemon")
	}
	d.Restart()
	if st := strings.TrimSpace(d.Berth("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "short").Stdout); st != "exited 3" {
		t.Fatalf("exit while the daemon was down: %q", st)
	}
	if !strings.Contains(d.Berth("logs", "short").Stdout, "bye") {
		t.Fatalf("output written while the daemon was down was lost")
	}
	ps := d.Berth("ps").Stdout
	if !strings.Contains(ps, "survivor") || !strings.Contains(ps, "forever") {
		t.Fatalf("adopted containers missing from ps: %s", ps)
	}
	r := must(t, d.Berth("exec", "survivor", "echo", "exec-after-adopt"))
	if strings.TrimSpace(r.Stdout) != "exec-after-adopt" {
		t.Fatalf("exec after adoption: %s", r)
	}
	// logs -f follows to the end, with every line, none lost across the kill.
	r = must(t, d.Berth("logs", "-f", "survivor"))
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 400 || lines[0] != "n 0" || lines[399] != "n 399" {
		t.Fatalf("logs after adoption: %d lines, first %q last %q", len(lines), lines[0], lines[len(lines)-1])
	}
	if w := strings.TrimSpace(d.Berth("wait", "survivor").Stdout); w != "9" {
		t.Fatalf("wait after adoption: %q", w)
	}
	must(t, d.Berth("stop", "-t", "1", "forever"))
	must(t, d.Berth("rm", "-f", "survivor", "short", "forever"))
}

// TestRebootRestart simulates a reboot: the daemon dies, every shim and
// container process is gone and the exec root is wiped; containers with
// restart=always come back when berthd starts.
func TestRebootRestart(t *testing.T) {
	d := newDaemon(t)
	must(t, d.Berth("run", "-d", "--name", "svc", "--restart", "always", "busybox", "sleep", "1000"))
	must(t, d.Berth("run", "-d", "--name", "oneoff", "busybox", "sleep", "1000"))
	d.Kill9()
	out, _ := exec.Command("runc", "--root", filepath.Join(d.ExecRoot, "runtime", "runc"), "list", "-q").Output()
	for _, id := range strings.Fields(string(out)) {
		exec.Command("runc", "--root", filepath.Join(d.ExecRoot, "runtime", "runc"), "kill", id, "KILL").Run()
	}
	time.Sleep(300 * time.Millisecond)
	for _, id := range strings.Fields(string(out)) {
		exec.Command("runc", "--root", filepath.Join(d.ExecRoot, "runtime", "runc"), "delete", "-f", id).Run()
	}
	testutil.UnmountUnder(d.ExecRoot)
	os.RemoveAll(d.ExecRoot)
	d.Restart()
	waitFor(t, func() bool {
		return strings.TrimSpace(d.Berth("inspect", "-f", "{{.State.Status}}", "svc").Stdout) == "running"
	})
	if st := strings.TrimSpace(d.Berth("inspect", "-f", "{{.State.Status}}", "oneoff").Stdout); st != "exited" {
		t.Fatalf("a container without restart policy must stay exited after reboot, is %q", st)
	}
	must(t, d.Berth("rm", "-f", "svc", "oneoff"))
}

func TestPortAndInspectShape(t *testing.T) {
	d := newDaemon(t)
	must(t, d.Berth("create", "--name", "shape", "busybox", "true"))
	var insp []map[string]any
	if err := json.Unmarshal([]byte(must(t, d.Berth("inspect", "shape")).Stdout), &insp); err != nil {
		t.Fatal(err)
	}
	ns, ok := insp[0]["NetworkSettings"].(map[string]any)
	if !ok || ns["Ports"] == nil {
		t.Fatalf("NetworkSettings.Ports must never be null: %v", insp[0]["NetworkSettings"])
	}
	must(t, d.Berth("rm", "shape"))
}

func TestVersionInfo(t *testing.T) {
	d := testutil.StartDaemon(t)
	for _, c := range clis(t, d) {
		r := must(t, c.run("version", "--format", "{{.Server.APIVersion}}"))
		if strings.TrimSpace(r.Stdout) < "1.44" {
			t.Fatalf("%s: API version %q", c.name, r.Stdout)
		}
		r = must(t, c.run("info", "--format", "{{.OSType}} {{.LoggingDriver}}"))
		if strings.TrimSpace(r.Stdout) != "linux json-file" {
			t.Fatalf("%s info: %q", c.name, r.Stdout)
		}
	}
	resp, err := d.HTTPClient().Get("http://berth/v1.12/version")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("too-old version must be 400, got %d", resp.StatusCode)
	}
	resp, err = d.HTTPClient().Get("http://berth/v1.24/nope")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if resp.StatusCode != 404 || m["message"] != "page not found" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("unknown route: %d %v %s", resp.StatusCode, m, resp.Header.Get("Content-Type"))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("condition not met within 30s")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
