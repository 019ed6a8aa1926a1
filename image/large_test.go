package image

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/snapshot"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// TestManyLayersDeepTreesHardLinks builds a 150-layer image (more than
// mount(2)'s option string can name), with a deep directory, hard links and a
// deletion in upper layers, and checks the container's view.
func TestManyLayersDeepTreesHardLinks(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	const n = 150
	deep := strings.Repeat("d/", 100)
	var layers []Layer
	parent := ""
	for i := 0; i < n; i++ {
		var es []entry
		switch i {
		case 0:
			es = []entry{{name: deep, typ: tar.TypeDir}, {name: deep + "leaf", body: "deep"},
				{name: "hl/", typ: tar.TypeDir}, {name: "hl/a", body: "shared"}, {name: "hl/b", typ: tar.TypeLink, link: "hl/a"},
				{name: "gone", body: "x"}}
		case n / 2:
			es = []entry{{name: ".wh.gone"}}
		default:
			es = []entry{{name: fmt.Sprintf("layer%03d", i), body: fmt.Sprint(i)}}
		}
		l, err := e.s.ApplyLayer(ctx, parent, bytes.NewReader(tarOf(t, es...)))
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		layers = append(layers, l)
		parent = l.ChainID
	}
	img, err := e.s.Create(ctx, dockerspec.DockerOCIImage{}, layers, CreateOptions{Tags: []string{"many:layers"}})
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := e.sn.Prepare(ctx, "ctr", img.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	if l := len(strings.Join(mounts[0].Options, ",")); l < 4096 {
		t.Logf("options are only %d bytes; the by-parts mount is not exercised", l)
	}
	target := t.TempDir()
	if err := snapshot.MountAll(mounts, target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snapshot.Unmount(target) })
	entries, _ := os.ReadDir(target)
	if len(entries) != n-2+2 { // n-2 layerNNN files, d, hl
		t.Errorf("%d entries in the merged root, want %d", len(entries), n)
	}
	if b, _ := os.ReadFile(filepath.Join(target, deep, "leaf")); string(b) != "deep" {
		t.Errorf("deep leaf: %q", b)
	}
	if _, err := os.Stat(filepath.Join(target, "gone")); err == nil {
		t.Error("whited-out file visible")
	}
	var a, b unix.Stat_t
	unix.Stat(filepath.Join(target, "hl/a"), &a)
	unix.Stat(filepath.Join(target, "hl/b"), &b)
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hard link lost: ino %d/%d nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	if err := snapshot.Unmount(target); err != nil {
		t.Fatal(err)
	}
	e.sn.Remove(ctx, "ctr")
	e.check(t)
}
