package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// These tests drive a real daemon: berthd, or dockerd for comparison. They run only when
// BERTH_TEST_HOST names its socket (unix:///...), with BERTH_TEST_IMAGE (default "busybox")
// a local image holding a busybox userland. Every container they make is removed.
func daemonHost(t *testing.T) (string, string) {
	t.Helper()
	host := os.Getenv("BERTH_TEST_HOST")
	if host == "" {
		t.Skip("BERTH_TEST_HOST is not set: no daemon to test against")
	}
	img := os.Getenv("BERTH_TEST_IMAGE")
	if img == "" {
		img = "busybox"
	}
	return host, img
}

func berth(t *testing.T, host, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), append([]string{"-H", host}, args...), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDaemonRun(t *testing.T) {
	host, img := daemonHost(t)
	tests := []struct {
		name      string
		stdin     string
		args      []string
		code      int
		out       string
		errPrefix string
	}{
		{"echo", "", []string{"run", "--rm", img, "echo", "hi"}, 0, "hi\n", ""},
		{"exit code", "", []string{"run", "--rm", img, "sh", "-c", "echo out; echo err >&2; exit 3"}, 3, "out\n", "err"},
		{"stdin half-close", "piped\n", []string{"run", "--rm", "-i", img, "cat"}, 0, "piped\n", ""},
		{"command not found", "", []string{"run", "--rm", img, "no-such-command"}, 127, "", "berth: Error response from daemon: "},
		{"not executable", "", []string{"run", "--rm", img, "/etc"}, 126, "", "berth: Error response from daemon: "},
		{"bad flag", "", []string{"run", "--no-such-flag", img}, 125, "", "unknown flag: --no-such-flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := berth(t, host, tt.stdin, tt.args...)
			if code != tt.code || out != tt.out || !strings.HasPrefix(errOut, tt.errPrefix) {
				t.Errorf("exit %d out %q err %q; want %d %q %q...", code, out, errOut, tt.code, tt.out, tt.errPrefix)
			}
		})
	}
}

func TestDaemonContainerLifecycle(t *testing.T) {
	host, img := daemonHost(t)
	name := "berth-cli-test-" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-")
	t.Cleanup(func() { berth(t, host, "", "rm", "-f", name) })

	code, out, errOut := berth(t, host, "", "run", "-d", "--name", name, "-l", "berth.test=1", img, "sh", "-c", "echo started; sleep 60")
	if code != 0 || len(strings.TrimSpace(out)) != 64 {
		t.Fatalf("run -d: %d %q %q", code, out, errOut)
	}
	id := strings.TrimSpace(out)

	if code, out, _ := berth(t, host, "", "ps", "-q", "--no-trunc", "-f", "name="+name); code != 0 || strings.TrimSpace(out) != id {
		t.Errorf("ps -q: %d %q", code, out)
	}
	if code, out, _ := berth(t, host, "", "inspect", "-f", "{{.State.Running}} {{index .Config.Labels \"berth.test\"}}", name); code != 0 || out != "true 1\n" {
		t.Errorf("inspect: %d %q", code, out)
	}
	if code, out, _ := berth(t, host, "", "exec", name, "sh", "-c", "exit 5"); code != 5 || out != "" {
		t.Errorf("exec exit: %d %q", code, out)
	}
	if code, out, _ := berth(t, host, "in\n", "exec", "-i", name, "cat"); code != 0 || out != "in\n" {
		t.Errorf("exec -i: %d %q", code, out)
	}

	// cp both ways
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.txt"), []byte("payload"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := berth(t, host, "", "cp", filepath.Join(dir, "f.txt"), name+":/tmp/g.txt"); code != 0 {
		t.Fatalf("cp in: %d %s", code, errOut)
	}
	if code, _, errOut := berth(t, host, "", "cp", name+":/tmp/g.txt", filepath.Join(dir, "back.txt")); code != 0 {
		t.Fatalf("cp out: %d %s", code, errOut)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "back.txt")); err != nil || string(b) != "payload" {
		t.Errorf("cp round trip: %q %v", b, err)
	}

	if code, out, _ := berth(t, host, "", "stop", "-t", "1", name); code != 0 || out != name+"\n" {
		t.Errorf("stop: %d %q", code, out)
	}
	if code, out, _ := berth(t, host, "", "logs", name); code != 0 || out != "started\n" {
		t.Errorf("logs: %d %q", code, out)
	}
	if code, out, _ := berth(t, host, "", "rm", name); code != 0 || out != name+"\n" {
		t.Errorf("rm: %d %q", code, out)
	}
	if code, _, errOut := berth(t, host, "", "rm", name); code != 1 || !strings.Contains(errOut, "No such container") {
		t.Errorf("rm again: %d %q", code, errOut)
	}
}
