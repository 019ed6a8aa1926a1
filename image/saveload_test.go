package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func tarNames(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return m
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		m[h.Name] = data
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := newEnv(t)
	img, err := src.s.Import(ctx, bytes.NewReader(busyboxTar(t)), "busybox:1", []string{`CMD ["sh"]`}, "m")
	if err != nil {
		t.Fatal(err)
	}
	if err := src.s.Tag(ctx, "busybox:1", "busybox:2"); err != nil {
		t.Fatal(err)
	}
	if err := src.s.Tag(ctx, "busybox:1", "other/repo:x"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		refs     []string
		wantTags []string
		wantOut  []string
	}{
		{[]string{"busybox:1"}, []string{"busybox:1"}, []string{"Loaded image: busybox:1"}},
		{[]string{"busybox"}, []string{"busybox:1", "busybox:2"}, []string{"Loaded image: busybox:1", "Loaded image: busybox:2"}},
		{[]string{img.ID.Encoded()[:8]}, nil, []string{"Loaded image ID: " + img.ID.String()}},
		{[]string{"busybox:2", "other/repo:x"}, []string{"busybox:2", "other/repo:x"}, []string{"Loaded image: busybox:2", "Loaded image: other/repo:x"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.refs, ","), func(t *testing.T) {
			var buf bytes.Buffer
			if err := src.s.Save(ctx, c.refs, &buf); err != nil {
				t.Fatal(err)
			}
			files := tarNames(t, buf.Bytes())
			for _, f := range []string{"oci-layout", "index.json", "manifest.json", "blobs/sha256/" + img.ID.Encoded()} {
				if _, ok := files[f]; !ok {
					t.Fatalf("archive lacks %s", f)
				}
			}
			var mf []manifestItem
			json.Unmarshal(files["manifest.json"], &mf)
			if len(mf) != 1 || len(mf[0].Layers) != 1 {
				t.Fatalf("manifest.json %s", files["manifest.json"])
			}
			dst := newEnv(t)
			var out []string
			if err := dst.s.Load(ctx, bytes.NewReader(buf.Bytes()), func(l string) { out = append(out, l) }); err != nil {
				t.Fatal(err)
			}
			if strings.Join(out, "|") != strings.Join(c.wantOut, "|") {
				t.Errorf("output %q, want %q", out, c.wantOut)
			}
			got, err := dst.s.Get(ctx, img.ID.String())
			if err != nil {
				t.Fatal(err)
			}
			sort.Strings(got.RepoTags)
			if strings.Join(got.RepoTags, ",") != strings.Join(c.wantTags, ",") {
				t.Errorf("tags %v, want %v", got.RepoTags, c.wantTags)
			}
			if got.ChainID != img.ChainID || got.Size != img.Size {
				t.Errorf("chain %s size %d, want %s %d", got.ChainID, got.Size, img.ChainID, got.Size)
			}
			// Loading again reuses everything.
			if err := dst.s.Load(ctx, bytes.NewReader(buf.Bytes()), nil); err != nil {
				t.Fatal(err)
			}
			dst.check(t)
		})
	}
	src.check(t)
}

func TestLoadRefusesBadArchives(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	cfgMissing := tarOf(t, entry{name: "manifest.json", body: `[{"Config":"nope.json","RepoTags":["x:1"],"Layers":[]}]`})
	badDigest := tarOf(t, entry{name: "blobs/sha256/" + strings.Repeat("a", 64), body: "not that"}, entry{name: "index.json", body: `{"schemaVersion":2,"manifests":[]}`})
	escape := tarOf(t, entry{name: "../x", body: "x"})
	layerOutside := tarOf(t, entry{name: "c.json", body: `{"rootfs":{"type":"layers","diff_ids":["sha256:` + strings.Repeat("b", 64) + `"]}}`},
		entry{name: "manifest.json", body: `[{"Config":"c.json","RepoTags":["x:1"],"Layers":["../../../etc/passwd"]}]`})
	configOutside := tarOf(t, entry{name: "manifest.json", body: `[{"Config":"/etc/passwd","RepoTags":["x:1"],"Layers":[]}]`})
	malformedIndex := tarOf(t, entry{name: "index.json", body: `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:zz","size":1}]}`})
	linkLoop := tarOf(t, entry{name: "a", typ: tar.TypeSymlink, link: "b"}, entry{name: "b", typ: tar.TypeSymlink, link: "a"},
		entry{name: "manifest.json", body: `[{"Config":"a","RepoTags":["x:1"],"Layers":[]}]`})
	for name, b := range map[string][]byte{"config missing": cfgMissing, "bad digest": badDigest, "escape": escape, "empty": tarOf(t),
		"layer outside": layerOutside, "config outside": configOutside, "malformed index": malformedIndex, "link loop": linkLoop} {
		if err := e.s.Load(ctx, bytes.NewReader(b), nil); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	e.check(t)
	n := 0
	e.cs.Walk(ctx, func(digest.Digest, int64, string) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d blobs of failed loads left behind", n)
	}
}

func TestSkopeoReadsSave(t *testing.T) {
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("no skopeo")
	}
	ctx := context.Background()
	e := newEnv(t)
	img, err := e.s.Import(ctx, bytes.NewReader(busyboxTar(t)), "busybox:latest", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bb.tar")
	f, _ := os.Create(path)
	if err := e.s.Save(ctx, []string{"busybox"}, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, transport := range []string{"docker-archive:", "oci-archive:"} {
		out, err := exec.Command("skopeo", "inspect", "--config", transport+path).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect %s: %v: %s", transport, err, out)
		}
		var cfg struct {
			RootFS struct {
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		}
		if err := json.Unmarshal(out, &cfg); err != nil || len(cfg.RootFS.DiffIDs) != 1 {
			t.Fatalf("%s: config %s", transport, out)
		}
		out, err = exec.Command("skopeo", "inspect", transport+path).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect %s: %v: %s", transport, err, out)
		}
	}
	// skopeo's own docker-archive and oci-archive outputs load back.
	for _, transport := range []string{"docker-archive:", "oci-archive:"} {
		out := filepath.Join(t.TempDir(), "copy.tar")
		dest := transport + out
		if transport == "docker-archive:" {
			dest += ":copied/busybox:v1"
		} else {
			dest += ":copied/busybox:v1"
		}
		if b, err := exec.Command("skopeo", "copy", "docker-archive:"+path, dest).CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy: %v: %s", err, b)
		}
		dst := newEnv(t)
		r, _ := os.Open(out)
		var lines []string
		err := dst.s.Load(ctx, r, func(l string) { lines = append(lines, l) })
		r.Close()
		if err != nil {
			t.Fatalf("load skopeo's %s: %v", transport, err)
		}
		got, err := dst.s.Get(ctx, "copied/busybox:v1")
		if err != nil {
			t.Fatalf("%s: %v (output %q)", transport, err, lines)
		}
		if got.ChainID != img.ChainID {
			t.Errorf("%s: chain %s, want %s", transport, got.ChainID, img.ChainID)
		}
		dst.check(t)
	}
}

// TestSlowSaveDoesNotBlockRemoval: a reader that stalls a save must not hold
// up rmi, and the archive stays whole even though the image went meanwhile.
func TestSlowSaveDoesNotBlockRemoval(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	img, err := e.s.Import(ctx, bytes.NewReader(busyboxTar(t)), "slow:1", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	saveErr := make(chan error, 1)
	go func() {
		err := e.s.Save(ctx, []string{"slow:1"}, pw)
		pw.CloseWithError(err)
		saveErr <- err
	}()
	// Read one byte: the save has planned and is now streaming.
	first := make([]byte, 1)
	if _, err := io.ReadFull(pr, first); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.s.Delete(ctx, "slow:1", false, false)
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("rmi during a stalled save: %v", err)
	}
	rest, err := io.ReadAll(pr)
	if err != nil || <-saveErr != nil {
		t.Fatalf("save: %v", err)
	}
	dst := newEnv(t)
	if err := dst.s.Load(ctx, io.MultiReader(bytes.NewReader(first), bytes.NewReader(rest)), nil); err != nil {
		t.Fatal(err)
	}
	if got, err := dst.s.Get(ctx, "slow:1"); err != nil || got.ID != img.ID {
		t.Fatalf("loaded %v %v", got, err)
	}
	e.check(t)
}
