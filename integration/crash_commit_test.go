package integration

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// writerScript fills /data with files in a running container (once: a
// restart keeps them), records their checksum and then stays up.
const writerScript = `[ -e /data/SUM ] || { mkdir -p /data/sub && i=0 && while [ $i -lt 160 ]; do
	head -c 131072 /dev/urandom >/data/f$i; echo small$i >/data/sub/s$i; i=$((i+1)); done &&
	ln -s f0 /data/link && rm /etc/group && cat /data/f* /data/sub/* | md5sum >/data/SUM; } && echo ready >/tmp/ready &&
	exec sleep 3600`

// sumCmd prints the checksum of the files writerScript made and the
// presence of its link and deletion, as a container of the committed image sees them.
const sumCmd = `cat /data/f* /data/sub/* | md5sum; cat /data/SUM; readlink /data/link; test -e /etc/group && echo group-back || echo group-gone`

// TestCrashDuringCommit SIGKILLs berthd at many points of a commit of a
// running container, restarts it, and checks after every crash that
// `system check` finds nothing broken, that every image the client was told
// was committed (and any that was recorded before the reply was lost) holds
// exactly the container's changes, and that the container still runs and
// answers exec, stop and start. The commit does not pause the container
// (--pause=false): TestCrashDuringPausedCommit covers the freeze.
func TestCrashDuringCommit(t *testing.T) {
	crashCommits(t, false)
}

// TestCrashDuringPausedCommit is TestCrashDuringCommit with docker's
// default --pause: the container is frozen while its diff is taken, and a
// crash must not leave it frozen behind a "running" state.
func TestCrashDuringPausedCommit(t *testing.T) {
	crashCommits(t, true)
}

func crashCommits(t *testing.T, pause bool) {
	d := newDaemon(t)
	must(t, d.Berth("run", "-d", "--name", "writer", "--network", "none", "busybox", "sh", "-c", writerScript))
	waitFor(t, func() bool { return d.Berth("exec", "writer", "test", "-e", "/tmp/ready").ExitCode == 0 })
	want := expectedSum(t, d)
	pauseFlag := fmt.Sprintf("--pause=%t", pause)

	// An undisturbed commit: what a good image looks like, and how long a commit takes here.
	t0 := time.Now()
	must(t, d.Berth("commit", pauseFlag, "writer", "crash:clean"))
	took := time.Since(t0)
	checkImage(t, d, "crash:clean", want)
	must(t, d.Berth("rmi", "crash:clean"))

	// Fixed points, then points spread over the measured commit time, then random ones.
	delays := []time.Duration{0, 5 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
		100 * time.Millisecond, 200 * time.Millisecond}
	for k := 1; k <= 10; k++ { // up to a little past the end, where the reply may be lost
		delays = append(delays, took*time.Duration(k)/8)
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	for range 6 {
		delays = append(delays, time.Duration(rng.Int64N(int64(took)+1)))
	}
	t.Logf("an undisturbed commit took %s; kill points %v (random seed %d)", took, delays, seed)
	committed, lost := 0, 0
	for n, delay := range delays {
		tag := fmt.Sprintf("crash:%d", n)
		cmd := exec.Command(testutil.Bin(t, "berth"), "commit", pauseFlag, "writer", tag)
		cmd.Env = append(os.Environ(), "BERTH_HOST="+d.Host())
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		d.Kill9()
		err := cmd.Wait()
		reported := err == nil && strings.HasPrefix(strings.TrimSpace(out.String()), "sha256:")
		d.Restart()
		what := fmt.Sprintf("commit %s killed after %s (attempt %d)", pauseFlag, delay, n)

		if r := d.Berth("system", "check"); r.ExitCode != 0 {
			t.Fatalf("%s: system check: %s", what, r)
		}
		recorded := d.Berth("image", "inspect", tag).ExitCode == 0
		switch {
		case reported && !recorded:
			t.Fatalf("%s: the client was told %s was committed (%s), but the image is gone", what, tag, out.String())
		case recorded:
			committed++
			checkImage(t, d, tag, want)
			if reported {
				id := strings.TrimSpace(d.Berth("image", "inspect", "-f", "{{.Id}}", tag).Stdout)
				if id != strings.TrimSpace(out.String()) {
					t.Fatalf("%s: commit reported %s, the image is %s", what, out.String(), id)
				}
			}
			must(t, d.Berth("rmi", tag))
		default:
			lost++
		}
		checkWriter(t, d, what, want, pause)
	}
	t.Logf("%d crashes: %d commits recorded, %d never finished", len(delays), committed, lost)

	// The container still stops, starts and commits, and the store is clean.
	must(t, d.Berth("stop", "-t", "1", "writer"))
	must(t, d.Berth("start", "writer"))
	waitFor(t, func() bool { return d.Berth("exec", "writer", "test", "-e", "/tmp/ready").ExitCode == 0 })
	checkWriter(t, d, "after stop and start", want, pause)
	must(t, d.Berth("commit", pauseFlag, "writer", "crash:final"))
	checkImage(t, d, "crash:final", want)
	must(t, d.Berth("rm", "-f", "writer"))
	must(t, d.Berth("rmi", "crash:final"))
	if r := d.Berth("system", "check"); r.ExitCode != 0 {
		t.Fatalf("final system check: %s", r)
	}
}

// expectedSum is what sumCmd prints for the writer's changes.
func expectedSum(t *testing.T, d *testutil.Daemon) string {
	t.Helper()
	got := must(t, d.Berth("exec", "writer", "sh", "-c", sumCmd)).Stdout
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 4 || lines[0] != lines[1] || lines[2] != "f0" || lines[3] != "group-gone" {
		t.Fatalf("the writer's own view of its files: %q", got)
	}
	return got
}

// checkImage runs the image and compares its files with the writer's.
func checkImage(t *testing.T, d *testutil.Daemon, ref, want string) {
	t.Helper()
	r := d.Berth("run", "--rm", "--network", "none", ref, "sh", "-c", sumCmd)
	if r.ExitCode != 0 || r.Stdout != want {
		t.Fatalf("image %s does not hold the container's changes: %s\nwant stdout %q", ref, r, want)
	}
}

// checkWriter asserts the writer container is running, not left frozen by
// an interrupted commit, and unchanged. pause says the commits froze it.
func checkWriter(t *testing.T, d *testutil.Daemon, what, want string, pause bool) {
	t.Helper()
	st := strings.TrimSpace(d.Berth("inspect", "-f", "{{.State.Status}}", "writer").Stdout)
	if st != "running" {
		t.Fatalf("%s: the container is %q, not running", what, st)
	}
	r := d.Berth("exec", "writer", "sh", "-c", sumCmd)
	if r.ExitCode != 0 || r.Stdout != want {
		// With pause, a commit cut short by the kill froze the container; the
		// next berthd must thaw it when it adopts it.
		t.Fatalf("%s (commit pauses: %v): exec in the container: %s\nwant stdout %q", what, pause, r, want)
	}
}
