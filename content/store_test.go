package content

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/errdefs"
	"github.com/opencontainers/go-digest"
)

func TestWriteReadVerify(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name     string
		data     string
		expected digest.Digest
		wantErr  func(error) bool
	}{
		{"no expectation", "hello", "", nil},
		{"matching sha256", "hello", digest.FromString("hello"), nil},
		{"matching sha512", "hello", digest.SHA512.FromString("hello"), nil},
		{"mismatch", "hello", digest.FromString("bye"), errdefs.IsInvalidArgument},
		{"bad digest", "hello", "sha256:xyz", errdefs.IsInvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := NewStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			d, n, err := s.Write(ctx, strings.NewReader(c.data), c.expected)
			if c.wantErr != nil {
				if err == nil || !c.wantErr(err) {
					t.Fatalf("err = %v", err)
				}
				entries, _ := os.ReadDir(filepath.Join(s.Root(), "ingest"))
				if len(entries) != 0 {
					t.Fatalf("ingest left behind: %v", entries)
				}
				if c.expected.Validate() == nil && s.Exists(ctx, c.expected) {
					t.Fatal("mismatched blob became visible")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(c.data)) {
				t.Fatalf("size %d", n)
			}
			if c.expected != "" && d != c.expected {
				t.Fatalf("digest %s, want %s", d, c.expected)
			}
			b, err := s.ReadBlob(ctx, d)
			if err != nil || string(b) != c.data {
				t.Fatalf("read %q %v", b, err)
			}
			if err := s.Verify(ctx, d); err != nil {
				t.Fatal(err)
			}
			// Writing again is idempotent.
			if _, _, err := s.Write(ctx, strings.NewReader(c.data), c.expected); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCorruptionAndDelete(t *testing.T) {
	ctx := context.Background()
	s, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.WriteBlob(ctx, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.Path(d)
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte("dat4"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, d); err == nil {
		t.Fatal("corruption not detected")
	}
	var seen []digest.Digest
	s.Walk(ctx, func(d digest.Digest, _ int64, _ string) error { seen = append(seen, d); return nil })
	if len(seen) != 1 || seen[0] != d {
		t.Fatalf("walk saw %v", seen)
	}
	if err := s.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, d); !errdefs.IsNotFound(err) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := s.Open(ctx, d); !errdefs.IsNotFound(err) {
		t.Fatalf("open deleted: %v", err)
	}
}

func TestLeftoverIngestRemovedAtOpen(t *testing.T) {
	root := t.TempDir()
	s, err := NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Writer(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("half"))
	// Simulate a crash: no Commit, no Close.
	if _, err := NewStore(root); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "ingest"))
	if len(entries) != 0 {
		t.Fatalf("ingest left behind: %v", entries)
	}
}
