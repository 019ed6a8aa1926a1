package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/berth-dev/berth/errdefs"
)

// containerRoot makes a root filesystem with hostile symlinks pointing at a
// host directory beside it.
func containerRoot(t *testing.T) (root, host string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	base := t.TempDir()
	root, host = filepath.Join(base, "rootfs"), filepath.Join(base, "host")
	for _, d := range []string{root + "/etc", root + "/app/sub", host} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(host+"/secret", []byte("host secret"), 0o600)
	os.WriteFile(root+"/etc/hostname", []byte("ctr\n"), 0o644)
	os.WriteFile(root+"/app/sub/f", []byte("f"), 0o644)
	os.Symlink(host, root+"/abs")                  // absolute, to the host dir
	os.Symlink("../../../host", root+"/rel")       // climbing
	os.Symlink("/etc/hostname", root+"/hn")        // inside
	os.Symlink(host+"/secret", root+"/secretlink") // file on the host
	return root, host
}

func tarEntries(t *testing.T, b []byte) map[string]string {
	m := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return m
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		m[h.Name] = string(data) + h.Linkname
	}
}

func keys(m map[string]string) string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return strings.Join(k, " ")
}

func TestCopyOutStaysInRoot(t *testing.T) {
	root, _ := containerRoot(t)
	cases := []struct {
		path     string
		entries  string
		notFound bool
	}{
		{"/etc/hostname", "hostname", false},
		{"/app", "app/ app/sub/ app/sub/f", false},
		{"/app/.", "sub/ sub/f", false},
		{"/hn", "hn", false},           // the link itself
		{"/abs/", "", true},            // follows the link, inside root: /host does not exist there
		{"/rel/host/secret", "", true}, // climbs, but only to /
		{"/secretlink/", "", true},     // host path resolved inside root
		{"/abs/secret", "", true},
		{"/nope", "", true},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		err := CopyOut(context.Background(), root, c.path, &buf)
		if c.notFound {
			if !errdefs.IsNotFound(err) {
				t.Errorf("%s: err %v, want NotFound", c.path, err)
			}
			if strings.Contains(buf.String(), "host secret") {
				t.Fatalf("%s: host file leaked", c.path)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		if got := keys(tarEntries(t, buf.Bytes())); got != c.entries {
			t.Errorf("%s: entries %q, want %q", c.path, got, c.entries)
		}
	}
	st, err := StatInRoot(root, "/hn")
	if err != nil || st.Mode&os.ModeSymlink == 0 || st.LinkTarget != "/etc/hostname" || st.Name != "hn" {
		t.Errorf("stat /hn: %+v %v", st, err)
	}
	if _, err := StatInRoot(root, "/abs/secret"); !errdefs.IsNotFound(err) {
		t.Errorf("stat through a host link: %v", err)
	}
}

func TestCopyInStaysInRoot(t *testing.T) {
	root, host := containerRoot(t)
	cases := []struct {
		dir     string
		tar     []byte
		opts    CopyInOptions
		wantErr bool
		inside  string // path under root that must exist afterwards
	}{
		{"/app", mkTar(t, tentry{name: "new", body: "n"}), CopyInOptions{}, false, "app/new"},
		{"/abs", mkTar(t, tentry{name: "secret", body: "pwned"}), CopyInOptions{}, true, ""}, // /abs resolves to <root><host>, missing
		{"/", mkTar(t, tentry{name: "abs/secret", body: "pwned"}), CopyInOptions{}, false, strings.TrimPrefix(host, "/") + "/secret"},
		{"/", mkTar(t, tentry{name: "rel/secret", body: "pwned"}), CopyInOptions{}, false, "host/secret"},
		{"/app", mkTar(t, tentry{name: "l", typ: tar.TypeSymlink, link: "../../../host"}), CopyInOptions{}, true, ""},
		{"/app", mkTar(t, tentry{name: "../../host/secret", body: "pwned"}), CopyInOptions{}, true, ""},
		{"/app", mkTar(t, tentry{name: "h", typ: tar.TypeLink, link: "../etc/hostname"}), CopyInOptions{}, true, ""},
		{"/app", mkTar(t, tentry{name: "sub", body: "file over dir"}), CopyInOptions{NoOverwriteDirNonDir: true}, true, ""},
		{"/app", mkTar(t, tentry{name: ".wh.sub", body: ""}), CopyInOptions{}, false, "app/.wh.sub"},
		{"/etc/hostname", mkTar(t, tentry{name: "x", body: "x"}), CopyInOptions{}, true, ""},
	}
	for i, c := range cases {
		err := CopyIn(context.Background(), root, c.dir, bytes.NewReader(c.tar), c.opts)
		if c.wantErr != (err != nil) {
			t.Fatalf("case %d (%s): err %v", i, c.dir, err)
		}
		if b, _ := os.ReadFile(host + "/secret"); string(b) != "host secret" {
			t.Fatalf("case %d: host file changed to %q", i, b)
		}
		if entries, _ := os.ReadDir(host); len(entries) != 1 {
			t.Fatalf("case %d: host dir has %d entries", i, len(entries))
		}
		if c.inside != "" {
			if _, err := os.Lstat(filepath.Join(root, c.inside)); err != nil {
				t.Errorf("case %d: %s missing inside the root", i, c.inside)
			}
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "app/sub")); err != nil || !fi.IsDir() {
		t.Error("directory replaced despite NoOverwriteDirNonDir")
	}
}
