package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ttyExecEnv runs a sleeping container and returns a function making exec
// process specs for it.
func ttyExecEnv(t *testing.T, id string) (*testEnv, func(t *testing.T, req container.ExecCreateRequest) specs.Process) {
	env := newTestEnv(t)
	base := env.run(t, id, sleeper(), &container.HostConfig{}, nil)
	return env, func(t *testing.T, req container.ExecCreateRequest) specs.Process {
		t.Helper()
		p, err := ExecProcessSpec(base, base.Root.Path, req)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
}

func TestExecTTYLineEndings(t *testing.T) {
	env, proc := ttyExecEnv(t, "berth-exec-crlf")
	ctx := context.Background()
	const script = `echo one; echo two; printf 'three\nfour\n'; echo five`
	want := "one\r\ntwo\r\nthree\r\nfour\r\nfive\r\n"
	for i := range 50 {
		var out syncBuffer
		p, err := env.rt.Exec(ctx, "berth-exec-crlf", proc(t, container.ExecCreateRequest{Cmd: []string{"sh", "-c", script}, Tty: true}),
			ExecIO{Stdout: &out, Terminal: true, Height: 24, Width: 80})
		if err != nil {
			t.Fatalf("exec %d: %v", i, err)
		}
		code, err := p.Wait()
		if err != nil || code != 0 {
			t.Fatalf("exec %d: exit %d err %v", i, code, err)
		}
		got := out.String()
		for _, line := range strings.SplitAfter(got, "\n") {
			if line == "" {
				continue
			}
			if !strings.HasSuffix(line, "\r\n") || strings.HasSuffix(line, "\r\r\n") {
				t.Fatalf("exec %d: line %q does not end in exactly one CR LF (output %q)", i, line, got)
			}
		}
		if got != want {
			t.Fatalf("exec %d: output %q, want %q", i, got, want)
		}
	}
}

func TestExecTTYResizeRightAfterStart(t *testing.T) {
	env, proc := ttyExecEnv(t, "berth-exec-resize")
	ctx := context.Background()
	for i := range 10 {
		pr, pw := io.Pipe()
		var out syncBuffer
		p, err := env.rt.Exec(ctx, "berth-exec-resize", proc(t, container.ExecCreateRequest{Cmd: []string{"sh", "-c", "read x; stty size"}, Tty: true}),
			ExecIO{Stdin: pr, Stdout: &out, Terminal: true, Height: 30, Width: 100})
		if err != nil {
			t.Fatalf("exec %d: %v", i, err)
		}
		h, w := uint16(40+i), uint16(120+i)
		if err := p.Resize(h, w); err != nil {
			t.Fatalf("exec %d: resize: %v", i, err)
		}
		if _, err := pw.Write([]byte("\n")); err != nil {
			t.Fatal(err)
		}
		code, err := p.Wait()
		pw.Close()
		if err != nil || code != 0 {
			t.Fatalf("exec %d: exit %d err %v", i, code, err)
		}
		if want := fmt.Sprintf("%d %d\r\n", h, w); !strings.Contains(out.String(), want) {
			t.Errorf("exec %d: output %q, want %q", i, out.String(), want)
		}
	}
}

func TestExecTTYExitCodes(t *testing.T) {
	env, proc := ttyExecEnv(t, "berth-exec-ttycode")
	ctx := context.Background()
	tests := []struct {
		name string
		cmd  []string
		want int
	}{
		{"zero", []string{"true"}, 0},
		{"exit 3", []string{"sh", "-c", "exit 3"}, 3},
		{"killed", []string{"sh", "-c", "kill -9 $$"}, 137},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := env.rt.Exec(ctx, "berth-exec-ttycode", proc(t, container.ExecCreateRequest{Cmd: tt.cmd, Tty: true}), ExecIO{Terminal: true})
			if err != nil {
				t.Fatal(err)
			}
			if p.Pid() <= 0 {
				t.Errorf("pid %d", p.Pid())
			}
			if code, err := p.Wait(); err != nil || code != tt.want {
				t.Errorf("exit %d err %v, want %d", code, err, tt.want)
			}
		})
	}
}

// TestExecTTYNoLeaks checks that TTY execs, started or refused, leave no
// descriptor (console socket, pty master, pipes) and no child behind.
func TestExecTTYNoLeaks(t *testing.T) {
	env, proc := ttyExecEnv(t, "berth-exec-leaks")
	ctx := context.Background()
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := fds()
	for i := range 10 {
		cmd := []string{"echo", "hi"}
		if i%2 == 1 {
			cmd = []string{"nope"}
		}
		p, err := env.rt.Exec(ctx, "berth-exec-leaks", proc(t, container.ExecCreateRequest{Cmd: cmd, Tty: true}), ExecIO{Stdout: io.Discard, Terminal: true})
		if i%2 == 1 {
			if !errors.Is(err, ErrCommandNotFound) {
				t.Fatalf("exec %d: %v", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("exec %d: %v", i, err)
		}
		if code, err := p.Wait(); err != nil || code != 0 {
			t.Fatalf("exec %d: exit %d err %v", i, code, err)
		}
	}
	// A refused exec's master (if runc sent one) is closed in the
	// background; wait for the count to come back rather than for a time.
	deadline := time.Now().Add(30 * time.Second)
	for fds() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if after := fds(); after > before {
		t.Errorf("%d descriptors before, %d after", before, after)
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) {
			t.Errorf("child left behind: %s", b)
		}
	}
}
