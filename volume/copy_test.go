package volume

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestPopulate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("copying ownership needs root")
	}
	ctx := context.Background()
	s, _, dir := newTestStore(t)
	src := filepath.Join(dir, "image-data")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(src, "f"), []byte("hello"), 0o600))
	must(os.Chown(filepath.Join(src, "f"), 1234, 5678))
	must(os.Chmod(filepath.Join(src, "f"), 0o640))
	must(os.WriteFile(filepath.Join(src, "sub", "suid"), []byte("#!/bin/sh"), 0o755))
	must(os.Chown(filepath.Join(src, "sub", "suid"), 1000, 1000))
	must(os.Chmod(filepath.Join(src, "sub", "suid"), os.ModeSetuid|0o755))
	must(os.Symlink("f", filepath.Join(src, "link")))
	must(os.Symlink("/etc/passwd", filepath.Join(src, "abs")))
	must(os.Link(filepath.Join(src, "f"), filepath.Join(src, "hard")))
	must(syscall.Mkfifo(filepath.Join(src, "fifo"), 0o620))
	must(os.Chmod(filepath.Join(src, "fifo"), 0o620))
	must(os.Chown(src, 1234, 99))
	must(os.Chmod(src, 0o750))
	old := time.Unix(1600000000, 0)
	must(os.Chtimes(filepath.Join(src, "sub"), old, old))

	if _, _, err := s.Create(ctx, "data", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	copied, err := s.Populate(ctx, "data", src)
	if err != nil || !copied {
		t.Fatalf("populate: %v copied=%v", err, copied)
	}
	dst := s.DataPath("data")
	for _, tc := range []struct {
		path     string
		mode     os.FileMode
		uid, gid uint32
	}{
		{".", os.ModeDir | 0o750, 1234, 99},
		{"f", 0o640, 1234, 5678},
		{"hard", 0o640, 1234, 5678},
		{"sub", os.ModeDir | 0o755, 0, 0},
		{"sub/suid", os.ModeSetuid | 0o755, 1000, 1000},
		{"link", os.ModeSymlink | 0o777, 0, 0},
		{"fifo", os.ModeNamedPipe | 0o620, 0, 0},
	} {
		fi, err := os.Lstat(filepath.Join(dst, tc.path))
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != tc.mode || st.Uid != tc.uid || st.Gid != tc.gid {
			t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", tc.path, fi.Mode(), st.Uid, st.Gid, tc.mode, tc.uid, tc.gid)
		}
	}
	if target, _ := os.Readlink(filepath.Join(dst, "abs")); target != "/etc/passwd" {
		t.Errorf("absolute symlink copied as %q", target)
	}
	a, _ := os.Stat(filepath.Join(dst, "f"))
	b, _ := os.Stat(filepath.Join(dst, "hard"))
	if !os.SameFile(a, b) {
		t.Errorf("hard link became two files")
	}
	if fi, _ := os.Stat(filepath.Join(dst, "sub")); !fi.ModTime().Equal(old) {
		t.Errorf("directory mtime %v, want %v", fi.ModTime(), old)
	}

	// A volume with content is never overwritten.
	must(os.WriteFile(filepath.Join(src, "later"), []byte("x"), 0o644))
	if copied, err := s.Populate(ctx, "data", src); err != nil || copied {
		t.Fatalf("second populate: %v copied=%v", err, copied)
	}
	if _, err := os.Stat(filepath.Join(dst, "later")); !os.IsNotExist(err) {
		t.Fatalf("non-empty volume was written to")
	}
	// A source that does not exist, or is a file, is not copied.
	if _, _, err := s.Create(ctx, "other", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "nope"), filepath.Join(src, "f")} {
		if copied, err := s.Populate(ctx, "other", p); err != nil || copied {
			t.Fatalf("populate from %s: %v copied=%v", p, err, copied)
		}
	}
}

func TestDriverMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	ctx := context.Background()
	s, _, dir := newTestStore(t)
	host := filepath.Join(dir, "host")
	os.MkdirAll(host, 0o755)
	os.WriteFile(filepath.Join(host, "keep"), []byte("precious"), 0o644)
	for name, opts := range map[string]map[string]string{
		"tmp":  {"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=0700"},
		"bind": {"type": "none", "device": host, "o": "bind"},
	} {
		if _, _, err := s.Create(ctx, name, CreateOptions{Options: opts}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Acquire(ctx, name, "c1", nil); err != nil {
			t.Fatal(err)
		}
		path, err := s.Mount(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unmountData(path) })
		if m, _ := isMountpoint(path); !m {
			t.Fatalf("%s: not mounted at %s", name, path)
		}
		if _, err := s.Mount(ctx, name); err != nil { // already mounted: no second mount
			t.Fatal(err)
		}
		if err := s.Remove(ctx, name); err == nil {
			t.Fatalf("%s removed while in use", name)
		}
		if err := s.Release(ctx, name, "c1"); err != nil {
			t.Fatal(err)
		}
		if m, _ := isMountpoint(path); m {
			t.Fatalf("%s: still mounted after the last user left", name)
		}
		s.Mount(ctx, name) // removal must unmount before deleting
		if err := s.Remove(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(host, "keep")); err != nil || string(b) != "precious" {
		t.Fatalf("removing a bind volume touched the host directory: %q %v", b, err)
	}
}
