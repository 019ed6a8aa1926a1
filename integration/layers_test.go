package integration

import (
	"os"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// erofsMountsUnder counts the EROFS mounts below dir.
func erofsMountsUnder(t *testing.T, dir string) int {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, " "+dir+"/") && strings.Contains(line, " - erofs ") {
			n++
		}
	}
	return n
}

// TestLayerImagesAcrossRestart: with layers as EROFS images (the default
// where the kernel mounts them), a container keeps running through a
// graceful daemon restart (which unmounts the images), the restarted
// daemon execs into it and starts it again on the remounted layers, and
// removing everything leaves no mount.
func TestLayerImagesAcrossRestart(t *testing.T) {
	d := newDaemon(t)
	if !strings.Contains(must(t, d.Docker("info")).Stdout, "Layers: erofs images") {
		t.Skip("this kernel does not mount file-backed EROFS images")
	}
	must(t, d.Berth("run", "--name", "writer", "busybox", "sh", "-c", "echo kept > /note"))
	must(t, d.Berth("commit", "writer", "noted:1"))
	must(t, d.Berth("run", "-d", "--name", "live", "noted:1", "sleep", "600"))
	if n := erofsMountsUnder(t, d.DataRoot); n != 2 {
		t.Fatalf("%d layer images mounted, want 2 (busybox and the commit)", n)
	}

	d.Stop()
	if n := erofsMountsUnder(t, d.DataRoot); n != 0 {
		t.Fatalf("%d layer images still mounted after the daemon stopped", n)
	}
	d.Restart()
	r := must(t, d.Docker("exec", "live", "cat", "/note"))
	if r.Stdout != "kept\n" {
		t.Fatalf("exec after restart: %s", r)
	}
	must(t, d.Docker("restart", "-t", "0", "live"))
	if r := must(t, d.Docker("exec", "live", "sh", "-c", "cat /note; ls /bin/busybox")); r.Stdout != "kept\n/bin/busybox\n" {
		t.Fatalf("exec after container restart: %s", r)
	}
	must(t, d.Berth("rm", "-f", "live", "writer"))
	must(t, d.Berth("rmi", "noted:1", "busybox"))
	if n := erofsMountsUnder(t, d.DataRoot); n != 0 {
		t.Fatalf("%d layer images still mounted after every image was removed", n)
	}
	if r := must(t, d.Berth("system", "check")); !strings.Contains(r.Stdout, " 0 problems") {
		t.Fatalf("system check: %s", r.Stdout)
	}
}

// TestLayerDirectories: --storage-opt overlay2.layer-images=false keeps
// unpacking layers into directories, end to end.
func TestLayerDirectories(t *testing.T) {
	d := testutil.StartDaemon(t, "--storage-opt", "overlay2.layer-images=false")
	d.ImportBusybox()
	if r := must(t, d.Docker("info")); !strings.Contains(r.Stdout, "Layers: directories") {
		t.Fatalf("docker info does not say directories:\n%s", r.Stdout)
	}
	for _, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			must(t, c.run("run", "--name", "dw-"+c.name, "busybox", "sh", "-c", "echo dir > /f"))
			must(t, c.run("commit", "dw-"+c.name, "dir-"+c.name+":1"))
			if r := must(t, c.run("run", "--rm", "dir-"+c.name+":1", "cat", "/f")); r.Stdout != "dir\n" {
				t.Fatalf("committed layer: %s", r)
			}
			must(t, c.run("rm", "dw-"+c.name))
			must(t, c.run("rmi", "dir-"+c.name+":1"))
		})
	}
	if n := erofsMountsUnder(t, d.DataRoot); n != 0 {
		t.Fatalf("%d EROFS mounts with layer-images=false", n)
	}
}

// TestStorageOptErrors: a bad --storage-opt stops berthd with one line.
func TestStorageOptErrors(t *testing.T) {
	testutil.RequireRoot(t)
	for _, opt := range []string{"overlay2.layer-images=maybe", "overlay2.size=10G"} {
		dir := t.TempDir()
		r := testutil.Run(t, nil, nil, testutil.Bin(t, "berthd"), "--data-root", dir+"/data", "--exec-root", dir+"/exec",
			"-H", "unix://"+dir+"/s.sock", "--storage-opt", opt)
		if r.ExitCode == 0 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 || !strings.Contains(r.Stderr, "--storage-opt") {
			t.Fatalf("--storage-opt %s: want one error line and a non-zero exit, got %s", opt, r)
		}
	}
}
