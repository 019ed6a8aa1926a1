package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	erofs "github.com/erofs/go-erofs"
)

// FuzzApply feeds arbitrary bytes to Apply and checks that it never panics
// and never changes anything beside the layer directory.
func FuzzApply(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("needs root")
	}
	seeds := [][]tentry{
		{{name: "../x", body: "x"}},
		{{name: "l", typ: tar.TypeSymlink, link: "/"}, {name: "l/etc/x", body: "x"}},
		{{name: "l", typ: tar.TypeSymlink, link: "../.."}, {name: "l/x", body: "x"}},
		{{name: "a", body: "a"}, {name: "h", typ: tar.TypeLink, link: "a"}, {name: "d/.wh..wh..opq"}, {name: "d/.wh.a"}},
		{{name: "dev/c", typ: tar.TypeChar, major: 1, minor: 3}},
	}
	for _, s := range seeds {
		b, err := tarBytes(s...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		layer := filepath.Join(base, "in", "layer")
		os.MkdirAll(layer, 0o755)
		sentinel := filepath.Join(base, "sentinel")
		os.WriteFile(sentinel, []byte("s"), 0o644)
		Apply(context.Background(), layer, bytes.NewReader(data))
		entries, _ := os.ReadDir(base)
		if len(entries) != 2 {
			t.Fatalf("something was created beside the layer: %v", entries)
		}
		if b, _ := os.ReadFile(sentinel); string(b) != "s" {
			t.Fatal("sentinel changed")
		}
		inner, _ := os.ReadDir(filepath.Join(base, "in"))
		if len(inner) != 1 {
			t.Fatalf("something was created beside the layer: %v", inner)
		}
	})
}

// FuzzWriteImage feeds arbitrary bytes to WriteImage and WriteIndex: they
// never panic, and an image they accept is one the go-erofs reader walks,
// every file readable to its end.
func FuzzWriteImage(f *testing.F) {
	seeds := [][]tentry{
		{{name: "a", body: "a"}, {name: "h", typ: tar.TypeLink, link: "a"}, {name: "d/.wh..wh..opq"}, {name: "d/.wh.a"}},
		{{name: "l", typ: tar.TypeSymlink, link: "/x"}, {name: "l/y/z", body: "through"}},
		{{name: "dev/c", typ: tar.TypeChar, major: 1, minor: 3}, {name: "x", body: "x", xattrs: map[string]string{"user.a": "b"}}},
		{{name: "f", body: string(make([]byte, 5000))}, {name: "f/", typ: tar.TypeDir}},
	}
	for _, s := range seeds {
		b, err := tarBytes(s...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, index := range []bool{false, true} {
			dir := t.TempDir()
			img, err := os.Create(filepath.Join(dir, "layer.erofs"))
			if err != nil {
				t.Fatal(err)
			}
			write := WriteImage
			if index {
				write = WriteIndex
			}
			_, err = write(context.Background(), img, bytes.NewReader(data))
			img.Close()
			if err != nil || index {
				// An index image's data lives in the tar, which the
				// reader cannot be given here; the mount tests cover it.
				continue
			}
			r, err := os.Open(img.Name())
			if err != nil {
				t.Fatal(err)
			}
			fsys, err := erofs.Open(r)
			if err != nil {
				r.Close()
				t.Fatalf("accepted tar made an unreadable image: %v", err)
			}
			err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.Type().IsRegular() {
					_, err = fs.ReadFile(fsys, p)
				}
				return err
			})
			r.Close()
			if err != nil {
				t.Fatalf("walk of an accepted image: %v", err)
			}
		}
	})
}
