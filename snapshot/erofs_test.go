package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/errdefs"
	erofs "github.com/erofs/go-erofs"
	"golang.org/x/sys/unix"
)

// Ways to build an image in the tests.
const (
	fullImage       = iota
	indexFromFile   // archive/tar seeks over file data
	indexFromStream // file data is read (and could be hashed)
)

// writeImageFile builds an image of tarData in dir and returns its path;
// an index image's device is dir/layer.tar.
func writeImageFile(t *testing.T, dir string, tarData []byte, mode int) (string, int64, error) {
	t.Helper()
	p := filepath.Join(dir, "layer.erofs")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if mode == fullImage {
		size, err := WriteImage(context.Background(), f, bytes.NewReader(tarData))
		return p, size, err
	}
	if err := os.WriteFile(filepath.Join(dir, "layer.tar"), tarData, 0o444); err != nil {
		t.Fatal(err)
	}
	var r io.Reader = bytes.NewReader(tarData)
	if mode == indexFromStream {
		r = struct{ io.Reader }{r}
	}
	size, err := WriteIndex(context.Background(), f, r)
	return p, size, err
}

// mountImage mounts the image read-only and unmounts it at cleanup.
func mountImage(t *testing.T, img, device string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	mnt := t.TempDir()
	if err := mountLayerImage(img, device, mnt); err != nil {
		t.Skipf("cannot mount EROFS images here: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	return mnt
}

// treeOf describes every entry under root the way a container sees it.
func treeOf(t *testing.T, root string, dirTimes bool) map[string]string {
	t.Helper()
	m := map[string]string{}
	inodes := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode=%o uid=%d gid=%d", st.Mode, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, _ := os.ReadFile(p)
			desc += fmt.Sprintf(" size=%d sha=%x nlink=%d", st.Size, sha256.Sum256(b), st.Nlink)
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					desc += " linked-to=" + first
				} else {
					inodes[st.Ino] = rel
				}
			}
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			desc += fmt.Sprintf(" dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFDIR:
			desc += fmt.Sprintf(" nlink=%d", st.Nlink)
		}
		whiteout := st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 // made at unpack time
		if (st.Mode&unix.S_IFMT != unix.S_IFDIR || dirTimes) && !whiteout {
			desc += fmt.Sprintf(" mtime=%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
		}
		if names := listXattrs(p); len(names) > 0 {
			desc += " xattrs=" + strings.Join(names, ",")
		}
		m[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func listXattrs(p string) []string {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return nil
	}
	var out []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		v := make([]byte, 64<<10)
		vn, _ := unix.Lgetxattr(p, name, v)
		if vn < 0 {
			vn = 0
		}
		out = append(out, name+"="+string(v[:vn]))
	}
	sort.Strings(out)
	return out
}

// richLayer is a layer with every kind of entry, big directories and files
// of awkward sizes.
func richLayer(t *testing.T) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	add := func(h *tar.Header, body []byte) {
		if h.ModTime.IsZero() {
			h.ModTime = mt
		}
		h.Format = tar.FormatPAX
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	add(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "bin/su", Typeflag: tar.TypeReg, Mode: 0o4755}, []byte("su binary"))
	add(&tar.Header{Name: "bin/su2", Typeflag: tar.TypeLink, Linkname: "bin/su"}, nil)
	add(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox"}, nil)
	add(&tar.Header{Name: "bin/abs", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}, nil)
	add(&tar.Header{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}, nil)
	add(&tar.Header{Name: "dev/sdz9", Typeflag: tar.TypeBlock, Mode: 0o660, Devmajor: 259, Devminor: 300}, nil)
	add(&tar.Header{Name: "dev/fifo", Typeflag: tar.TypeFifo, Mode: 0o600}, nil)
	add(&tar.Header{Name: "home/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 1000, Gid: 1000}, nil)
	add(&tar.Header{Name: "home/f", Typeflag: tar.TypeReg, Mode: 0o640, Uid: 1000, Gid: 100,
		PAXRecords: map[string]string{"SCHILY.xattr.user.k": "v", "SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
			"SCHILY.xattr.trusted.overlay.redirect": "/etc"}}, []byte("owned"))
	add(&tar.Header{Name: "sizes/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	for _, n := range []int{0, 1, 4095, 4096, 4097, 1 << 20, 3<<20 + 17} {
		body := bytes.Repeat([]byte{byte(n)}, n)
		for i := range body {
			body[i] = byte(i * 7)
		}
		add(&tar.Header{Name: fmt.Sprintf("sizes/%d", n), Typeflag: tar.TypeReg, Mode: 0o644}, body)
	}
	// A directory of several blocks, with names around the sort order of "." and "..".
	add(&tar.Header{Name: "many/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	for i := 0; i < 900; i++ {
		add(&tar.Header{Name: fmt.Sprintf("many/file-%04d-%s", i, strings.Repeat("x", i%40)), Typeflag: tar.TypeReg, Mode: 0o644}, []byte{byte(i)})
	}
	for _, n := range []string{"-dash", "+plus", ",comma", "..dots", ".hidden", strings.Repeat("L", 255)} {
		add(&tar.Header{Name: "many/" + n, Typeflag: tar.TypeReg, Mode: 0o644}, []byte(n))
	}
	// Deep, implicit parents, duplicates and whiteouts.
	add(&tar.Header{Name: "a/b/c/d/e/f/g/h/deep", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("deep"))
	add(&tar.Header{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o711}, nil)
	add(&tar.Header{Name: "dup", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("first"))
	add(&tar.Header{Name: "dup", Typeflag: tar.TypeReg, Mode: 0o600}, []byte("second"))
	add(&tar.Header{Name: "was-dir/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "was-dir/x", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("x"))
	add(&tar.Header{Name: "was-dir", Typeflag: tar.TypeSymlink, Linkname: "bin"}, nil)
	add(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "etc/.wh.removed", Typeflag: tar.TypeReg}, nil)
	add(&tar.Header{Name: "opaque/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "opaque/.wh..wh..opq", Typeflag: tar.TypeReg}, nil)
	add(&tar.Header{Name: "opaque/kept", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("k"))
	add(&tar.Header{Name: "linkdir", Typeflag: tar.TypeSymlink, Linkname: "/opaque"}, nil)
	add(&tar.Header{Name: "linkdir/through", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("written through a symlink"))
	tw.Close()
	return buf.Bytes()
}

// TestImageMatchesApply holds WriteImage to Apply: the mounted image must
// show exactly the tree Apply makes on disk.
func TestImageMatchesApply(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	layers := map[string][]byte{
		"rich": richLayer(t),
		"metadata": mkTar(t,
			tentry{name: "bin/", typ: tar.TypeDir, mode: 0o755},
			tentry{name: "bin/su", body: "su", mode: 0o4755},
			tentry{name: "bin/su2", typ: tar.TypeLink, link: "bin/su"},
			tentry{name: "x", body: "x", xattrs: map[string]string{"user.k": "v"}},
			tentry{name: "gone/.wh.file"}),
		"empty": mkTar(t),
	}
	for name, data := range layers {
		for mode, mname := range []string{"full", "index-file", "index-stream"} {
			t.Run(name+"/"+mname, func(t *testing.T) {
				compareImage(t, data, mode)
			})
		}
	}
}

func compareImage(t *testing.T, data []byte, mode int) {
	{
		{
			dir := filepath.Join(t.TempDir(), "fs")
			os.Mkdir(dir, 0o755)
			wantSize, err := Apply(context.Background(), dir, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			imgDir := t.TempDir()
			img, size, err := writeImageFile(t, imgDir, data, mode)
			if err != nil {
				t.Fatal(err)
			}
			if size != wantSize {
				t.Errorf("size %d, Apply says %d", size, wantSize)
			}
			device := ""
			if mode != fullImage {
				device = filepath.Join(imgDir, "layer.tar")
			}
			mnt := mountImage(t, img, device)
			want, got := treeOf(t, dir, false), treeOf(t, mnt, false)
			for p, w := range want {
				if got[p] != w {
					t.Errorf("%s:\n  dir:   %s\n  image: %s", p, w, got[p])
				}
			}
			for p, g := range got {
				if _, ok := want[p]; !ok {
					t.Errorf("%s only in the image: %s", p, g)
				}
			}
		}
	}
}

// TestImageHostileTars: the hostile corpus is refused or neutralised by
// WriteImage exactly as by Apply.
func TestImageHostileTars(t *testing.T) {
	for _, c := range hostileCases() {
		t.Run(c.name, func(t *testing.T) {
			outside := "/tmp/berth-outside-does-not-matter"
			for _, mode := range []int{fullImage, indexFromFile, indexFromStream} {
				_, _, err := writeImageFile(t, t.TempDir(), c.tar(t, outside), mode)
				if c.wantErr {
					if err == nil {
						t.Fatalf("hostile tar accepted (mode %d)", mode)
					}
					if !errdefs.IsInvalidArgument(err) {
						t.Errorf("error %q is not a clear InvalidArgument (mode %d)", err, mode)
					}
					continue
				}
				if err != nil {
					t.Fatalf("write image (mode %d): %v", mode, err)
				}
			}
		})
	}
}

// TestImageReadByGoErofs: the field's EROFS reader agrees with what was
// written (no root needed).
func TestImageReadByGoErofs(t *testing.T) {
	img, _, err := writeImageFile(t, t.TempDir(), richLayer(t), fullImage)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fsys, err := erofs.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(fsys, "sizes/4097")
	if err != nil || len(b) != 4097 || b[4096] != byte(4096*7%256) {
		t.Fatalf("sizes/4097: %d bytes, %v", len(b), err)
	}
	entries, err := fs.ReadDir(fsys, "many")
	if err != nil || len(entries) != 906 {
		t.Fatalf("many/: %d entries, %v", len(entries), err)
	}
	fi, err := fs.Stat(fsys, "bin/su")
	if err != nil || fi.Mode().Perm() != 0o755 || fi.Size() != 9 {
		t.Fatalf("bin/su: %v %v", fi, err)
	}
	through, err := fs.ReadFile(fsys, "opaque/through")
	if err != nil || string(through) != "written through a symlink" {
		t.Fatalf("opaque/through: %q %v", through, err)
	}
	if _, err := fs.Stat(fsys, "was-dir/x"); err == nil {
		t.Fatal("was-dir/x survived its directory's replacement")
	}
	var n int
	fs.WalkDir(fsys, ".", func(string, fs.DirEntry, error) error { n++; return nil })
	if n < 930 {
		t.Fatalf("walked %d entries", n)
	}
}
