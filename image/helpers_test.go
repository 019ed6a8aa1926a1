package image

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/content"
	"github.com/berth-dev/berth/metadata"
	"github.com/berth-dev/berth/snapshot"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func tarOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// busyboxTar is a root filesystem with /usr/bin/busybox as /bin/busybox and
// links for the usual applets.
func busyboxTar(t testing.TB) []byte {
	t.Helper()
	bb, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Skip("no /usr/bin/busybox")
	}
	es := []entry{{name: "bin/", typ: tar.TypeDir}, {name: "bin/busybox", body: string(bb), mode: 0o755}}
	for _, a := range []string{"sh", "echo", "cat", "ls", "sleep", "true"} {
		es = append(es, entry{name: "bin/" + a, typ: tar.TypeSymlink, link: "busybox"})
	}
	es = append(es, entry{name: "etc/", typ: tar.TypeDir}, entry{name: "etc/hostname", body: "berth\n"})
	return tarOf(t, es...)
}

type env struct {
	root string
	db   *bolt.DB
	cs   *content.Store
	sn   *snapshot.Overlay
	s    *Store

	layerImages snapshot.LayerImages // how open unpacks layers (default auto)
}

func newEnv(t testing.TB) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (whiteouts, ownership)")
	}
	root := t.TempDir()
	e := &env{root: root}
	e.open(t)
	return e
}

func (e *env) open(t testing.TB) {
	t.Helper()
	var err error
	if e.db, err = metadata.Open(filepath.Join(e.root, "metadata.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	if e.cs, err = content.NewStore(filepath.Join(e.root, "content")); err != nil {
		t.Fatal(err)
	}
	if e.sn, err = snapshot.NewOverlay(filepath.Join(e.root, "snapshots"), e.db, snapshot.Options{LayerImages: e.layerImages}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.sn.Close() })
	if e.s, err = NewStore(e.db, e.cs, e.sn); err != nil {
		t.Fatal(err)
	}
}

func (e *env) reopen(t testing.TB) {
	e.db.Close()
	e.open(t)
}

func (e *env) check(t testing.TB) {
	t.Helper()
	res, err := e.s.Check(context.Background(), CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) > 0 {
		t.Fatalf("check found problems: %+v", res.Problems)
	}
}

type fakeUsers map[string][]string

func (f fakeUsers) ImageUsers(ctx context.Context, id digest.Digest) []string { return f[string(id)] }

func ocispecDescriptor(d digest.Digest) ocispec.Descriptor { return ocispec.Descriptor{Digest: d} }

func dockerspecImage() dockerspec.DockerOCIImage { return dockerspec.DockerOCIImage{} }
