package image

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/snapshot"
)

// dockerd starts Debian's docker engine on its own roots for the test and
// returns a function running the docker CLI against it.
func dockerd(t *testing.T) func(stdin []byte, args ...string) (string, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("dockerd"); err != nil {
		t.Skip("no dockerd")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker CLI")
	}
	dir, err := os.MkdirTemp("", "berth-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "d.sock")
	cmd := exec.Command("dockerd", "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"-H", "unix://"+sock, "--pidfile", filepath.Join(dir, "d.pid"), "--bridge", "none", "--iptables=false", "--ip-masq=false")
	logf, _ := os.Create(filepath.Join(dir, "log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Skipf("start dockerd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		// dockerd unmounts its layers on shutdown; make sure before removing.
		out, _ := exec.Command("findmnt", "-rn", "-o", "TARGET").Output()
		for _, m := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(m, dir) {
				syscall.Unmount(m, syscall.MNT_DETACH)
			}
		}
		os.RemoveAll(dir)
	})
	run := func(stdin []byte, args ...string) (string, error) {
		c := exec.Command("docker", args...)
		c.Env = append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+dir)
		if stdin != nil {
			c.Stdin = bytes.NewReader(stdin)
		}
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		err := c.Run()
		return out.String(), err
	}
	for i := 0; ; i++ {
		if _, err := run(nil, "version"); err == nil {
			break
		}
		if i > 300 {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Skipf("dockerd did not come up: %s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return run
}

func TestDockerInterop(t *testing.T) {
	ctx := context.Background()
	docker := dockerd(t)
	e := newEnv(t)
	bb := busyboxTar(t)

	// docker save | berth load
	if out, err := docker(bb, "import", "--change", `CMD ["sh"]`, "-", "fromdocker:1"); err != nil {
		t.Fatalf("docker import: %v: %s", err, out)
	}
	saved, err := docker(nil, "save", "fromdocker:1")
	if err != nil {
		t.Fatalf("docker save: %v", err)
	}
	var lines []string
	if err := e.s.Load(ctx, strings.NewReader(saved), func(l string) { lines = append(lines, l) }); err != nil {
		t.Fatalf("berth load of docker save: %v", err)
	}
	if strings.Join(lines, "|") != "Loaded image: fromdocker:1" {
		t.Errorf("load output %q", lines)
	}
	id, _ := docker(nil, "image", "inspect", "-f", "{{.Id}}", "fromdocker:1")
	img, err := e.s.Get(ctx, "fromdocker:1")
	if err != nil {
		t.Fatal(err)
	}
	if img.ID.String() != strings.TrimSpace(id) {
		t.Errorf("berth id %s, docker id %s", img.ID, id)
	}
	if strings.Join(img.Config.Config.Cmd, " ") != "sh" {
		t.Errorf("Cmd %v", img.Config.Config.Cmd)
	}

	// berth save | docker load
	if _, err := e.s.Import(ctx, bytes.NewReader(bb), "fromberth:2", []string{"ENV X=y"}, "from berth"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := e.s.Save(ctx, []string{"fromberth:2"}, &buf); err != nil {
		t.Fatal(err)
	}
	out, err := docker(buf.Bytes(), "load")
	if err != nil {
		t.Fatalf("docker load of berth save: %v: %s", err, out)
	}
	if !strings.Contains(out, "Loaded image: fromberth:2") {
		t.Errorf("docker load said %q", out)
	}
	out, err = docker(nil, "run", "--rm", "--network", "none", "fromberth:2", "sh", "-c", "echo $X; ls /bin/true")
	if err != nil {
		t.Logf("docker run (informational, may need cgroups): %v: %s", err, out)
	} else if out != "y\n/bin/true\n" {
		t.Errorf("docker run output %q", out)
	}
	// Several images in one archive, both ways, sharing their layer.
	if _, err := e.s.Import(ctx, bytes.NewReader(bb), "fromberth:3", []string{"ENV X=z"}, ""); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := e.s.Save(ctx, []string{"fromberth:2", "fromberth:3"}, &buf); err != nil {
		t.Fatal(err)
	}
	out, err = docker(buf.Bytes(), "load")
	if err != nil || !strings.Contains(out, "Loaded image: fromberth:2") || !strings.Contains(out, "Loaded image: fromberth:3") {
		t.Fatalf("docker load of a two-image save: %v: %s", err, out)
	}
	if out, err := docker(nil, "tag", "fromdocker:1", "fromdocker:2"); err != nil {
		t.Fatalf("docker tag: %v: %s", err, out)
	}
	saved2, err := docker(nil, "save", "fromdocker:1", "fromdocker:2", "fromberth:3")
	if err != nil {
		t.Fatalf("docker save of three names: %v", err)
	}
	dst := newEnv(t)
	lines = nil
	if err := dst.s.Load(ctx, strings.NewReader(saved2), func(l string) { lines = append(lines, l) }); err != nil {
		t.Fatalf("berth load of a multi-image docker save: %v", err)
	}
	for _, name := range []string{"fromdocker:1", "fromdocker:2", "fromberth:3"} {
		if _, err := dst.s.Get(ctx, name); err != nil {
			t.Errorf("%s missing after load (output %q)", name, lines)
		}
	}
	n := 0
	dst.sn.Walk(ctx, func(snapshot.Info) error { n++; return nil })
	if n != 1 {
		t.Errorf("%d snapshots for three images on one layer", n)
	}
	dst.check(t)

	ours, _ := e.s.Get(ctx, "fromberth:2")
	id, _ = docker(nil, "image", "inspect", "-f", "{{.Id}}", "fromberth:2")
	if ours.ID.String() != strings.TrimSpace(id) {
		t.Errorf("docker gave the loaded image id %s, berth %s", id, ours.ID)
	}
	e.check(t)
}
