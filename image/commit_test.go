package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os/exec"
	"testing"

	"github.com/berth-dev/berth/snapshot"
)

func chrootSh(t *testing.T, e *env, key, parent, script string) string {
	t.Helper()
	ctx := context.Background()
	mounts, err := e.sn.Prepare(ctx, key, parent)
	if err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	if err := snapshot.MountAll(mounts, target); err != nil {
		t.Fatal(err)
	}
	defer snapshot.Unmount(target)
	out, err := exec.Command("chroot", target, "/bin/sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", script, err, out)
	}
	return string(out)
}

func TestCommitCarriesChanges(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	img, err := e.s.Import(ctx, bytes.NewReader(busyboxTar(t)), "bb", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	chrootSh(t, e, "ctr", img.ChainID, "mkdir -p /data && echo a > /data/a && echo keep > /data/k")
	c1, err := e.s.Commit(ctx, CommitOptions{Snapshot: "ctr", Image: img.ID, Changes: []string{"ENV STEP=1"}, Author: "me", Comment: "step 1", CreatedBy: "sh", Ref: "step:1"})
	if err != nil {
		t.Fatal(err)
	}
	chrootSh(t, e, "ctr2", c1.ChainID, "rm /etc/hostname; rm -rf /data; mkdir /data; echo new > /data/n; echo big > /f; ln /f /g; chmod 4755 /f")
	var diff bytes.Buffer
	if err := e.sn.Diff(ctx, "ctr2", &diff); err != nil {
		t.Fatal(err)
	}
	names := map[string]*tar.Header{}
	tr := tar.NewReader(&diff)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = h
	}
	for _, want := range []string{"etc/.wh.hostname", "data/.wh..wh..opq", "data/n", "f", "g"} {
		if names[want] == nil {
			t.Errorf("diff lacks %s; has %v", want, names)
		}
	}
	if h := names["g"]; h != nil && (h.Typeflag != tar.TypeLink || h.Linkname != "f") {
		t.Errorf("hard link g: %+v", h)
	}
	if h := names["f"]; h != nil && h.Mode&0o4000 == 0 {
		t.Errorf("setuid lost on f: %o", h.Mode)
	}
	c2, err := e.s.Commit(ctx, CommitOptions{Snapshot: "ctr2", Image: c1.ID, Comment: "step 2", Ref: "step:2"})
	if err != nil {
		t.Fatal(err)
	}
	if c2.Parent != c1.ID || len(c2.Config.RootFS.DiffIDs) != 3 || len(c2.Config.History) != 3 || c2.Config.Author != "me" {
		t.Fatalf("commit image: parent %s diffids %d history %d author %q", c2.Parent, len(c2.Config.RootFS.DiffIDs), len(c2.Config.History), c2.Config.Author)
	}
	if len(c2.Config.Config.Env) != 1 || c2.Config.Config.Env[0] != "STEP=1" {
		t.Errorf("env %v", c2.Config.Config.Env)
	}
	out := chrootSh(t, e, "ctr3", c2.ChainID, "ls /data; cat /etc/hostname 2>&1 || true; cat /g")
	if out != "n\ncat: can't open '/etc/hostname': No such file or directory\nbig\n" {
		t.Errorf("view of the committed image: %q", out)
	}
	// History shows both commits with their ids.
	h, _ := e.s.History(ctx, "step:2")
	if len(h) != 3 || h[0].ID != c2.ID.String() || h[1].ID != c1.ID.String() || h[2].ID != img.ID.String() {
		t.Errorf("history %+v", h)
	}
	// The base is a parent now: rmi refuses while a child exists.
	if _, err := e.s.Delete(ctx, c1.ID.String(), true, false); err == nil {
		t.Error("deleted an image with a child")
	}
	for _, k := range []string{"ctr", "ctr2", "ctr3"} {
		e.sn.Remove(ctx, k)
	}
	e.check(t)
	// Save and load keep the three layers.
	var buf bytes.Buffer
	if err := e.s.Save(ctx, []string{"step:2"}, &buf); err != nil {
		t.Fatal(err)
	}
	dst := newEnv(t)
	if err := dst.s.Load(ctx, &buf, nil); err != nil {
		t.Fatal(err)
	}
	got, err := dst.s.Get(ctx, "step:2")
	if err != nil || got.ChainID != c2.ChainID {
		t.Fatalf("loaded %v %v", got, err)
	}
}
