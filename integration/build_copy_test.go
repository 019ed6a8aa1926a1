package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestCopyLayerDirect: a COPY from the context is written as its layer's tar
// directly (no files created one by one). The same Dockerfile built with
// BERTH_BUILD_COPY=files (the file-by-file path through a mounted layer)
// must give a container the same tree: names, types, modes, owners, sizes,
// contents, link targets and file times (directory times aside), including
// new and existing parent directories, --chown, --chmod, renames, several
// sources, WORKDIR-relative destinations and a destination reached through
// a symlink in the image (which takes the file-by-file path).
func TestCopyLayerDirect(t *testing.T) {
	ctxDir := t.TempDir()
	mk := func(name, body string, mode os.FileMode) {
		p := filepath.Join(ctxDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		os.Chtimes(p, time.Unix(1600000000, 0), time.Unix(1600000000, 0))
	}
	mk("tree/a.txt", "a\n", 0o644)
	mk("tree/bin/tool", "#!/bin/sh\necho tool\n", 0o755)
	mk("tree/secret/key", "k", 0o600)
	mk("tree/deep/er/still/file", "deep", 0o640)
	mk("tree/with space", "sp", 0o644)
	mk("file.txt", "one file\n", 0o644)
	mk("b.txt", "b\n", 0o644)
	os.MkdirAll(filepath.Join(ctxDir, "tree/empty"), 0o750)
	os.Symlink("a.txt", filepath.Join(ctxDir, "tree/rel-link"))
	os.Symlink("/etc/passwd", filepath.Join(ctxDir, "tree/abs-link"))
	dockerfile := `FROM busybox
RUN mkdir -p /opt/existing && chmod 1777 /opt/existing && chown 7:8 /opt/existing && ln -s /opt/existing /linked
COPY tree /usr/local/tree
COPY tree /opt/existing/
COPY file.txt /tmp/
COPY --chown=1000:1000 tree /home/u/
COPY --chmod=0640 file.txt /etc/renamed.txt
COPY file.txt b.txt /multi/
WORKDIR /w
COPY file.txt rel.txt
COPY file.txt /linked/through-link.txt
`
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	list := `find /usr/local/tree /opt /tmp /home /etc/renamed.txt /multi /w /linked/ -exec stat -c '%n %F %a %u:%g %s %N' {} + | sort; ` +
		`find /usr/local/tree /opt /tmp /home /etc/renamed.txt /multi /w -type f -exec md5sum {} + | sort; ` +
		`find /usr/local/tree /opt/existing /home/u -type f -exec stat -c '%n %Y' {} + | sort`

	tree := func(env string) string {
		if env != "" {
			t.Setenv("BERTH_BUILD_COPY", env)
		}
		d := testutil.StartDaemon(t)
		os.Unsetenv("BERTH_BUILD_COPY")
		d.ImportBusybox()
		must(t, d.Berth("build", "-q", "-t", "copied:1", ctxDir))
		r := must(t, d.Berth("run", "--rm", "--network", "none", "copied:1", "sh", "-c", list))
		return r.Stdout
	}
	direct, files := tree(""), tree("files")
	if direct != files {
		dl, fl := strings.Split(direct, "\n"), strings.Split(files, "\n")
		for i := 0; i < len(dl) || i < len(fl); i++ {
			var a, b string
			if i < len(dl) {
				a = dl[i]
			}
			if i < len(fl) {
				b = fl[i]
			}
			if a != b {
				t.Errorf("line %d:\n  direct: %s\n  files:  %s", i, a, b)
			}
		}
	}
	if !strings.Contains(direct, "/usr/local/tree/bin/tool regular file 755 0:0") || !strings.Contains(direct, "/home/u/a.txt regular file 644 1000:1000") ||
		!strings.Contains(direct, "/opt/existing directory 1777 7:8") || !strings.Contains(direct, "/etc/renamed.txt regular file 640") ||
		!strings.Contains(direct, "/opt/existing/through-link.txt") {
		t.Errorf("unexpected tree:\n%s", direct)
	}
}
