package drivertest

import (
	"bytes"
	"context"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/registry/storage/driver"
)

// Run exercises d's whole contract. newDriver must return an empty driver.
func Run(t *testing.T, newDriver func(t *testing.T) driver.Driver) {
	ctx := context.Background()
	tests := []struct {
		name string
		fn   func(t *testing.T, d driver.Driver)
	}{
		{"put then get", func(t *testing.T, d driver.Driver) {
			mustPut(t, d, "/a/b/c", "hello")
			got, err := d.GetContent(ctx, "/a/b/c")
			if err != nil || string(got) != "hello" {
				t.Fatalf("GetContent = %q, %v", got, err)
			}
			mustPut(t, d, "/a/b/c", "bye")
			got, _ = d.GetContent(ctx, "/a/b/c")
			if string(got) != "bye" {
				t.Fatalf("overwrite: got %q", got)
			}
		}},
		{"missing is not found", func(t *testing.T, d driver.Driver) {
			if _, err := d.GetContent(ctx, "/nope"); !errdefs.IsNotFound(err) {
				t.Fatalf("GetContent: %v", err)
			}
			if _, err := d.Stat(ctx, "/nope"); !errdefs.IsNotFound(err) {
				t.Fatalf("Stat: %v", err)
			}
			if _, err := d.List(ctx, "/nope"); !errdefs.IsNotFound(err) {
				t.Fatalf("List: %v", err)
			}
			if err := d.Delete(ctx, "/nope"); !errdefs.IsNotFound(err) {
				t.Fatalf("Delete: %v", err)
			}
			if _, err := d.Reader(ctx, "/nope", 0); !errdefs.IsNotFound(err) {
				t.Fatalf("Reader: %v", err)
			}
		}},
		{"invalid paths refused", func(t *testing.T, d driver.Driver) {
			for _, p := range []string{"", "rel", "/a/../b", "/a//b", "/a/"} {
				if err := d.PutContent(ctx, p, nil); !errdefs.IsInvalidArgument(err) {
					t.Errorf("PutContent(%q) = %v, want invalid argument", p, err)
				}
			}
		}},
		{"writer append and reader offset", func(t *testing.T, d driver.Driver) {
			w, err := d.Writer(ctx, "/up/data", false)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, "0123")
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			w, err = d.Writer(ctx, "/up/data", true)
			if err != nil {
				t.Fatal(err)
			}
			if w.Size() != 4 {
				t.Fatalf("Size after reopen = %d, want 4", w.Size())
			}
			io.WriteString(w, "456789")
			if err := w.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			w.Close()
			r, err := d.Reader(ctx, "/up/data", 3)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r)
			r.Close()
			if string(b) != "3456789" {
				t.Fatalf("read from 3 = %q", b)
			}
			fi, err := d.Stat(ctx, "/up/data")
			if err != nil || fi.Size != 10 || fi.IsDir {
				t.Fatalf("Stat = %+v, %v", fi, err)
			}
		}},
		{"cancel discards", func(t *testing.T, d driver.Driver) {
			w, err := d.Writer(ctx, "/c/data", false)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, "x")
			if err := w.Cancel(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Stat(ctx, "/c/data"); !errdefs.IsNotFound(err) {
				t.Fatalf("after cancel Stat = %v", err)
			}
		}},
		{"list children", func(t *testing.T, d driver.Driver) {
			mustPut(t, d, "/l/x", "1")
			mustPut(t, d, "/l/y/z", "2")
			got, err := d.List(ctx, "/l")
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if !slices.Equal(got, []string{"/l/x", "/l/y"}) {
				t.Fatalf("List = %v", got)
			}
		}},
		{"move replaces", func(t *testing.T, d driver.Driver) {
			mustPut(t, d, "/m/src", "new")
			mustPut(t, d, "/m2/dst", "old")
			if err := d.Move(ctx, "/m/src", "/m2/dst"); err != nil {
				t.Fatal(err)
			}
			got, _ := d.GetContent(ctx, "/m2/dst")
			if string(got) != "new" {
				t.Fatalf("after move dst = %q", got)
			}
			if _, err := d.Stat(ctx, "/m/src"); !errdefs.IsNotFound(err) {
				t.Fatalf("src still there: %v", err)
			}
		}},
		{"delete tree", func(t *testing.T, d driver.Driver) {
			mustPut(t, d, "/t/a/b", "1")
			mustPut(t, d, "/t/c", "2")
			if err := d.Delete(ctx, "/t"); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Stat(ctx, "/t/a/b"); !errdefs.IsNotFound(err) {
				t.Fatalf("after delete: %v", err)
			}
		}},
		{"concurrent puts stay whole", func(t *testing.T, d driver.Driver) {
			a := bytes.Repeat([]byte("a"), 1<<16)
			b := bytes.Repeat([]byte("b"), 1<<16)
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := a
					if i%2 == 1 {
						c = b
					}
					if err := d.PutContent(ctx, "/race", c); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			got, _ := d.GetContent(ctx, "/race")
			if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
				t.Fatalf("torn write: %d bytes", len(got))
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDriver(t)) })
	}
}

func mustPut(t *testing.T, d driver.Driver, p, s string) {
	t.Helper()
	if err := d.PutContent(context.Background(), p, []byte(s)); err != nil {
		t.Fatalf("PutContent(%s): %v", p, err)
	}
}
