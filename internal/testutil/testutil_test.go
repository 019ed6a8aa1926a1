package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

const reaperHelperEnv = "BERTH_TESTUTIL_REAPER_DIR"

// TestRemoveAtExitHelper is the child process of TestRemoveAtExit: it arms
// removeAtExit for a directory and ends the way the case says.
func TestRemoveAtExitHelper(t *testing.T) {
	dir := os.Getenv(reaperHelperEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	w, err := removeAtExit(dir)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	_ = w // held until the process ends, as Bin holds it
	fmt.Println("armed")
	switch os.Getenv(reaperHelperEnv + "_END") {
	case "panic":
		panic("helper ends in a panic")
	case "kill":
		p, _ := os.FindProcess(os.Getpid())
		p.Kill()
		select {}
	default:
		os.Exit(0)
	}
}

func TestRemoveAtExit(t *testing.T) {
	for _, end := range []string{"exit", "panic", "kill"} {
		t.Run(end, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "bin")
			if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "sub", "berthd"), []byte("x"), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestRemoveAtExitHelper$")
			cmd.Env = append(os.Environ(), reaperHelperEnv+"="+dir, reaperHelperEnv+"_END="+end)
			out, _ := cmd.CombinedOutput()
			if len(out) < 5 || string(out[:5]) != "armed" {
				t.Fatalf("helper did not arm the watcher: %s", out)
			}
			// The watcher runs on after the helper: wait for it to have
			// removed the directory (bounded only so a failure ends).
			deadline := time.Now().Add(time.Minute)
			for {
				if _, err := os.Stat(dir); os.IsNotExist(err) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s is still there after the process that held it ended", dir)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
