package integration

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/creack/pty"
)

// runInPty runs a CLI under a pseudo-terminal, types input after the shell
// is up, and returns the screen output and the exit code.
func runInPty(t *testing.T, env []string, input string, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var mu sync.Mutex
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				close(done)
				return
			}
		}
	}()
	// Wait for the prompt before typing.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		ready := strings.Contains(out.String(), "#")
		mu.Unlock()
		if ready {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	io.WriteString(f, input)
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case <-errc:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s under a pty did not finish; screen:\n%s", name, out.String())
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	return out.String(), cmd.ProcessState.ExitCode()
}

func TestInteractiveTTY(t *testing.T) {
	d := newDaemon(t)
	type tool struct {
		name string
		bin  string
		env  []string
	}
	tools := []tool{{"berth", testutil.Bin(t, "berth"), []string{"BERTH_HOST=" + d.Host()}}}
	if _, err := os.Stat("/usr/local/bin/docker"); err == nil {
		tools = append(tools, tool{"docker", "/usr/local/bin/docker", []string{"DOCKER_HOST=" + d.Host(), "DOCKER_CONFIG=" + t.TempDir()}})
	}
	for _, tl := range tools {
		t.Run(tl.name, func(t *testing.T) {
			screen, code := runInPty(t, tl.env, "stty size; echo $((6*7)); exit 3\r", tl.bin, "run", "-it", "--rm", "busybox", "sh")
			if code != 3 || !strings.Contains(screen, "42") {
				t.Fatalf("run -it: exit %d, screen:\n%s", code, screen)
			}
			if !strings.Contains(screen, "40 120") {
				t.Errorf("terminal size not passed to the container; screen:\n%s", screen)
			}
			name := "tty-" + tl.name
			must(t, d.Berth("run", "-d", "--name", name, "busybox", "sleep", "100"))
			screen, code = runInPty(t, tl.env, "echo in-$((40+2)); exit 0\r", tl.bin, "exec", "-it", name, "sh")
			if code != 0 || !strings.Contains(screen, "in-42") {
				t.Fatalf("exec -it: exit %d, screen:\n%s", code, screen)
			}
			must(t, d.Berth("rm", "-f", name))
		})
	}
}
