package registry_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGracefulShutdown sends SIGTERM while an upload streams and checks the
// upload still completes and the process then exits cleanly.
func TestGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped in -short mode")
	}
	bin := registryBin(t)
	root := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	logf, _ := os.Create(filepath.Join(t.TempDir(), "log"))
	defer logf.Close()
	cmd := exec.Command(bin, "serve", "--addr", addr, "--root", root)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 200 {
			t.Fatal("registry did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Post("http://"+addr+"/v2/r/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := "http://" + addr + resp.Header.Get("Location")

	half := strings.Repeat("a", 1<<20)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PATCH", loc, pr)
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("PATCH: %v", err)
			done <- nil
			return
		}
		done <- resp
	}()
	pw.Write([]byte(half))
	// Wait until the server holds the first half, so the request is in flight.
	for i := 0; ; i++ {
		r, err := http.Get(loc)
		if err == nil {
			r.Body.Close()
			if r.Header.Get("Range") == fmt.Sprintf("0-%d", len(half)-1) {
				break
			}
		}
		if i > 400 {
			t.Fatal("first half never arrived")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	// New connections are refused once shutdown begins.
	for i := 0; ; i++ {
		r, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			break
		}
		r.Body.Close()
		if i > 400 {
			t.Fatal("server kept accepting after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	pw.Write([]byte(half))
	pw.Close()
	r := <-done
	if r == nil {
		t.FailNow()
	}
	r.Body.Close()
	if r.StatusCode != 202 || r.Header.Get("Range") != fmt.Sprintf("0-%d", 2*len(half)-1) {
		t.Fatalf("in-flight PATCH: %d, Range %q", r.StatusCode, r.Header.Get("Range"))
	}
	if err := <-exited; err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	exited <- nil // for the cleanup's receive
}
