package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/errdefs"
	"golang.org/x/sys/unix"
)

type tentry struct {
	name, body, link string
	typ              byte
	mode             int64
	major, minor     int64
	xattrs           map[string]string
	size             int64 // overrides len(body) when set
}

func mkTar(t *testing.T, es ...tentry) []byte {
	t.Helper()
	b, err := tarBytes(es...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tarBytes(es ...tentry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Devmajor: e.major, Devminor: e.minor, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if len(e.xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes(), nil
}

// sandbox is a directory holding the snapshot dir "layer" and, beside it,
// "outside" with a file that hostile tars try to reach.
func sandbox(t *testing.T) (layer, outside string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	base := t.TempDir()
	layer = filepath.Join(base, "a", "b", "layer")
	outside = filepath.Join(base, "outside")
	os.MkdirAll(layer, 0o755)
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "victim"), []byte("original"), 0o644)
	return layer, outside
}

// snapshotOf lists every path under base, to prove nothing outside the
// layer changed.
func snapshotOf(t *testing.T, base, skip string) map[string]string {
	m := map[string]string{}
	filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if p == skip {
			return filepath.SkipDir
		}
		fi, _ := d.Info()
		b, _ := os.ReadFile(p)
		m[p] = fi.Mode().String() + ":" + string(b)
		return nil
	})
	return m
}

// hostileCase is a tar that tries to reach outside the layer.
type hostileCase struct {
	name    string
	tar     func(t *testing.T, outside string) []byte
	wantErr bool   // a clear InvalidArgument error
	inside  string // a path that must exist inside the layer afterwards ($O: the outside dir's path)
}

// hostileCases is the corpus both Apply and WriteImage are held to.
func hostileCases() []hostileCase {
	return []hostileCase{
		{"dotdot file", func(t *testing.T, o string) []byte {
			return mkTar(t, tentry{name: "../../../outside/victim", body: "pwned"})
		}, true, ""},
		{"dotdot in the middle", func(t *testing.T, o string) []byte {
			return mkTar(t, tentry{name: "x/../../../../outside/victim", body: "pwned"})
		}, true, ""},
		{"absolute path stays inside", func(t *testing.T, o string) []byte {
			return mkTar(t, tentry{name: filepath.Join(o, "victim"), body: "pwned"})
		}, false, "$O/victim"},
		{"absolute symlink then write through it", func(t *testing.T, o string) []byte {
			return mkTar(t,
				tentry{name: "link", typ: tar.TypeSymlink, link: o},
				tentry{name: "link/victim", body: "pwned"})
		}, false, "$O/victim"},
		{"relative symlink pointing out", func(t *testing.T, o string) []byte {
			return mkTar(t, tentry{name: "link", typ: tar.TypeSymlink, link: "../../../outside"})
		}, true, ""},
		{"nested symlink pointing out", func(t *testing.T, o string) []byte {
			return mkTar(t, tentry{name: "d/", typ: tar.TypeDir, mode: 0o755}, tentry{name: "d/link", typ: tar.TypeSymlink, link: "../../outside"})
		}, true, ""},
		{"symlink chain then write", func(t *testing.T, o string) []byte {
			return mkTar(t,
				tentry{name: "a", typ: tar.TypeSymlink, link: "/b"},
				tentry{name: "b", typ: tar.TypeSymlink, link: o},
				tentry{name: "a/victim", body: "pwned"})
		}, false, "$O/victim"},
		{"symlink to dotdot then write", func(t *testing.T, o string) []byte {
			return mkTar(t,
				tentry{name: "up", typ: tar.TypeSymlink, link: "/.."},
				tentry{name: "up/up2", typ: tar.TypeSymlink, link: "/../.."},
				tentry{name: "up/outside/victim", body: "pwned"})
		}, false, "outside/victim"},
		{"hard link out by dotdot", func(t *testing.T, o string) []byte {
			return mkTar(t, tentry{name: "hl", typ: tar.TypeLink, link: "../../../outside/victim"})
		}, true, ""},
		{"hard link out by absolute path", func(t *testing.T, o string) []byte {
			return mkTar(t, tentry{name: "hl", typ: tar.TypeLink, link: filepath.Join(o, "victim")})
		}, true, ""},
		{"hard link through symlink", func(t *testing.T, o string) []byte {
			return mkTar(t,
				tentry{name: "link", typ: tar.TypeSymlink, link: o},
				tentry{name: "hl", typ: tar.TypeLink, link: "link/victim"})
		}, true, ""},
		{"hard link then write to it", func(t *testing.T, o string) []byte {
			return mkTar(t,
				tentry{name: "f", body: "mine"},
				tentry{name: "hl", typ: tar.TypeLink, link: "f"},
				tentry{name: "hl", body: "replaced, not written through"})
		}, false, "hl"},
		{"file replaces symlink instead of following it", func(t *testing.T, o string) []byte {
			return mkTar(t,
				tentry{name: "link", typ: tar.TypeSymlink, link: filepath.Join(o, "victim")},
				tentry{name: "link", body: "pwned"})
		}, false, "link"},
		{"whiteout of dotdot", func(t *testing.T, o string) []byte {
			return mkTar(t, tentry{name: "x/.wh...", body: ""})
		}, true, ""},
		{"whiteout through symlink", func(t *testing.T, o string) []byte {
			return mkTar(t,
				tentry{name: "link", typ: tar.TypeSymlink, link: o},
				tentry{name: "link/.wh.victim"})
		}, false, "$O/victim"},
		{"opaque through symlink", func(t *testing.T, o string) []byte {
			return mkTar(t,
				tentry{name: "link", typ: tar.TypeSymlink, link: o},
				tentry{name: "link/.wh..wh..opq"})
		}, false, "$O"},
		{"device node", func(t *testing.T, o string) []byte {
			return mkTar(t, tentry{name: "dev/sda", typ: tar.TypeBlock, major: 8, minor: 0, mode: 0o660})
		}, false, "dev/sda"},
		{"overlay xattr smuggled", func(t *testing.T, o string) []byte {
			return mkTar(t, tentry{name: "d/", typ: tar.TypeDir, mode: 0o755, xattrs: map[string]string{"trusted.overlay.redirect": "/etc", "user.ok": "1"}})
		}, false, "d"},
		{"truncated file", func(t *testing.T, o string) []byte {
			b := mkTar(t, tentry{name: "big", body: strings.Repeat("x", 4096)})
			return b[:1024]
		}, true, ""},
		{"huge pax header", func(t *testing.T, o string) []byte {
			return hugePAX(t)
		}, true, ""},
		{"name too long", func(t *testing.T, o string) []byte {
			return mkTar(t, tentry{name: strings.Repeat("n", 300), body: "x"})
		}, true, ""},
	}
}

func TestHostileTars(t *testing.T) {
	for _, c := range hostileCases() {
		t.Run(c.name, func(t *testing.T) {
			layer, outside := sandbox(t)
			base := filepath.Dir(filepath.Dir(filepath.Dir(layer)))
			before := snapshotOf(t, base, layer)
			_, err := Apply(context.Background(), layer, bytes.NewReader(c.tar(t, outside)))
			if c.wantErr {
				if err == nil {
					t.Fatal("hostile tar accepted")
				}
				t.Logf("refused: %v", err)
				if !errdefs.IsInvalidArgument(err) && !errdefs.IsNotFound(err) && !strings.Contains(err.Error(), "too long") {
					t.Errorf("error %q is not a clear InvalidArgument", err)
				}
			} else if err != nil {
				t.Fatalf("apply: %v", err)
			}
			after := snapshotOf(t, base, layer)
			if len(before) != len(after) {
				t.Fatalf("something was created outside the layer: before %d entries, after %d", len(before), len(after))
			}
			for p, v := range before {
				if after[p] != v {
					t.Fatalf("%s changed outside the layer: %q -> %q", p, v, after[p])
				}
			}
			if c.inside != "" {
				in := strings.ReplaceAll(c.inside, "$O", strings.TrimPrefix(outside, "/"))
				if _, err := os.Lstat(filepath.Join(layer, in)); err != nil {
					t.Fatalf("expected %s inside the layer: %v", in, err)
				}
			}
		})
	}
}

func TestApplyKeepsMetadataAndWhiteouts(t *testing.T) {
	layer, _ := sandbox(t)
	data := mkTar(t,
		tentry{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		tentry{name: "bin/su", body: "su", mode: 0o4755},
		tentry{name: "bin/su2", typ: tar.TypeLink, link: "bin/su"},
		tentry{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666},
		tentry{name: "fifo", typ: tar.TypeFifo, mode: 0o600},
		tentry{name: "x", body: "x", xattrs: map[string]string{"user.k": "v"}},
		tentry{name: "gone/.wh.file"},
		tentry{name: "opaque/.wh..wh..opq"},
		tentry{name: "opaque/kept", body: "k"},
	)
	size, err := Apply(context.Background(), layer, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if size != 4 {
		t.Errorf("size %d, want 4", size)
	}
	var st unix.Stat_t
	unix.Lstat(filepath.Join(layer, "bin/su"), &st)
	if st.Mode&0o7777 != 0o4755 || st.Nlink != 2 {
		t.Errorf("bin/su mode %o nlink %d", st.Mode&0o7777, st.Nlink)
	}
	unix.Lstat(filepath.Join(layer, "dev/null"), &st)
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		t.Errorf("dev/null %o %d", st.Mode, st.Rdev)
	}
	unix.Lstat(filepath.Join(layer, "fifo"), &st)
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("fifo mode %o", st.Mode)
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(layer, "x"), "user.k", buf); err != nil || string(buf[:n]) != "v" {
		t.Errorf("xattr %q %v", buf[:n], err)
	}
	unix.Lstat(filepath.Join(layer, "gone/file"), &st)
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout not a 0:0 char device: %o %d", st.Mode, st.Rdev)
	}
	if n, err := unix.Lgetxattr(filepath.Join(layer, "opaque"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque xattr %q %v", buf[:n], err)
	}
	if _, err := os.Stat(filepath.Join(layer, "opaque/kept")); err != nil {
		t.Error(err)
	}
	if _, err := os.Lstat(filepath.Join(layer, "gone/.wh.file")); err == nil {
		t.Error("OCI whiteout file left in the layer")
	}
}

// hugePAX hand-builds a tar whose PAX header is 4 MiB (archive/tar's writer
// refuses to make one).
func hugePAX(t *testing.T) []byte {
	val := strings.Repeat("y", 4<<20)
	rec := "SCHILY.xattr.user.big=" + val + "\n"
	n := len(rec) + 8
	rec = strconv.Itoa(n+len(strconv.Itoa(n))-len(strconv.Itoa(n))) + " " + rec
	b := mkTar(t, tentry{name: "PaxHeaders/f", body: rec}, tentry{name: "f", body: "x"})
	b[156] = 'x'
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b[:512] {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}
