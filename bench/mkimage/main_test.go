package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// tree makes a small file tree under a temp root and returns the root.
func tree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"app/a.txt":       strings.Repeat("a", 1000),
		"app/b/c.txt":     strings.Repeat("c", 1000),
		"app/b/d.txt":     strings.Repeat("d", 1000),
		"app/skip/e.txt":  "e",
		"app/z/last.txt":  strings.Repeat("z", 1000),
		"other/keep.conf": "k",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.txt", filepath.Join(root, "app/link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, "app/a.txt"), filepath.Join(root, "app/hard")); err != nil {
		t.Fatal(err)
	}
	return root
}

type readImage struct {
	tags   []string
	config ocispec.Image
	layers [][]string // entry names (with type markers) per layer
}

// readArchive checks an archive's blobs against their names and the
// manifests against each other, and lists every layer's entries.
func readArchive(t *testing.T, data []byte) readImage {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
		if strings.HasPrefix(h.Name, "blobs/sha256/") && h.Typeflag == tar.TypeReg {
			if got := digest.FromBytes(b).Encoded(); got != strings.TrimPrefix(h.Name, "blobs/sha256/") {
				t.Fatalf("blob %s holds %s", h.Name, got)
			}
		}
	}
	var dm []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &dm); err != nil || len(dm) != 1 {
		t.Fatalf("manifest.json: %v %s", err, files["manifest.json"])
	}
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, files["index.json"])
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(files[blobPath(idx.Manifests[0].Digest)], &man); err != nil {
		t.Fatalf("OCI manifest: %v", err)
	}
	if blobPath(man.Config.Digest) != dm[0].Config {
		t.Fatalf("OCI manifest config %s, manifest.json %s", man.Config.Digest, dm[0].Config)
	}
	out := readImage{tags: dm[0].RepoTags}
	if err := json.Unmarshal(files[dm[0].Config], &out.config); err != nil {
		t.Fatal(err)
	}
	if len(man.Layers) != len(dm[0].Layers) || len(out.config.RootFS.DiffIDs) != len(dm[0].Layers) {
		t.Fatalf("layer counts differ: OCI %d, docker %d, config %d", len(man.Layers), len(dm[0].Layers), len(out.config.RootFS.DiffIDs))
	}
	for i, lp := range dm[0].Layers {
		if blobPath(man.Layers[i].Digest) != lp || out.config.RootFS.DiffIDs[i] != man.Layers[i].Digest ||
			man.Layers[i].Size != int64(len(files[lp])) {
			t.Fatalf("layer %d: OCI %v, docker %s, diff ID %s", i, man.Layers[i], lp, out.config.RootFS.DiffIDs[i])
		}
		var names []string
		ltr := tar.NewReader(bytes.NewReader(files[lp]))
		for {
			h, err := ltr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n := h.Name
			switch h.Typeflag {
			case tar.TypeSymlink:
				n += "->" + h.Linkname
			case tar.TypeLink:
				n += "=>" + h.Linkname
			}
			names = append(names, n)
		}
		out.layers = append(out.layers, names)
	}
	return out
}

func TestArchive(t *testing.T) {
	root := tree(t)
	tests := []struct {
		name   string
		split  int
		args   []string
		layers [][]string
	}{
		{
			name: "explicit layers with an exclusion",
			args: []string{"app,!app/skip,!app/z", "other,app/z"},
			layers: [][]string{
				{"app/", "app/a.txt", "app/b/", "app/b/c.txt", "app/b/d.txt", "app/hard=>app/a.txt", "app/link->a.txt"},
				{"app/", "app/z/", "app/z/last.txt", "other/", "other/keep.conf"},
			},
		},
		{
			name: "nested path carries its parents",
			args: []string{"app/b/c.txt"},
			layers: [][]string{
				{"app/", "app/b/", "app/b/c.txt"},
			},
		},
		{
			name:  "split in two by size",
			split: 2,
			args:  []string{"app"},
			layers: [][]string{
				// The hard link's first name is in the other layer: it is a file of its own here.
				{"app/", "app/a.txt", "app/b/", "app/b/c.txt", "app/b/d.txt"},
				{"app/", "app/hard", "app/link->a.txt", "app/skip/", "app/skip/e.txt", "app/z/", "app/z/last.txt"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := options{Tag: "example.com/bench/img:v1", Root: root, Split: tc.split, Env: []string{"A=b"},
				Cmd: []string{"sh"}, Created: time.Unix(1700000000, 0)}
			ls, err := plan(o, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := writeArchive(&buf, o, ls); err != nil {
				t.Fatal(err)
			}
			img := readArchive(t, buf.Bytes())
			if !reflect.DeepEqual(img.tags, []string{"example.com/bench/img:v1"}) {
				t.Errorf("tags %v", img.tags)
			}
			if !reflect.DeepEqual(img.config.Config.Env, o.Env) || !reflect.DeepEqual(img.config.Config.Cmd, o.Cmd) ||
				len(img.config.History) != len(tc.layers) {
				t.Errorf("config %+v", img.config)
			}
			for _, l := range img.layers {
				sort.Strings(l)
			}
			if !reflect.DeepEqual(img.layers, tc.layers) {
				t.Errorf("layers\n got %q\nwant %q", img.layers, tc.layers)
			}
			// The same tree gives the same archive.
			var again bytes.Buffer
			if err := writeArchive(&again, o, ls); err != nil || !bytes.Equal(again.Bytes(), buf.Bytes()) {
				t.Errorf("second archive differs (err %v)", err)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	root := tree(t)
	tests := []struct {
		name  string
		o     options
		args  []string
		inErr string
	}{
		{"no layers", options{Root: root}, nil, "no layers"},
		{"split takes one path", options{Root: root, Split: 2}, []string{"app", "other"}, "exactly one path"},
		{"too small to split", options{Root: root, Split: 5}, []string{"other"}, "too small"},
		{"missing path", options{Root: root}, []string{"nope"}, "nope"},
		{"only exclusions", options{Root: root}, []string{"!app"}, "includes no path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := plan(tc.o, tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.inErr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.inErr)
			}
		})
	}
	ls, err := plan(options{Root: root}, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeArchive(io.Discard, options{Root: root, Tag: "img@sha256:" + strings.Repeat("a", 64)}, ls); err == nil {
		t.Fatal("a digest reference must be refused as -tag")
	}
	// A tree that changes between the two passes is refused.
	if err := measure(root, ls[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "app/a.txt"), []byte(strings.Repeat("A", 1000)), 0o640); err != nil {
		t.Fatal(err)
	}
	err = writeArchive(io.Discard, options{Root: root, Tag: "img"}, ls)
	if err == nil || !strings.Contains(err.Error(), "changed while") {
		t.Fatalf("a tree changed between the passes: got %v", err)
	}
}
