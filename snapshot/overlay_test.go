package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/metadata"
)

func TestOverlayLifecycle(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	db, err := metadata.Open(filepath.Join(root, "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	o, err := NewOverlay(filepath.Join(root, "snapshots"), db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
		want func(error) bool
	}{
		{"prepare base", func() error { _, err := o.Prepare(ctx, "x1", ""); return err }, nil},
		{"commit base", func() error { return o.Commit(ctx, "base", "x1") }, nil},
		{"prepare on missing parent", func() error { _, err := o.Prepare(ctx, "x2", "nope"); return err }, errdefs.IsNotFound},
		{"prepare on base", func() error { _, err := o.Prepare(ctx, "ctr", "base"); return err }, nil},
		{"prepare twice", func() error { _, err := o.Prepare(ctx, "ctr", "base"); return err }, errdefs.IsConflict},
		{"prepare on active", func() error { _, err := o.Prepare(ctx, "x3", "ctr"); return err }, errdefs.IsInvalidArgument},
		{"remove parent in use", func() error { return o.Remove(ctx, "base") }, errdefs.IsConflict},
		{"remove missing", func() error { return o.Remove(ctx, "nope") }, errdefs.IsNotFound},
		{"empty key", func() error { _, err := o.Prepare(ctx, "", ""); return err }, errdefs.IsInvalidArgument},
	}
	for _, s := range steps {
		err := s.do()
		if s.want == nil && err != nil || s.want != nil && !s.want(err) {
			t.Fatalf("%s: err = %v", s.name, err)
		}
	}
	ms, err := o.Mounts(ctx, "ctr")
	if err != nil || len(ms) != 1 || ms[0].Type != "overlay" {
		t.Fatalf("mounts %+v %v", ms, err)
	}
	opts := strings.Join(ms[0].Options, ",")
	for _, want := range []string{"upperdir=", "workdir=", "lowerdir="} {
		if !strings.Contains(opts, want) {
			t.Errorf("options %q lack %s", opts, want)
		}
	}
	ms, _ = o.Mounts(ctx, "base")
	if ms[0].Type != "bind" || ms[0].Options[0] != "ro" {
		t.Errorf("committed single layer mounts %+v", ms)
	}
	upper, _ := o.UpperDir(ctx, "ctr")
	os.WriteFile(filepath.Join(upper, "f"), []byte("12345"), 0o644)
	os.Link(filepath.Join(upper, "f"), filepath.Join(upper, "g"))
	if n, err := o.Usage(ctx, "ctr"); err != nil || n != 5 {
		t.Errorf("usage %d %v (hard link counted twice?)", n, err)
	}

	// Stale directories of an interrupted create or remove go at open.
	os.MkdirAll(filepath.Join(root, "snapshots", "new-123", "fs"), 0o755)
	os.MkdirAll(filepath.Join(root, "snapshots", "rm-7", "fs"), 0o755)
	os.MkdirAll(filepath.Join(root, "snapshots", "99", "fs"), 0o755)
	if o, err = NewOverlay(filepath.Join(root, "snapshots"), db, Options{}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "snapshots"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 2 {
		t.Fatalf("snapshot dirs after reopen: %v", names)
	}
	if err := o.Remove(ctx, "ctr"); err != nil {
		t.Fatal(err)
	}
	if err := o.Remove(ctx, "base"); err != nil {
		t.Fatal(err)
	}
	entries, _ = os.ReadDir(filepath.Join(root, "snapshots"))
	if len(entries) != 0 {
		t.Fatalf("left after removing all: %v", entries)
	}
}

func TestParseOptions(t *testing.T) {
	cases := []struct {
		opts  []string
		flags uintptr
		data  string
	}{
		{[]string{"ro", "rbind"}, 1 | 4096 | 16384, ""},
		{[]string{"rw", "bind"}, 4096, ""},
		{[]string{"index=off", "lowerdir=/a:/b", "nosuid"}, 2, "index=off,lowerdir=/a:/b"},
	}
	for _, c := range cases {
		f, d := parseOptions(c.opts)
		if f != c.flags || d != c.data {
			t.Errorf("%v: flags %d data %q, want %d %q", c.opts, f, d, c.flags, c.data)
		}
	}
}

func TestUnmountNotMounted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	for _, p := range []string{dir, filepath.Join(dir, "missing")} {
		if err := Unmount(p); err != nil {
			t.Errorf("Unmount(%s): %v", p, err)
		}
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:            "/plain",
		`/with\040space`:    "/with space",
		`/tab\011x`:         "/tab\tx",
		`/back\134slash`:    `/back\slash`,
		`/trailing\`:        `/trailing\`,
		`/short\04`:         `/short\04`,
		`/end\040`:          "/end ",
		`/not\999an-escape`: `/not\999an-escape`,
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", in, got, want)
		}
	}
}
