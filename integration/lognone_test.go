package integration

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// cliCmd is `<cli> args...` against d, not yet started, for commands whose output is read as it comes.
func cliCmd(ctx context.Context, t *testing.T, d *testutil.Daemon, cliName string, args ...string) *exec.Cmd {
	if cliName == "docker" {
		cfg := filepath.Join(d.Root, "docker-config")
		os.MkdirAll(cfg, 0o700)
		cmd := exec.CommandContext(ctx, testutil.DockerCLI(t), args...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host(), "DOCKER_CONFIG="+cfg, "DOCKER_CLI_HINTS=false")
		return cmd
	}
	cmd := exec.CommandContext(ctx, testutil.Bin(t, "berth"), args...)
	cmd.Env = append(os.Environ(), "BERTH_HOST="+d.Host())
	return cmd
}

// logFiles lists the json-file logs (current and rotated) in a container's directory.
func logFiles(t *testing.T, d *testutil.Daemon, id string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(d.DataRoot, "containers", id, "*-json.log*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestLogDriverNone: --log-driver none as dockerd has it: the output still reaches `run` and `attach`, nothing
// is stored, `logs` says the driver cannot be read (exit 1), inspect shows none, and options are refused.
func TestLogDriverNone(t *testing.T) {
	d := newDaemon(t)
	for _, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			r := must(t, c.run("run", "--rm", "--log-driver", "none", "busybox", "sh", "-c", "echo hi; echo oops >&2"))
			if r.Stdout != "hi\n" || r.Stderr != "oops\n" {
				t.Errorf("run --log-driver none: stdout %q, stderr %q; want \"hi\\n\", \"oops\\n\"", r.Stdout, r.Stderr)
			}
			must(t, c.run("run", "--rm", "--log-driver", "json-file", "busybox", "true"))

			// Refused at create, as docker's CLI does for options with none and berthd for other drivers.
			r = c.run("run", "--rm", "--log-driver", "none", "--log-opt", "max-size=1m", "busybox", "true")
			if r.ExitCode != 125 || !strings.Contains(r.Stderr, "invalid logging opts for driver none") {
				t.Errorf("none with --log-opt: want exit 125 and dockerd's message, got %s", r)
			}
			r = c.run("run", "--rm", "--log-driver", "syslog", "busybox", "true")
			if r.ExitCode != 125 || !strings.Contains(r.Stderr, `logging driver "syslog" is not supported`) {
				t.Errorf("--log-driver syslog: want exit 125 and the clear refusal, got %s", r)
			}

			name := "lognone-" + c.name
			id := strings.TrimSpace(must(t, c.run("run", "-d", "--name", name, "--log-driver", "none",
				"busybox", "sh", "-c", "echo before; while [ ! -e /tmp/go ]; do echo tick; sleep 0.1; done; echo done")).Stdout)
			r = must(t, c.run("inspect", "-f", "{{.HostConfig.LogConfig.Type}}|{{.LogPath}}", name))
			if got := strings.TrimSpace(r.Stdout); got != "none|" {
				t.Errorf("inspect LogConfig.Type|LogPath = %q, want \"none|\"", got)
			}

			// attach sees the output: the first tick says it is connected, then the container is let go.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			attach := cliCmd(ctx, t, d, c.name, "attach", name)
			out, err := attach.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := attach.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(out)
			if !sc.Scan() || sc.Text() != "tick" {
				t.Fatalf("attach: first line %q, %v; want tick", sc.Text(), sc.Err())
			}
			must(t, c.run("exec", name, "touch", "/tmp/go"))
			last := ""
			for sc.Scan() {
				last = sc.Text()
			}
			if err := attach.Wait(); err != nil {
				t.Errorf("attach: %v", err)
			}
			if last != "done" {
				t.Errorf("attach: last line %q, want done", last)
			}
			if r := must(t, c.run("wait", name)); strings.TrimSpace(r.Stdout) != "0" {
				t.Fatalf("exit %s", r.Stdout)
			}

			r = c.run("logs", name)
			if r.ExitCode != 1 || r.Stdout != "" || !strings.Contains(r.Stderr, "configured logging driver does not support reading") {
				t.Errorf("logs: want exit 1 and dockerd's message, got %s", r)
			}
			if files := logFiles(t, d, id); len(files) != 0 {
				t.Errorf("log files of a none container: %v", files)
			}
			must(t, c.run("rm", name))
		})
	}
	// berthd refuses what the CLIs refuse before sending it.
	for _, body := range []string{
		`{"Image":"busybox","Cmd":["true"],"HostConfig":{"LogConfig":{"Type":"none","Config":{"max-size":"1m"}}}}`,
		`{"Image":"busybox","Cmd":["true"],"HostConfig":{"LogConfig":{"Type":"journald"}}}`,
	} {
		r := raw(t, d, "POST", "/containers/create", body)
		if msg := r.message(t); r.status != 400 ||
			!strings.Contains(msg, "invalid logging opts for driver none") && !strings.Contains(msg, `logging driver "journald" is not supported`) {
			t.Errorf("create %s: %d %q, want 400 and the refusal", body, r.status, msg)
		}
	}
}

// TestLogDriverDaemonDefault: berthd --log-driver and --log-opt are the log config of containers created
// without one, as dockerd's flags are.
func TestLogDriverDaemonDefault(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		d := testutil.StartDaemon(t, "--log-driver", "none")
		d.ImportBusybox()
		if r := must(t, d.Berth("info", "-f", "{{.LoggingDriver}}")); strings.TrimSpace(r.Stdout) != "none" {
			t.Errorf("info LoggingDriver %q, want none", r.Stdout)
		}
		for _, c := range clis(t, d) {
			r := must(t, c.run("run", "--name", "dflt-"+c.name, "busybox", "echo", "hi"))
			if r.Stdout != "hi\n" {
				t.Errorf("%s run: stdout %q", c.name, r.Stdout)
			}
			r = must(t, c.run("inspect", "-f", "{{.Id}} {{.HostConfig.LogConfig.Type}}", "dflt-"+c.name))
			id, typ, _ := strings.Cut(strings.TrimSpace(r.Stdout), " ")
			if typ != "none" {
				t.Errorf("%s: LogConfig.Type %q, want the daemon's none", c.name, typ)
			}
			if files := logFiles(t, d, id); len(files) != 0 {
				t.Errorf("%s: log files %v", c.name, files)
			}
			// A container may still ask for json-file.
			must(t, c.run("run", "--name", "json-"+c.name, "--log-driver", "json-file", "busybox", "echo", "kept"))
			if r := must(t, c.run("logs", "json-"+c.name)); r.Stdout != "kept\n" {
				t.Errorf("%s logs of a json-file container: %q", c.name, r.Stdout)
			}
		}
	})
	t.Run("log-opt", func(t *testing.T) {
		d := testutil.StartDaemon(t, "--log-opt", "max-size=10k", "--log-opt", "max-file=2")
		d.ImportBusybox()
		for _, c := range clis(t, d) {
			must(t, c.run("create", "--name", "opts-"+c.name, "busybox", "true"))
			must(t, c.run("create", "--name", "own-"+c.name, "--log-opt", "max-size=1m", "busybox", "true"))
			for name, want := range map[string]string{
				"opts-" + c.name: "json-file map[max-file:2 max-size:10k]",
				"own-" + c.name:  "json-file map[max-file:2 max-size:1m]",
			} {
				r := must(t, c.run("inspect", "-f", "{{.HostConfig.LogConfig.Type}} {{.HostConfig.LogConfig.Config}}", name))
				if got := strings.TrimSpace(r.Stdout); got != want {
					t.Errorf("%s: log config %q, want %q", name, got, want)
				}
			}
		}
	})
}
