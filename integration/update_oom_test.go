package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cgroupFile reads one control file of the running container's cgroup: it
// looks the controller up in /proc/<init pid>/cgroup (a v1 hierarchy that
// has it, else the v2 one) so the test reads whichever version this machine
// uses for it. ok is false when the file does not exist.
func cgroupFile(t *testing.T, pid, controller, file string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		t.Fatalf("cgroup of pid %s: %v", pid, err)
	}
	var v2 string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				if v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", parts[1], parts[2], file)); err == nil {
					return strings.TrimSpace(string(v)), true
				}
			}
		}
	}
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if v, err := os.ReadFile(filepath.Join(root, v2, file)); err == nil {
			return strings.TrimSpace(string(v)), true
		}
	}
	return "", false
}

// checkLimits asserts 64 MiB of memory, half a CPU and 50 pids in the
// container's cgroup, in v1's or v2's files.
func checkLimits(t *testing.T, c cli, name string) {
	t.Helper()
	pid := strings.TrimSpace(must(t, c.run("inspect", "-f", "{{.State.Pid}}", name)).Stdout)
	if v, ok := cgroupFile(t, pid, "memory", "memory.limit_in_bytes"); ok {
		if v != "67108864" {
			t.Errorf("memory.limit_in_bytes = %s, want 67108864", v)
		}
	} else if v, ok := cgroupFile(t, pid, "memory", "memory.max"); !ok || v != "67108864" {
		t.Errorf("memory.max = %q (found %v), want 67108864", v, ok)
	}
	if q, ok := cgroupFile(t, pid, "cpu", "cpu.cfs_quota_us"); ok {
		p, _ := cgroupFile(t, pid, "cpu", "cpu.cfs_period_us")
		if q != "50000" || p != "100000" {
			t.Errorf("cpu.cfs_quota_us/cpu.cfs_period_us = %s/%s, want 50000/100000", q, p)
		}
	} else if v, ok := cgroupFile(t, pid, "cpu", "cpu.max"); !ok || v != "50000 100000" {
		t.Errorf("cpu.max = %q (found %v), want \"50000 100000\"", v, ok)
	}
	if v, ok := cgroupFile(t, pid, "pids", "pids.max"); !ok || v != "50" {
		t.Errorf("pids.max = %q (found %v), want 50", v, ok)
	}
}

func TestUpdateResources(t *testing.T) {
	d := newDaemon(t)
	for _, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			name := "upd-" + c.name
			// dockerd refuses a memory limit above the swap limit already
			// set; -m 32m sets an implicit swap limit of 64m.
			must(t, c.run("run", "-d", "--name", name, "-m", "32m", "busybox", "sleep", "1000"))
			r := must(t, c.run("update", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50", name))
			if r.Stdout != name+"\n" {
				t.Fatalf("update prints the name: %q", r.Stdout)
			}
			want := "67108864 67108864 500000000 50"
			format := "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}"
			if got := strings.TrimSpace(must(t, c.run("inspect", "-f", format, name)).Stdout); got != want {
				t.Errorf("inspect after update: %s, want %s", got, want)
			}
			checkLimits(t, c, name)

			// The next start uses the stored values.
			must(t, c.run("restart", "-t", "0", name))
			if got := strings.TrimSpace(must(t, c.run("inspect", "-f", format, name)).Stdout); got != want {
				t.Errorf("inspect after restart: %s, want %s", got, want)
			}
			checkLimits(t, c, name)

			must(t, c.run("update", "--restart", "always", name))
			if got := strings.TrimSpace(must(t, c.run("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", name)).Stdout); got != "always" {
				t.Errorf("restart policy after update: %s", got)
			}

			// A stopped container only has its configuration changed.
			must(t, c.run("stop", "-t", "0", name))
			must(t, c.run("update", "--cpu-shares", "512", name))
			if got := strings.TrimSpace(must(t, c.run("inspect", "-f", "{{.HostConfig.CpuShares}} {{.State.Status}}", name)).Stdout); got != "512 exited" {
				t.Errorf("stopped container after update: %s", got)
			}
			must(t, c.run("start", name))
			pid := strings.TrimSpace(must(t, c.run("inspect", "-f", "{{.State.Pid}}", name)).Stdout)
			if v, ok := cgroupFile(t, pid, "cpu", "cpu.shares"); ok && v != "512" {
				t.Errorf("cpu.shares after start = %s, want 512", v)
			}

			for _, tc := range []struct {
				args []string
				want string
			}{
				{[]string{name}, "you must provide one or more flags when using this command"},
				{[]string{"--memory", "64m", "no-such-container"}, "No such container: no-such-container"},
				{[]string{"--memory", "1m", name}, "Minimum memory limit allowed is 6MB"},
				{[]string{"--cpu-period", "50000", name}, "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"},
				{[]string{"--memory", "256m", name}, "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"},
				{[]string{"--restart", "sometimes", name}, "invalid restart policy"},
			} {
				r := c.run(append([]string{"update"}, tc.args...)...)
				if r.ExitCode != 1 || !strings.Contains(r.Stderr, tc.want) {
					t.Errorf("update %v: %s, want exit 1 and %q", tc.args, r, tc.want)
				}
			}
			// Several containers: each name that worked is printed, the failures joined.
			r = c.run("update", "--pids-limit", "60", name, "no-such-container")
			if r.ExitCode != 1 || r.Stdout != name+"\n" || !strings.Contains(r.Stderr, "No such container") {
				t.Errorf("update of two containers, one missing: %s", r)
			}
			must(t, c.run("rm", "-f", name))
		})
	}
}

func TestUpdateAPI(t *testing.T) {
	d := newDaemon(t)
	must(t, d.Berth("run", "-d", "--name", "upd-api", "busybox", "sleep", "1000"))
	t.Cleanup(func() { d.Berth("rm", "-f", "upd-api") })
	for _, tc := range []struct {
		path, body string
		status     int
		want       string
	}{
		{"/containers/upd-api/update", `{"CpuShares":256,"PidsLimit":40}`, 200, `{"Warnings":[]}`},
		{"/containers/no-such/update", `{"CpuShares":256}`, 404, "No such container: no-such"},
		{"/containers/upd-api/update", `{"Memory":1024}`, 400, "Minimum memory limit allowed is 6MB"},
		{"/containers/upd-api/update", `{"BlkioWeight":5}`, 400, "Range of blkio weight is from 10 to 1000"},
		{"/containers/upd-api/update", `{"CpusetCpus":"0-99"}`, 400, "Requested CPUs are not available"},
		{"/containers/upd-api/update", `{"RestartPolicy":{"Name":"always","MaximumRetryCount":3}}`, 400, "maximum retry count"},
		{"/containers/upd-api/update", `{"Memory":67108864}`, 409, "Memory limit should be smaller than already set memoryswap limit"},
		{"/containers/upd-api/update", `{not json`, 400, "invalid JSON"},
	} {
		r := raw(t, d, "POST", tc.path, tc.body)
		if r.status != tc.status {
			t.Errorf("POST %s %s: %d %s, want %d", tc.path, tc.body, r.status, r.body, tc.status)
			continue
		}
		if tc.status == 200 {
			if got := strings.TrimSpace(string(r.body)); got != tc.want {
				t.Errorf("POST %s %s: body %s, want %s", tc.path, tc.body, got, tc.want)
			}
			continue
		}
		if msg := r.message(t); !strings.Contains(msg, tc.want) {
			t.Errorf("POST %s %s: %q, want %q", tc.path, tc.body, msg, tc.want)
		}
	}
	got := strings.TrimSpace(must(t, d.Berth("inspect", "-f", "{{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}}", "upd-api")).Stdout)
	if got != "256 40" {
		t.Errorf("inspect after the API update: %s", got)
	}
	pid := strings.TrimSpace(must(t, d.Berth("inspect", "-f", "{{.State.Pid}}", "upd-api")).Stdout)
	if v, ok := cgroupFile(t, pid, "pids", "pids.max"); !ok || v != "40" {
		t.Errorf("pids.max = %q (found %v), want 40", v, ok)
	}
	// A paused container is updated too; -1 lifts the pids limit.
	must(t, d.Berth("pause", "upd-api"))
	must(t, d.Berth("update", "--pids-limit", "-1", "upd-api"))
	must(t, d.Berth("unpause", "upd-api"))
	if v, ok := cgroupFile(t, pid, "pids", "pids.max"); !ok || v != "max" {
		t.Errorf("pids.max after update of the paused container = %q (found %v), want max", v, ok)
	}
	// An auto-removed container keeps "no" as its restart policy.
	must(t, d.Berth("run", "-d", "--rm", "--name", "upd-rm", "busybox", "sleep", "1000"))
	r := d.Berth("update", "--restart", "always", "upd-rm")
	if r.ExitCode != 1 || !strings.Contains(r.Stderr, "Restart policy cannot be updated because AutoRemove is enabled for the container") {
		t.Errorf("restart policy of an auto-removed container: %s", r)
	}
	must(t, d.Berth("rm", "-f", "upd-rm"))
}

// TestOOMWhileDaemonDown: an OOM kill while no berthd runs is recorded by
// the shim and shown once the next berthd has read the exit.
func TestOOMWhileDaemonDown(t *testing.T) {
	d := newDaemon(t)
	dir := t.TempDir()
	must(t, d.Berth("run", "-d", "--name", "oom-down", "-m", "16m", "--memory-swap", "16m", "-v", dir+":/s", "busybox", "sh", "-c",
		"while [ ! -e /s/go ]; do sleep 0.05; done; x=1234567890; while :; do x=$x$x; done"))
	pid := strings.TrimSpace(must(t, d.Berth("inspect", "-f", "{{.State.Pid}}", "oom-down")).Stdout)
	d.Kill9()
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, err := os.Stat("/proc/" + pid)
		return os.IsNotExist(err)
	})
	d.Restart()
	waitFor(t, func() bool {
		return strings.TrimSpace(d.Berth("inspect", "-f", "{{.State.Status}}", "oom-down").Stdout) == "exited"
	})
	if got := strings.TrimSpace(must(t, d.Berth("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", "oom-down")).Stdout); got != "true 137" {
		t.Errorf("OOMKilled and exit code after a daemon restart: %q, want \"true 137\"", got)
	}
	must(t, d.Berth("rm", "-f", "oom-down"))
}

func TestOOMKilled(t *testing.T) {
	d := newDaemon(t)
	since := time.Now()
	for _, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			oom, ok, killed := "oom-"+c.name, "ok-"+c.name, "killed-"+c.name
			// No swap: the limit is hit at once (the host may have none anyway).
			r := c.run("run", "--name", oom, "-m", "16m", "--memory-swap", "16m", "busybox", "sh", "-c",
				"x=1234567890; while :; do x=$x$x; done")
			if r.ExitCode != 137 {
				t.Fatalf("an OOM-killed container exits 137: %s", r)
			}
			must(t, c.run("run", "--name", ok, "-m", "16m", "busybox", "true"))
			// Killed by hand, not by the OOM killer: 137 too, but not OOMKilled.
			must(t, c.run("run", "-d", "--name", killed, "-m", "16m", "busybox", "sleep", "1000"))
			must(t, c.run("kill", killed))
			waitFor(t, func() bool {
				return strings.TrimSpace(c.run("inspect", "-f", "{{.State.Status}}", killed).Stdout) == "exited"
			})
			for _, tc := range []struct{ name, want string }{
				{oom, "true 137"}, {ok, "false 0"}, {killed, "false 137"},
			} {
				got := strings.TrimSpace(must(t, c.run("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", tc.name)).Stdout)
				if got != tc.want {
					t.Errorf("%s: OOMKilled and exit code %q, want %q", tc.name, got, tc.want)
				}
			}
			// A new run starts with OOMKilled false again.
			must(t, c.run("start", "-a", ok))
			if got := strings.TrimSpace(must(t, c.run("inspect", "-f", "{{.State.OOMKilled}}", ok)).Stdout); got != "false" {
				t.Errorf("%s after a clean rerun: OOMKilled %s", ok, got)
			}
		})
	}
	// Docker's oom event, before die, for the OOM-killed containers only.
	q := fmt.Sprintf("since=%d&until=%d", since.Unix(), time.Now().Unix()+1)
	r := raw(t, d, "GET", "/events?"+q, "")
	var seq []string
	dec := json.NewDecoder(bytes.NewReader(r.body))
	for {
		var m struct {
			Action string
			Actor  struct{ Attributes map[string]string }
		}
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("events: %v in %s", err, r.body)
		}
		if m.Action == "oom" || strings.HasPrefix(m.Action, "die") {
			seq = append(seq, m.Actor.Attributes["name"]+":"+m.Action)
		}
	}
	got := strings.Join(seq, ",")
	for _, c := range clis(t, d) {
		if !strings.Contains(got, "oom-"+c.name+":oom,oom-"+c.name+":die") {
			t.Errorf("events: want oom then die for oom-%s in %s", c.name, got)
		}
		for _, n := range []string{"ok-", "killed-"} {
			if strings.Contains(got, n+c.name+":oom") {
				t.Errorf("events: oom for %s%s in %s", n, c.name, got)
			}
		}
	}
}
