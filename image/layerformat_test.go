package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/snapshot"
)

// stackAndRead mounts a container snapshot on chain and runs a shell
// command in it.
func stackAndRead(t *testing.T, e *env, key, chain, script string) string {
	t.Helper()
	ctx := context.Background()
	mounts, err := e.sn.Prepare(ctx, key, chain)
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
	snapshot.Unmount(target)
	if err := e.sn.Remove(ctx, key); err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func erofsMounts(t *testing.T, under string) int {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, " "+under) && strings.Contains(line, " - erofs ") {
			n++
		}
	}
	return n
}

// TestLayerFormats: directory layers (layer-images=false, or a store made
// before images) and image layers, full (gzip blob) and index (plain blob),
// stack on one another, survive reopening (a reboot unmounts everything)
// and pass check; removing them leaves no mount.
func TestLayerFormats(t *testing.T) {
	ctx := context.Background()
	e := &env{root: t.TempDir(), layerImages: snapshot.LayerImagesOff}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	e.open(t)
	if e.sn.LayerImages() {
		t.Fatal("layer-images=false still makes images")
	}
	base, err := e.s.Import(ctx, bytes.NewReader(busyboxTar(t)), "base:1", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := e.sn.UpperDir(ctx, base.ChainID)
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "layer.erofs")); err == nil {
		t.Fatal("directory mode wrote an image")
	}

	// The same store opened with images: new layers are images, on top of
	// the directory layer.
	e.db.Close()
	e.layerImages = snapshot.LayerImagesAuto
	e.open(t)
	if !e.sn.LayerImages() {
		t.Skip("this kernel does not mount file-backed EROFS images")
	}
	plain := tarOf(t, entry{name: "etc/", typ: '5'}, entry{name: "etc/plain", body: "index image\n"})
	l1, err := e.s.ApplyLayer(ctx, base.ChainID, bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarOf(t, entry{name: "etc/gz", body: "full image\n"}, entry{name: "etc/.wh.plain"}))
	zw.Close()
	d, err := e.cs.WriteBlob(ctx, gz.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	// A compressed blob (as pulled): the image holds the files' data.
	l2, err := e.s.ApplyLayerBlob(ctx, l1.ChainID, ocispecDescriptor(d), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []Layer{l1, l2} {
		dir, _ := e.sn.UpperDir(ctx, l.ChainID)
		if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "layer.erofs")); err != nil {
			t.Fatalf("layer %s is not an image: %v", l.ChainID, err)
		}
		_, err := os.Lstat(filepath.Join(filepath.Dir(dir), "layer.data"))
		if index := l.ChainID == l1.ChainID; index != (err == nil) {
			t.Fatalf("layer %s: index image %v, data link: %v", l.ChainID, index, err)
		}
	}
	script := "cat /etc/gz; ls /etc; busybox true && echo ran"
	want := "full image\ngz\nhostname\nran\n"
	if out := stackAndRead(t, e, "c1", l2.ChainID, script); out != want {
		t.Fatalf("stacked layers show %q, want %q", out, want)
	}

	baseLayer, ok := e.s.Layer(ctx, base.ChainID)
	if !ok {
		t.Fatal("base layer not found")
	}
	img, err := e.s.Create(ctx, dockerspecImage(), []Layer{baseLayer, l1, l2}, CreateOptions{Tags: []string{"stacked:1"}})
	if err != nil {
		t.Fatal(err)
	}

	// A reboot: every mount gone, then open again.
	e.sn.Close()
	if n := erofsMounts(t, e.root); n != 0 {
		t.Fatalf("%d layer images still mounted after Close", n)
	}
	e.db.Close()
	e.open(t)
	if out := stackAndRead(t, e, "c2", l2.ChainID, script); out != want {
		t.Fatalf("after reopening: %q, want %q", out, want)
	}
	e.check(t)

	if _, err := e.s.Delete(ctx, img.ID.String(), true, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Delete(ctx, "base:1", true, false); err != nil {
		t.Fatal(err)
	}
	if n := erofsMounts(t, e.root); n != 0 {
		t.Fatalf("%d layer images still mounted after removing every image", n)
	}
	e.check(t)
}

// TestLostLayerTar: an index image whose tar is gone does not stop the store
// from opening; stacking on it fails with an error (not an empty layer),
// check reports it, and it works again once the tar is back.
func TestLostLayerTar(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if !e.sn.LayerImages() {
		t.Skip("this kernel does not mount file-backed EROFS images")
	}
	img, err := e.s.Import(ctx, bytes.NewReader(busyboxTar(t)), "lost:1", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := e.s.Layer(ctx, img.ChainID)
	blob, _ := e.cs.Path(l.Blob.Digest)
	e.sn.Close()
	e.db.Close()
	away := filepath.Join(t.TempDir(), "away")
	if err := os.Rename(blob, away); err != nil {
		t.Fatal(err)
	}
	e.open(t)
	if _, err := e.sn.Prepare(ctx, "c1", img.ChainID); err == nil {
		t.Fatal("a container was stacked on a layer whose tar is gone")
	}
	res, err := e.s.Check(ctx, CheckOptions{})
	if err != nil || len(res.Problems) == 0 {
		t.Fatalf("check found nothing: %+v %v", res, err)
	}
	if err := os.Rename(away, blob); err != nil {
		t.Fatal(err)
	}
	e.sn.Remove(ctx, "c1")
	if out := stackAndRead(t, e, "c2", img.ChainID, "cat /etc/hostname"); out != "berth\n" {
		t.Fatalf("after the tar came back: %q", out)
	}
	e.check(t)
}
