package volume

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/metadata"
)

func newTestStore(t *testing.T) (*Store, *bolt.DB, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := metadata.Open(filepath.Join(dir, "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := NewStore(filepath.Join(dir, "volumes"), db)
	if err != nil {
		t.Fatal(err)
	}
	return s, db, dir
}

func TestCreate(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		opts    CreateOptions
		wantErr func(error) bool
	}{
		{name: "data", opts: CreateOptions{Labels: map[string]string{"a": "b"}}},
		{name: "with.dots_and-dash"},
		{name: "", opts: CreateOptions{}},
		{name: "x", wantErr: errdefs.IsInvalidArgument},
		{name: "../escape", wantErr: errdefs.IsInvalidArgument},
		{name: "has/slash", wantErr: errdefs.IsInvalidArgument},
		{name: "tmp", opts: CreateOptions{Options: map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}}},
		{name: "badopt", opts: CreateOptions{Options: map[string]string{"colour": "red"}}, wantErr: errdefs.IsInvalidArgument},
		{name: "nodevice", opts: CreateOptions{Options: map[string]string{"type": "tmpfs"}}, wantErr: errdefs.IsInvalidArgument},
		{name: "relbind", opts: CreateOptions{Options: map[string]string{"type": "none", "o": "bind", "device": "rel"}}, wantErr: errdefs.IsInvalidArgument},
		{name: "plugin", opts: CreateOptions{Driver: "nfs-plugin"}, wantErr: errdefs.IsNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, _ := newTestStore(t)
			v, created, err := s.Create(ctx, tc.name, tc.opts)
			if tc.wantErr != nil {
				if err == nil || !tc.wantErr(err) {
					t.Fatalf("err = %v, want a classed error", err)
				}
				if n := len(s.List(ctx)); n != 0 {
					t.Fatalf("%d volumes after a failed create", n)
				}
				return
			}
			if err != nil || !created {
				t.Fatalf("create: %v created=%v", err, created)
			}
			if tc.name == "" && len(v.Name) != 64 {
				t.Fatalf("generated name %q is not 64 hex", v.Name)
			}
			if v.Driver != DefaultDriver || v.CreatedAt.IsZero() {
				t.Fatalf("record %+v", v)
			}
			fi, err := os.Stat(s.DataPath(v.Name))
			if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
				t.Fatalf("data dir: %v %v", fi, err)
			}
			again, created, err := s.Create(ctx, v.Name, CreateOptions{})
			if err != nil || created || again.Name != v.Name {
				t.Fatalf("create of an existing name must return it: %v %v", err, created)
			}
			got, err := s.Get(ctx, v.Name)
			if err != nil || got.Labels["a"] != tc.opts.Labels["a"] || len(got.Options) != len(tc.opts.Options) {
				t.Fatalf("get: %+v %v", got, err)
			}
		})
	}
}

func TestRemoveAndRefs(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestStore(t)
	if _, _, err := s.Acquire(ctx, "missing", "c1", nil); !errdefs.IsNotFound(err) {
		t.Fatalf("acquire of a missing volume without create: %v", err)
	}
	if _, created, err := s.Acquire(ctx, "data", "c1", &CreateOptions{}); err != nil || !created {
		t.Fatalf("acquire with create: %v created=%v", err, created)
	}
	if _, created, err := s.Acquire(ctx, "data", "c2", &CreateOptions{}); err != nil || created {
		t.Fatalf("second acquire: %v created=%v", err, created)
	}
	os.WriteFile(filepath.Join(s.DataPath("data"), "f"), []byte("xyz"), 0o644)
	os.Link(filepath.Join(s.DataPath("data"), "f"), filepath.Join(s.DataPath("data"), "g"))
	os.Symlink("f", filepath.Join(s.DataPath("data"), "l"))
	if got := s.Size(ctx, "data"); got != 3 {
		t.Fatalf("size %d, want 3 (a hard link counted once)", got)
	}
	if err := s.Remove(ctx, "data"); !errdefs.IsConflict(err) {
		t.Fatalf("remove in use: %v", err)
	}
	s.Release(ctx, "data", "c1")
	if got := s.Users("data"); len(got) != 1 || got[0] != "c2" {
		t.Fatalf("users %v", got)
	}
	if err := s.Remove(ctx, "data"); !errdefs.IsConflict(err) {
		t.Fatalf("remove still in use: %v", err)
	}
	s.Release(ctx, "data", "c2")
	if err := s.Remove(ctx, "data"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "data")); !os.IsNotExist(err) {
		t.Fatalf("directory left: %v", err)
	}
	if err := s.Remove(ctx, "data"); !errdefs.IsNotFound(err) {
		t.Fatalf("second remove: %v", err)
	}
}

// TestRepair plays the states a kill -9 can leave and checks that a new
// store is consistent (every record has a directory, every directory of
// ours a record) and never deletes what it did not make.
func TestRepair(t *testing.T) {
	ctx := context.Background()
	s, db, _ := newTestStore(t)
	for _, name := range []string{"kept", "lostdir", "removing"} {
		if _, _, err := s.Create(ctx, name, CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(s.DataPath("kept"), "f"), []byte("x"), 0o644)
	os.RemoveAll(filepath.Join(s.Root(), "lostdir"))                         // record without a directory (removed by hand)
	os.MkdirAll(filepath.Join(s.Root(), ".create-half-123", "_data"), 0o755) // create cut short before its rename
	os.MkdirAll(filepath.Join(s.Root(), "norecord", "_data"), 0o755)         // renamed, record never written
	os.MkdirAll(filepath.Join(s.Root(), "foreign", "_data"), 0o755)          // not ours: has content
	os.WriteFile(filepath.Join(s.Root(), "foreign", "_data", "keep"), []byte("y"), 0o644)
	os.WriteFile(filepath.Join(s.Root(), "metadata.db"), []byte("z"), 0o600) // e.g. another engine's file
	// A remove cut short after its rename, before the record was deleted.
	os.Rename(filepath.Join(s.Root(), "removing"), filepath.Join(s.Root(), ".remove-removing-0123456789ab"))

	s2, err := NewStore(s.Root(), db)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, v := range s2.List(ctx) {
		names[v.Name] = true
		if _, err := os.Stat(s2.DataPath(v.Name)); err != nil {
			t.Errorf("volume %s has no directory: %v", v.Name, err)
		}
	}
	if !names["kept"] || !names["lostdir"] || len(names) != 2 {
		t.Fatalf("volumes after repair: %v", names)
	}
	entries, _ := os.ReadDir(s2.Root())
	var left []string
	for _, e := range entries {
		if !names[e.Name()] {
			left = append(left, e.Name())
		}
	}
	if strings.Join(left, " ") != "foreign metadata.db" {
		t.Fatalf("entries left besides volumes: %v, want only the foreign ones", left)
	}
	if b, err := os.ReadFile(filepath.Join(s2.DataPath("kept"), "f")); err != nil || string(b) != "x" {
		t.Fatalf("content of a committed volume lost: %q %v", b, err)
	}
	if _, _, err := s2.Create(ctx, "foreign", CreateOptions{}); !errdefs.IsConflict(err) {
		t.Fatalf("create over a directory that is not ours: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s2.Root(), "foreign", "_data", "keep")); err != nil {
		t.Fatalf("foreign content touched: %v", err)
	}
}

// TestConcurrentUseAndRemove races containers taking a volume against
// removals: a volume with a user is never removed, and every user's volume
// exists at the end.
func TestConcurrentUseAndRemove(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestStore(t)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(2)
		ref := fmt.Sprintf("c%d", i)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if _, _, err := s.Acquire(ctx, "shared", ref, &CreateOptions{}); err != nil {
					t.Error(err)
					return
				}
				if j < 19 {
					s.Release(ctx, "shared", ref)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if err := s.Remove(ctx, "shared"); err != nil && !errdefs.IsConflict(err) && !errdefs.IsNotFound(err) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if got := len(s.Users("shared")); got != 8 {
		t.Fatalf("%d users, want 8", got)
	}
	if _, err := s.Get(ctx, "shared"); err != nil {
		t.Fatalf("volume in use was removed: %v", err)
	}
	if _, err := os.Stat(s.DataPath("shared")); err != nil {
		t.Fatalf("directory of a volume in use: %v", err)
	}
}
