// Command mkimage writes an image archive that `docker load` (20.10 and
// later) and `berth load` read: an OCI image layout plus Docker's
// manifest.json, one uncompressed layer per directory set given, so the
// image benchmarks can load the same multi-layer image into every engine.
//
//	mkimage -o go.tar -tag goimage:latest -C / -split 4 usr/local/go
//	mkimage -o two.tar -tag two:1 -C / usr/local/go/pkg usr/local/go/src,!usr/local/go/src/cmd
//
// Without -split every argument is one layer: a comma-separated list of
// paths relative to the -C root, where a path starting with "!" leaves that
// subtree out. With -split N the one argument's tree is cut into N layers of
// similar size in lexical order. Entries keep their mode, owner, mtime and
// hard links; each layer carries the parent directories of what it holds.
// A layer's bytes are produced twice (once to learn its digest, once into
// the archive) and the archive is refused if the tree changed in between.
package main

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var (
		out, tag, root, cmd, created string
		split                        int
		env                          stringList
	)
	flag.StringVar(&out, "o", "-", "write the archive to this file (- for stdout)")
	flag.StringVar(&tag, "tag", "mkimage:latest", "name[:tag] the archive gives the image")
	flag.StringVar(&root, "C", "/", "root directory the layer paths are relative to")
	flag.IntVar(&split, "split", 0, "cut the single path argument into this many layers of similar size")
	flag.StringVar(&cmd, "cmd", "", `image CMD as a JSON array, e.g. '["go","version"]'`)
	flag.StringVar(&created, "created", "2026-01-01T00:00:00Z", "creation time recorded in the image config (RFC 3339)")
	flag.Var(&env, "env", "KEY=value for the image config (repeatable)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mkimage [flags] LAYER...   (LAYER: path[,path][,!excluded]...)\n"+
			"       mkimage [flags] -split N PATH\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	opts := options{Tag: tag, Root: root, Split: split, Env: env}
	if cmd != "" {
		if err := json.Unmarshal([]byte(cmd), &opts.Cmd); err != nil {
			fatalf("-cmd %q: not a JSON array of strings: %v", cmd, err)
		}
	}
	t, err := time.Parse(time.RFC3339, created)
	if err != nil {
		fatalf("-created %q: %v", created, err)
	}
	opts.Created = t
	layers, err := plan(opts, flag.Args())
	if err != nil {
		fatalf("%v", err)
	}
	if err := writeOutput(out, func(w io.Writer) error { return writeArchive(w, opts, layers) }); err != nil {
		fatalf("%v", err)
	}
	for i, l := range layers {
		fmt.Fprintf(os.Stderr, "layer %d: %d entries, %d bytes of files, %s\n", i+1, len(l.entries), l.fileBytes, l.diffID)
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "mkimage: "+format+"\n", a...)
	os.Exit(1)
}

type options struct {
	Tag     string
	Root    string
	Split   int
	Env     []string
	Cmd     []string
	Created time.Time
}

// entry is one file system object of a layer, named relative to the root
// with slashes.
type entry struct {
	rel  string
	info fs.FileInfo
}

type layer struct {
	desc      string // what the layer was made from, for the image history
	entries   []entry
	fileBytes int64
	diffID    digest.Digest
	size      int64
}

// plan lists every layer's entries from the arguments.
func plan(o options, args []string) ([]*layer, error) {
	if len(args) == 0 {
		return nil, errors.New("no layers given")
	}
	if o.Split > 0 {
		if len(args) != 1 {
			return nil, fmt.Errorf("-split takes exactly one path, got %d", len(args))
		}
		return splitTree(o.Root, args[0], o.Split)
	}
	var out []*layer
	for _, a := range args {
		var inc, exc []string
		for _, p := range strings.Split(a, ",") {
			if p == "" {
				continue
			}
			if strings.HasPrefix(p, "!") {
				exc = append(exc, cleanRel(p[1:]))
			} else {
				inc = append(inc, cleanRel(p))
			}
		}
		if len(inc) == 0 {
			return nil, fmt.Errorf("layer %q includes no path", a)
		}
		set := map[string]fs.FileInfo{}
		for _, p := range inc {
			if err := addTree(o.Root, p, exc, set); err != nil {
				return nil, err
			}
		}
		out = append(out, newLayer(a, set))
	}
	return out, nil
}

// cleanRel makes p a clean slash path relative to the root ("." for the root).
func cleanRel(p string) string {
	p = path.Clean("/" + filepath.ToSlash(p))
	if p == "/" {
		return "."
	}
	return p[1:]
}

func excluded(rel string, exc []string) bool {
	for _, e := range exc {
		if rel == e || strings.HasPrefix(rel, e+"/") || e == "." {
			return true
		}
	}
	return false
}

// addTree adds rel's parent directories and the tree under rel, less the
// excluded subtrees, to set.
func addTree(root, rel string, exc []string, set map[string]fs.FileInfo) error {
	if err := addParents(root, rel, set); err != nil {
		return err
	}
	return filepath.WalkDir(filepath.Join(root, rel), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walk %s: %w", p, err)
		}
		r, err := relTo(root, p)
		if err != nil {
			return err
		}
		if excluded(r, exc) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if r == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		set[r] = info
		return nil
	})
}

// addParents adds the directories above rel (not the root itself).
func addParents(root, rel string, set map[string]fs.FileInfo) error {
	for dir := path.Dir(rel); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if _, ok := set[dir]; ok {
			continue
		}
		info, err := os.Lstat(filepath.Join(root, dir))
		if err != nil {
			return fmt.Errorf("stat parent directory: %w", err)
		}
		set[dir] = info
	}
	return nil
}

func relTo(root, p string) (string, error) {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return "", fmt.Errorf("path %s outside root %s: %w", p, root, err)
	}
	return filepath.ToSlash(r), nil
}

func newLayer(desc string, set map[string]fs.FileInfo) *layer {
	l := &layer{desc: desc}
	for rel, info := range set {
		l.entries = append(l.entries, entry{rel: rel, info: info})
		if info.Mode().IsRegular() {
			l.fileBytes += info.Size()
		}
	}
	// A parent sorts before its children: it is a prefix of their names.
	sort.Slice(l.entries, func(i, j int) bool { return l.entries[i].rel < l.entries[j].rel })
	return l
}

// splitTree cuts the tree under rel into n layers holding about the same
// number of file bytes each, in lexical order; every layer also gets the
// parent directories of what it holds.
func splitTree(root, rel string, n int) ([]*layer, error) {
	rel = cleanRel(rel)
	all := map[string]fs.FileInfo{}
	if err := addTree(root, rel, nil, all); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(all))
	var total int64
	for r, info := range all {
		names = append(names, r)
		if info.Mode().IsRegular() {
			total += info.Size()
		}
	}
	sort.Strings(names)
	sets := make([]map[string]fs.FileInfo, n)
	for i := range sets {
		sets[i] = map[string]fs.FileInfo{}
	}
	var done int64
	for _, r := range names {
		info := all[r]
		k := 0
		if total > 0 {
			k = int(done * int64(n) / total)
		}
		k = min(k, n-1)
		sets[k][r] = info
		if info.Mode().IsRegular() {
			done += info.Size()
		}
		if err := addParents(root, r, sets[k]); err != nil {
			return nil, err
		}
	}
	out := make([]*layer, n)
	for i, s := range sets {
		if len(s) == 0 {
			return nil, fmt.Errorf("%s is too small to cut into %d layers (layer %d would be empty)", rel, n, i+1)
		}
		out[i] = newLayer(fmt.Sprintf("%s part %d/%d", rel, i+1, n), s)
	}
	return out, nil
}

// writeLayerTar writes the layer's tar stream to w.
func writeLayerTar(w io.Writer, root string, l *layer) error {
	tw := tar.NewWriter(w)
	type inode struct{ dev, ino uint64 }
	seen := map[inode]string{}
	for _, e := range l.entries {
		link := ""
		if e.info.Mode()&fs.ModeSymlink != 0 {
			t, err := os.Readlink(filepath.Join(root, e.rel))
			if err != nil {
				return fmt.Errorf("read link %s: %w", e.rel, err)
			}
			link = t
		}
		hdr, err := tar.FileInfoHeader(e.info, link)
		if err != nil {
			return fmt.Errorf("tar header of %s: %w", e.rel, err)
		}
		hdr.Name = e.rel
		if e.info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if st, ok := e.info.Sys().(*syscall.Stat_t); ok && e.info.Mode().IsRegular() && st.Nlink > 1 {
			key := inode{uint64(st.Dev), st.Ino}
			if first, ok := seen[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				seen[key] = e.rel
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write tar header of %s: %w", e.rel, err)
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
			if err := copyFile(tw, filepath.Join(root, e.rel), hdr.Size); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

func copyFile(w io.Writer, p string, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	if n, err := io.CopyN(w, f, size); err != nil {
		return fmt.Errorf("read %s: %d of %d bytes: %w", p, n, size, err)
	}
	return nil
}

// countingHash is a digest in progress with the byte count.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) { c.n += int64(len(p)); return c.h.Write(p) }

// measure produces the layer once to learn its diff ID and size.
func measure(root string, l *layer) error {
	c := &countingHash{h: sha256.New()}
	if err := writeLayerTar(c, root, l); err != nil {
		return err
	}
	l.diffID, l.size = digest.NewDigest(digest.SHA256, c.h), c.n
	return nil
}

type blob struct {
	desc ocispec.Descriptor
	data []byte
}

func jsonBlob(mediaType string, v any) (blob, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return blob{}, err
	}
	return blob{desc: ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}, data: b}, nil
}

func blobPath(d digest.Digest) string { return "blobs/" + d.Algorithm().String() + "/" + d.Encoded() }

// writeArchive writes the image archive: blobs/sha256/* (layers, config,
// manifest), index.json, manifest.json and oci-layout.
func writeArchive(w io.Writer, o options, layers []*layer) error {
	named, err := reference.ParseNormalizedNamed(o.Tag)
	if err != nil {
		return fmt.Errorf("-tag %q: %w", o.Tag, err)
	}
	tagged, ok := reference.TagNameOnly(named).(reference.NamedTagged)
	if !ok {
		return fmt.Errorf("-tag %q: a name with a tag is needed, not a digest", o.Tag)
	}
	for _, l := range layers {
		if l.diffID != "" { // measured already
			continue
		}
		if err := measure(o.Root, l); err != nil {
			return err
		}
	}
	created := o.Created.UTC()
	cfg := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config:   ocispec.ImageConfig{Env: o.Env, Cmd: o.Cmd},
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	manifest := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
		cfg.History = append(cfg.History, ocispec.History{Created: &created, CreatedBy: "mkimage " + l.desc})
		manifest.Layers = append(manifest.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: l.diffID, Size: l.size})
	}
	cfgBlob, err := jsonBlob(ocispec.MediaTypeImageConfig, cfg)
	if err != nil {
		return err
	}
	manifest.Config = cfgBlob.desc
	manBlob, err := jsonBlob(ocispec.MediaTypeImageManifest, manifest)
	if err != nil {
		return err
	}
	mdesc := manBlob.desc
	mdesc.Annotations = map[string]string{
		"io.containerd.image.name": tagged.String(),
		ocispec.AnnotationRefName:  tagged.Tag(),
	}
	index, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{mdesc}})
	if err != nil {
		return err
	}
	type dockerManifest struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	dm := dockerManifest{Config: blobPath(cfgBlob.desc.Digest), RepoTags: []string{reference.FamiliarString(tagged)}}
	for _, l := range layers {
		dm.Layers = append(dm.Layers, blobPath(l.diffID))
	}
	dmJSON, err := json.Marshal([]dockerManifest{dm})
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	epoch := time.Unix(0, 0)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	written := map[digest.Digest]bool{}
	for _, l := range layers {
		if written[l.diffID] { // two identical layers are one blob
			continue
		}
		written[l.diffID] = true
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: blobPath(l.diffID), Mode: 0o444, Size: l.size, ModTime: epoch}); err != nil {
			return err
		}
		c := &countingHash{h: sha256.New()}
		if err := writeLayerTar(io.MultiWriter(tw, c), o.Root, l); err != nil {
			return err
		}
		if got := digest.NewDigest(digest.SHA256, c.h); got != l.diffID || c.n != l.size {
			return fmt.Errorf("layer %q changed while the archive was written (%s, %d bytes; first %s, %d bytes)",
				l.desc, got, c.n, l.diffID, l.size)
		}
	}
	files := []struct {
		name string
		data []byte
	}{
		{blobPath(cfgBlob.desc.Digest), cfgBlob.data},
		{blobPath(manBlob.desc.Digest), manBlob.data},
		{"index.json", index},
		{"manifest.json", dmJSON},
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o444, Size: int64(len(f.data)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// writeOutput runs fn on stdout, or on a temporary file beside name that is
// fsynced and renamed over name only when fn succeeded.
func writeOutput(name string, fn func(io.Writer) error) error {
	if name == "-" {
		bw := bufio.NewWriterSize(os.Stdout, 1<<20)
		if err := fn(bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create archive %s: %w", name, err)
	}
	tmp := f.Name()
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("create archive %s: %w", name, err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = fn(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write archive %s: %w", name, err)
	}
	return nil
}
