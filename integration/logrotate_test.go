package integration

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// followCmd is `<cli> logs -f name` against d, not yet started.
func followCmd(ctx context.Context, t *testing.T, d *testutil.Daemon, cliName, name string) *exec.Cmd {
	if cliName == "docker" {
		cfg := filepath.Join(d.Root, "docker-config")
		os.MkdirAll(cfg, 0o700)
		cmd := exec.CommandContext(ctx, testutil.DockerCLI(t), "logs", "-f", name)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host(), "DOCKER_CONFIG="+cfg, "DOCKER_CLI_HINTS=false")
		return cmd
	}
	cmd := exec.CommandContext(ctx, testutil.Bin(t, "berth"), "logs", "-f", name)
	cmd.Env = append(os.Environ(), "BERTH_HOST="+d.Host())
	return cmd
}

// lineNo parses "line N xxx..." as the container below prints it.
func lineNo(t *testing.T, s string) int {
	t.Helper()
	f := strings.Fields(s)
	if len(f) != 3 || f[0] != "line" {
		t.Fatalf("unexpected log line %q", s)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("unexpected log line %q", s)
	}
	return n
}

// TestLogRotation: --log-opt max-size/max-file rotate the json-file log as dockerd does, and logs, --tail and
// -f read across the rotated files.
func TestLogRotation(t *testing.T) {
	const (
		lines    = 22000 // ~2 MB of output, ~3.6 MB of log
		maxSize  = 100000
		maxFiles = 3
	)
	pad := strings.Repeat("x", 80)
	script := "echo ready; while [ ! -e /tmp/go ]; do sleep 0.05; done; seq 1 " + strconv.Itoa(lines) +
		" | sed 's/.*/line & " + pad + "/'"
	d := newDaemon(t)
	for _, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			// Refused at create, with dockerd's wording where dockerd has one.
			for _, bad := range []struct {
				opts []string
				msg  string
			}{
				{[]string{"max-size=abc"}, "invalid max-size 'abc'"},
				{[]string{"max-size=0"}, "max-size must be a positive number"},
				{[]string{"max-file=3"}, "needs max-size"},
				{[]string{"max-size=1m", "max-file=0"}, "max-file cannot be less than 1"},
				{[]string{"max-size=1m", "max-file=3", "compress=true"}, "unknown log opt 'compress' for json-file log driver"},
				{[]string{"tag=x"}, "unknown log opt 'tag' for json-file log driver"},
			} {
				args := []string{"run", "--rm"}
				for _, o := range bad.opts {
					args = append(args, "--log-opt", o)
				}
				r := c.run(append(args, "busybox", "true")...)
				if r.ExitCode != 125 || !strings.Contains(r.Stderr, bad.msg) {
					t.Errorf("--log-opt %v: want exit 125 and %q, got %s", bad.opts, bad.msg, r)
				}
			}

			name := "logrot-" + c.name
			must(t, c.run("run", "-d", "--name", name, "--log-opt", "max-size=100k", "--log-opt", "max-file=3",
				"busybox", "sh", "-c", script))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			follow := followCmd(ctx, t, d, c.name, name)
			out, err := follow.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := follow.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(out)
			if !sc.Scan() || sc.Text() != "ready" {
				t.Fatalf("logs -f: first line %q, %v", sc.Text(), sc.Err())
			}
			// The follower is reading: only now does the container write its output.
			must(t, c.run("exec", name, "touch", "/tmp/go"))
			var followed []int
			for sc.Scan() {
				followed = append(followed, lineNo(t, sc.Text()))
			}
			if err := follow.Wait(); err != nil {
				t.Fatalf("logs -f: %v", err)
			}
			if r := must(t, c.run("wait", name)); strings.TrimSpace(r.Stdout) != "0" {
				t.Fatalf("exit %s", r.Stdout)
			}

			// On disk: at most max-file files, none past max-size.
			id := strings.TrimSpace(must(t, c.run("inspect", "-f", "{{.Id}}", name)).Stdout)
			logPath := filepath.Join(d.DataRoot, "containers", id, id+"-json.log")
			files, _ := filepath.Glob(logPath + "*")
			if len(files) != maxFiles {
				t.Errorf("log files %v, want %d", files, maxFiles)
			}
			for _, f := range files {
				if fi, err := os.Stat(f); err != nil || fi.Size() > maxSize {
					t.Errorf("%s: %v bytes (max-size %d), %v", filepath.Base(f), fi.Size(), maxSize, err)
				}
			}

			// logs: the rotated files oldest first, then the current one: consecutive lines up to the last.
			r := must(t, c.run("logs", name))
			got := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
			first := lineNo(t, got[0])
			if first <= 1 || lineNo(t, got[len(got)-1]) != lines {
				t.Fatalf("logs: %d lines from %d to %q; want rotated-away lines gone and the last line %d",
					len(got), first, got[len(got)-1], lines)
			}
			for i, l := range got {
				if lineNo(t, l) != first+i {
					t.Fatalf("logs: line %d is %q, want line %d", i, l, first+i)
				}
			}

			// --tail counts across files: the last 5, and more than the current file holds.
			r = must(t, c.run("logs", "--tail", "5", name))
			if want := strings.Join(got[len(got)-5:], "\n") + "\n"; r.Stdout != want {
				t.Errorf("logs --tail 5:\n%s\nwant\n%s", r.Stdout, want)
			}
			n := len(got) - 10
			r = must(t, c.run("logs", "--tail", strconv.Itoa(n), name))
			if want := strings.Join(got[10:], "\n") + "\n"; r.Stdout != want {
				t.Errorf("logs --tail %d: %d bytes, want %d", n, len(r.Stdout), len(want))
			}

			// logs -f: in order, nothing twice, and every line of the files that remain.
			for i := 1; i < len(followed); i++ {
				if followed[i] <= followed[i-1] {
					t.Fatalf("logs -f: line %d after %d", followed[i], followed[i-1])
				}
			}
			if len(followed) < len(got) {
				t.Fatalf("logs -f: %d lines, fewer than the %d left on disk", len(followed), len(got))
			}
			if tail := followed[len(followed)-len(got):]; tail[0] != first || tail[len(tail)-1] != lines {
				t.Errorf("logs -f: its last %d lines run %d..%d, want %d..%d", len(got), tail[0], tail[len(tail)-1], first, lines)
			}
			t.Logf("logs -f read %d of %d lines; %d remain on disk", len(followed), lines, len(got))
			must(t, c.run("rm", name))
		})
	}
}
