package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
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
