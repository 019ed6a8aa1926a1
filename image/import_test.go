package image

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/snapshot"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func compress(t *testing.T, kind string, b []byte) []byte {
	var buf bytes.Buffer
	switch kind {
	case "gzip":
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
	case "zstd":
		w, _ := zstd.NewWriter(&buf)
		w.Write(b)
		w.Close()
	default:
		return b
	}
	return buf.Bytes()
}

func TestImportAndGet(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{"plain", "gzip", "zstd"} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t)
			raw := busyboxTar(t)
			img, err := e.s.Import(ctx, bytes.NewReader(compress(t, kind, raw)), "busybox", []string{`CMD ["sh"]`, "ENV A=b", "WORKDIR /x", "EXPOSE 80"}, "hello")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(img.Config.Config.Cmd, " "); got != "sh" {
				t.Errorf("Cmd = %q", got)
			}
			if got := strings.Join(img.Config.Config.Env, ","); got != "A=b" {
				t.Errorf("Env = %q", got)
			}
			if img.Config.Config.WorkingDir != "/x" {
				t.Errorf("WorkingDir = %q", img.Config.Config.WorkingDir)
			}
			if _, ok := img.Config.Config.ExposedPorts["80/tcp"]; !ok {
				t.Errorf("ExposedPorts = %v", img.Config.Config.ExposedPorts)
			}
			if len(img.Config.History) != 1 || img.Config.History[0].Comment != "hello" {
				t.Errorf("History = %+v", img.Config.History)
			}
			if len(img.RepoTags) != 1 || img.RepoTags[0] != "busybox:latest" {
				t.Errorf("RepoTags = %v", img.RepoTags)
			}
			if img.ChainID == "" || img.Size == 0 {
				t.Errorf("ChainID %q Size %d", img.ChainID, img.Size)
			}
			for _, ref := range []string{"busybox", "busybox:latest", "docker.io/library/busybox:latest", img.ID.String(), img.ID.Encoded(), img.ID.Encoded()[:12], img.ID.Encoded()[:4], img.ID.String()[:12]} {
				got, err := e.s.Get(ctx, ref)
				if err != nil {
					t.Fatalf("Get(%q): %v", ref, err)
				}
				if got.ID != img.ID {
					t.Fatalf("Get(%q) = %s", ref, got.ID)
				}
			}
			for _, ref := range []string{"busybox:other", "nope", "sha256:" + strings.Repeat("0", 64), "", "UPPER"} {
				_, err := e.s.Get(ctx, ref)
				if !errdefs.IsNotFound(err) {
					t.Fatalf("Get(%q) = %v, want NotFound", ref, err)
				}
				if ref != "" && err.Error() != "No such image: "+ref {
					t.Fatalf("message %q", err)
				}
			}
			e.check(t)
		})
	}
}

func TestImportSharesLayerAndBadInput(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	raw := busyboxTar(t)
	a, err := e.s.Import(ctx, bytes.NewReader(raw), "a", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.s.Import(ctx, bytes.NewReader(raw), "b", []string{"CMD echo hi"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if a.ChainID != b.ChainID || a.ID == b.ID {
		t.Fatalf("chains %s %s ids %s %s", a.ChainID, b.ChainID, a.ID, b.ID)
	}
	if got := strings.Join(b.Config.Config.Cmd, "|"); got != "/bin/sh|-c|echo hi" {
		t.Errorf("shell-form CMD = %q", got)
	}
	n := 0
	e.sn.Walk(ctx, func(snapshot.Info) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d snapshots for two images on one layer, want 1", n)
	}
	bad := []struct {
		name    string
		ref     string
		changes []string
		data    []byte
	}{
		{"bad ref", "UPPER:x", nil, raw},
		{"bad change", "", []string{"RUN rm -rf /"}, raw},
		{"not a tar", "", nil, []byte("this is not a tar archive at all, just text that goes on for more than five hundred and twelve bytes so the reader sees a full block of it........................................................................................................................................................................................................................................................................................................................................................................................")},
		{"xz", "", nil, []byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2}},
	}
	for _, c := range bad {
		if _, err := e.s.Import(ctx, bytes.NewReader(c.data), c.ref, c.changes, ""); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: err = %v, want InvalidArgument", c.name, err)
		}
	}
	e.check(t)
}

func TestRunFromSnapshot(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	img, err := e.s.Import(ctx, bytes.NewReader(busyboxTar(t)), "busybox", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := e.sn.Prepare(ctx, "ctr1", img.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sn.Prepare(ctx, "ctr1", img.ChainID); !errdefs.IsConflict(err) {
		t.Fatalf("second Prepare: %v", err)
	}
	target := t.TempDir()
	if err := snapshot.MountAll(mounts, target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snapshot.Unmount(target) })
	out, err := exec.Command("chroot", target, "/bin/sh", "-c", "echo hi > /new; cat /etc/hostname; rm /etc/hostname").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if string(out) != "berth\n" {
		t.Fatalf("output %q", out)
	}
	if err := snapshot.Unmount(target); err != nil {
		t.Fatal(err)
	}
	if err := snapshot.Unmount(target); err != nil {
		t.Fatalf("second unmount: %v", err)
	}
	upper, _ := e.sn.UpperDir(ctx, "ctr1")
	if b, _ := os.ReadFile(filepath.Join(upper, "new")); string(b) != "hi\n" {
		t.Fatalf("upper has %q", b)
	}
	if n, err := e.sn.Usage(ctx, "ctr1"); err != nil || n != 3 {
		t.Fatalf("usage %d %v", n, err)
	}
	// The layer stays shared and unchanged.
	lower, _ := e.sn.UpperDir(ctx, img.ChainID)
	if _, err := os.Stat(filepath.Join(lower, "etc/hostname")); err != nil {
		t.Fatal("layer changed by the container")
	}
	if err := e.sn.Remove(ctx, img.ChainID); !errdefs.IsConflict(err) {
		t.Fatalf("removing a used layer: %v", err)
	}
	if err := e.sn.Remove(ctx, "ctr1"); err != nil {
		t.Fatal(err)
	}
	if err := e.sn.Remove(ctx, "ctr1"); !errdefs.IsNotFound(err) {
		t.Fatalf("second remove: %v", err)
	}
	e.check(t)
}
