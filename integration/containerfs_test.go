package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestContainerFilesystem covers commit, diff, cp both ways, export, stats
// and container prune with berth and the docker CLI.
func TestContainerFilesystem(t *testing.T) {
	d := newDaemon(t)
	for _, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			name := "fs-" + c.name
			must(t, c.run("run", "--name", name, "busybox", "sh", "-c", "mkdir /data && echo hi > /data/new && rm /bin/vi"))
			diff := must(t, c.run("diff", name)).Stdout
			for _, want := range []string{"C /bin", "D /bin/vi", "A /data", "A /data/new"} {
				if !strings.Contains(diff, want+"\n") {
					t.Fatalf("diff missing %q:\n%s", want, diff)
				}
			}
			if strings.Contains(diff, "/etc/hosts") || strings.Contains(diff, "A /proc") {
				t.Fatalf("diff shows runtime mount points:\n%s", diff)
			}
			img := "committed-" + c.name + ":v1"
			must(t, c.run("commit", "-c", "ENV FROM_COMMIT=yes", "-m", "a message", name, img))
			r := must(t, c.run("run", "--rm", img, "sh", "-c", "cat /data/new; echo $FROM_COMMIT; ls /bin/vi 2>&1; true"))
			if !strings.Contains(r.Stdout, "hi\nyes\n") || !strings.Contains(r.Stdout, "No such file") {
				t.Fatalf("committed image: %s", r)
			}
			if h := must(t, c.run("history", img)).Stdout; !strings.Contains(h, "a message") {
				t.Fatalf("history lacks the commit message:\n%s", h)
			}

			dir := t.TempDir()
			src := filepath.Join(dir, "in.txt")
			os.WriteFile(src, []byte("copied in\n"), 0o640)
			must(t, c.run("cp", src, name+":/root/"))
			must(t, c.run("cp", name+":/root/in.txt", filepath.Join(dir, "out.txt")))
			if b, _ := os.ReadFile(filepath.Join(dir, "out.txt")); string(b) != "copied in\n" {
				t.Fatalf("cp round trip: %q", b)
			}
			if r := c.run("cp", name+":/no/such/file", dir); r.ExitCode == 0 || !strings.Contains(r.Stderr, "Could not find the file") {
				t.Fatalf("cp of a missing path: %s", r)
			}
			tarPath := filepath.Join(dir, "export.tar")
			must(t, c.run("export", "-o", tarPath, name))
			if fi, err := os.Stat(tarPath); err != nil || fi.Size() < 1<<20 {
				t.Fatalf("export too small: %v %v", fi, err)
			}
			must(t, c.run("rm", name))
		})
	}
	// A symlink in the container never leads cp to the host.
	must(t, d.Berth("run", "--name", "evil", "busybox", "sh", "-c", "ln -s / /hostroot; ln -s /etc/shadow /shadowlink"))
	dir := t.TempDir()
	r := d.Berth("cp", "evil:/hostroot/etc/passwd", filepath.Join(dir, "p"))
	if r.ExitCode == 0 {
		b, _ := os.ReadFile(filepath.Join(dir, "p"))
		if strings.Contains(string(b), "nobody:x:65534") == false {
			t.Fatalf("cp followed a container symlink out of the container: %q", b)
		}
	}
	must(t, d.Berth("rm", "evil"))

	must(t, d.Berth("run", "-d", "--name", "st", "busybox", "sleep", "100"))
	stats := must(t, d.Docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "st")).Stdout
	if strings.TrimSpace(stats) != "st 1" {
		t.Fatalf("stats: %q", stats)
	}
	must(t, d.Berth("rm", "-f", "st"))
	must(t, d.Berth("create", "--name", "dead1", "busybox", "true"))
	r = must(t, d.Docker("container", "prune", "-f"))
	if !strings.Contains(r.Stdout, "Deleted Containers") {
		t.Fatalf("container prune: %s", r)
	}
	if ps := d.Berth("ps", "-aq").Stdout; strings.TrimSpace(ps) != "" {
		t.Fatalf("prune left containers: %q", ps)
	}
}
