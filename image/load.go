package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path"
	"runtime"
	"strings"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/metadata"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sync/errgroup"
)

// Docker's manifest media types, found in OCI layouts that Docker or skopeo wrote.
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// maxMetaFile bounds the JSON files of an archive kept in memory.
const maxMetaFile = 8 << 20

// Load reads an image archive from r: a Docker archive (manifest.json, old
// or Docker 25+) or an OCI image layout (index.json), plain or compressed.
// Every blob is verified while it is copied into the content store, every
// layer unpacked once. out receives one line per loaded name, as docker
// prints them ("Loaded image: busybox:latest", "Loaded image ID: sha256:...").
func (s *Store) Load(ctx context.Context, r io.Reader, out func(line string)) error {
	if out == nil {
		out = func(string) {}
	}
	dr, _, err := Decompress(r)
	if err != nil {
		return err
	}
	defer dr.Close()

	a := &archive{files: map[string]digest.Digest{}, meta: map[string][]byte{}, links: map[string]string{}}
	defer func() {
		// Blobs the archive carried that no image ended up using go, under
		// GC's exclusive lock (an import running beside us may be about to
		// use the same blob). A crash leaves them to NewStore's cleanup.
		for _, d := range a.pinned {
			s.unpinBlob(d)
		}
		for _, d := range a.files {
			s.orphan(d)
		}
		s.GC(context.WithoutCancel(ctx))
	}()
	tr := tar.NewReader(dr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return errdefs.InvalidArgument("read image archive: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
		if strings.HasPrefix(name, "../") || name == ".." {
			return errdefs.InvalidArgument("image archive entry %q points outside the archive", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			if err := a.add(ctx, s, name, hdr.Size, tr); err != nil {
				return err
			}
		case tar.TypeSymlink, tar.TypeLink:
			target := hdr.Linkname
			if hdr.Typeflag == tar.TypeSymlink {
				target = path.Join(path.Dir(name), target)
			}
			a.links[name] = path.Clean(strings.TrimPrefix(target, "/"))
		}
	}

	// The upload is in. (While it streamed, a slow client held nothing up.)
	// A blob removed meanwhile by an rmi of an image that shared it makes
	// this load fail cleanly, here or when its layer is recorded.
	for name, d := range a.files {
		if !s.cs.Exists(ctx, d) {
			return errdefs.Unavailable("image archive entry %s (%s) was removed while loading; load again", name, d)
		}
	}

	if _, ok := a.meta["manifest.json"]; ok {
		return s.loadDocker(ctx, a, out)
	}
	if _, ok := a.meta["index.json"]; ok {
		return s.loadOCI(ctx, a, out)
	}
	return errdefs.InvalidArgument("image archive has neither manifest.json nor index.json")
}

type archive struct {
	files  map[string]digest.Digest // regular files, stored as blobs
	meta   map[string][]byte        // small files, also kept in memory
	links  map[string]string        // symlinks and hard links: name -> target
	pinned []digest.Digest
}

func (a *archive) add(ctx context.Context, s *Store, name string, size int64, r io.Reader) error {
	var expected digest.Digest
	if strings.HasPrefix(name, "blobs/") {
		parts := strings.Split(name, "/")
		if len(parts) == 3 {
			if d := digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[2]); d.Validate() == nil {
				expected = d
			}
		}
	}
	small := size <= maxMetaFile && (expected == "" || size < 1<<20) && !strings.HasSuffix(name, "layer.tar")
	if small {
		b, err := io.ReadAll(io.LimitReader(r, size))
		if err != nil {
			return errdefs.InvalidArgument("read %s from image archive: %w", name, err)
		}
		a.meta[name] = b
		if expected == "" && !strings.HasSuffix(name, ".tar") {
			return nil
		}
		r = bytes.NewReader(b)
	}
	w, err := s.cs.Writer(ctx, expected)
	if err != nil {
		return err
	}
	defer w.Close()
	if _, err := io.Copy(w, r); err != nil {
		return errdefs.InvalidArgument("read %s from image archive: %w", name, err)
	}
	// Pinned before it is visible, until the load ends.
	s.pinBlob(w.Digest())
	a.pinned = append(a.pinned, w.Digest())
	d, err := w.Commit(ctx)
	if err != nil {
		if errdefs.IsInvalidArgument(err) {
			return errdefs.InvalidArgument("image archive entry %s: %w", name, err)
		}
		return err
	}
	a.files[name] = d
	return nil
}

// file returns the stored blob for an archive path (following links).
func (a *archive) file(name string) (digest.Digest, bool) {
	name = path.Clean(name)
	for i := 0; i < 16; i++ {
		if d, ok := a.files[name]; ok {
			return d, true
		}
		t, ok := a.links[name]
		if !ok {
			return "", false
		}
		name = t
	}
	return "", false
}

func (a *archive) metaFile(name string) ([]byte, bool) {
	name = path.Clean(name)
	for i := 0; i < 16; i++ {
		if b, ok := a.meta[name]; ok {
			return b, true
		}
		t, ok := a.links[name]
		if !ok {
			return nil, false
		}
		name = t
	}
	return nil, false
}

// read returns a (small) file of the archive: from memory, or from the
// content store when it was too big to keep.
func (a *archive) read(ctx context.Context, s *Store, name string) ([]byte, error) {
	if b, ok := a.metaFile(name); ok {
		return b, nil
	}
	if d, ok := a.file(name); ok {
		if size, err := s.cs.Info(ctx, d); err == nil && size <= maxMetaFile {
			return s.cs.ReadBlob(ctx, d)
		}
		return nil, errdefs.InvalidArgument("image archive: %s is too big for a config or manifest", name)
	}
	return nil, errdefs.InvalidArgument("image archive: %s missing", name)
}

func (s *Store) loadDocker(ctx context.Context, a *archive, out func(string)) error {
	var items []manifestItem
	if err := json.Unmarshal(a.meta["manifest.json"], &items); err != nil {
		return errdefs.InvalidArgument("image archive manifest.json: %w", err)
	}
	for _, it := range items {
		cfg, err := a.read(ctx, s, it.Config)
		if err != nil {
			return err
		}
		var descs []ocispec.Descriptor
		for _, lp := range it.Layers {
			d, ok := a.file(lp)
			if !ok {
				return errdefs.InvalidArgument("image archive: layer %s missing", lp)
			}
			descs = append(descs, ocispec.Descriptor{Digest: d})
		}
		if err := s.loadImage(ctx, cfg, descs, nil, it.RepoTags, out); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) loadOCI(ctx context.Context, a *archive, out func(string)) error {
	var index ocispec.Index
	if err := json.Unmarshal(a.meta["index.json"], &index); err != nil {
		return errdefs.InvalidArgument("image archive index.json: %w", err)
	}
	blob := func(d digest.Digest) ([]byte, error) {
		return a.read(ctx, s, blobPath(d))
	}
	// Entries for the same manifest are loaded once with all their names.
	type entry struct {
		desc ocispec.Descriptor
		tags []string
	}
	var order []digest.Digest
	entries := map[digest.Digest]*entry{}
	for _, m := range index.Manifests {
		e := entries[m.Digest]
		if e == nil {
			e = &entry{desc: m}
			entries[m.Digest] = e
			order = append(order, m.Digest)
		}
		if n := ociName(m.Annotations); n != "" {
			e.tags = append(e.tags, n)
		}
	}
	for _, d := range order {
		e := entries[d]
		desc, mraw, err := resolveManifest(e.desc, blob, 0)
		if err != nil {
			return err
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(mraw, &m); err != nil {
			return errdefs.InvalidArgument("image archive: manifest %s: %w", desc.Digest, err)
		}
		cfg, err := blob(m.Config.Digest)
		if err != nil {
			return err
		}
		var descs []ocispec.Descriptor
		for _, l := range m.Layers {
			if _, ok := a.file(blobPath(l.Digest)); !ok {
				return errdefs.InvalidArgument("image archive: layer %s missing", l.Digest)
			}
			descs = append(descs, l)
		}
		if err := s.loadImage(ctx, cfg, descs, mraw, e.tags, out); err != nil {
			return err
		}
	}
	return nil
}

// ociName is the image name an index entry carries, if any.
func ociName(ann map[string]string) string {
	if n := ann[annotationImageName]; n != "" {
		return n
	}
	// skopeo and others may put a whole reference in ref.name.
	if n := ann[annotationRefName]; n != "" {
		if named, err := reference.ParseNormalizedNamed(n); err == nil {
			if _, ok := named.(reference.NamedTagged); ok {
				return n
			}
		}
	}
	return ""
}

// resolveManifest follows an index down to the manifest for this platform.
func resolveManifest(desc ocispec.Descriptor, blob func(digest.Digest) ([]byte, error), depth int) (ocispec.Descriptor, []byte, error) {
	if depth > 4 {
		return desc, nil, errdefs.InvalidArgument("image archive: indexes nested too deep")
	}
	raw, err := blob(desc.Digest)
	if err != nil {
		return desc, nil, err
	}
	if desc.Digest.Validate() == nil && digest.FromBytes(raw) != desc.Digest && desc.Digest.Algorithm() == digest.SHA256 {
		return desc, nil, errdefs.InvalidArgument("image archive: blob %s is corrupt", desc.Digest)
	}
	var head struct {
		MediaType string               `json:"mediaType"`
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	json.Unmarshal(raw, &head)
	mt := head.MediaType
	if mt == "" {
		mt = desc.MediaType
	}
	if mt != ocispec.MediaTypeImageIndex && mt != mediaTypeDockerManifestList && head.Manifests == nil {
		return desc, raw, nil
	}
	var pick *ocispec.Descriptor
	for i, m := range head.Manifests {
		if m.Platform == nil || (m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH) {
			if _, err := blob(m.Digest); err == nil {
				pick = &head.Manifests[i]
				break
			}
		}
	}
	if pick == nil {
		return desc, nil, errdefs.NotFound("image archive: no manifest for linux/%s in index %s", runtime.GOARCH, desc.Digest)
	}
	return resolveManifest(*pick, blob, depth+1)
}

// loadImage unpacks an image's layers and records it with its names.
func (s *Store) loadImage(ctx context.Context, rawConfig []byte, layerDescs []ocispec.Descriptor, manifest []byte, tags []string, out func(string)) error {
	var cfg ocispec.Image
	if err := json.Unmarshal(rawConfig, &cfg); err != nil {
		return errdefs.InvalidArgument("image archive: config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(layerDescs) {
		return errdefs.InvalidArgument("image archive: config lists %d layers, the manifest %d", len(cfg.RootFS.DiffIDs), len(layerDescs))
	}
	// Every layer not already here is staged at once (each into a snapshot
	// of its own: an index image does not depend on its parent), then they
	// are committed in order.
	chains := ChainIDs(cfg.RootFS.DiffIDs)
	staged := make([]*Staged, len(layerDescs))
	defer func() {
		for _, st := range staged {
			if st != nil {
				s.Discard(context.WithoutCancel(ctx), st)
			}
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(2, runtime.NumCPU()))
	for i, desc := range layerDescs {
		if s.layerExists(chains[i]) || cfg.RootFS.DiffIDs[i].Validate() != nil {
			continue // reused, or refused below with its own error
		}
		g.Go(func() error {
			st, err := s.StageLayerBlob(gctx, desc, cfg.RootFS.DiffIDs[i], nil)
			staged[i] = st
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var layers []Layer
	parent := ""
	for i, desc := range layerDescs {
		var l Layer
		var err error
		if staged[i] != nil {
			l, err = s.CommitStaged(ctx, parent, staged[i])
			staged[i] = nil
		} else {
			l, err = s.applyLayerBlob(ctx, parent, desc, cfg.RootFS.DiffIDs[i])
		}
		if err != nil {
			return err
		}
		layers = append(layers, l)
		parent = l.ChainID
	}
	id := digest.FromBytes(rawConfig)
	// Names that move away from another image: docker says so.
	var notes []string
	s.db.View(func(tx *bolt.Tx) error {
		refs := tx.Bucket(metadata.BucketReferences)
		for _, t := range tags {
			n, err := ParseTag(t)
			if err != nil {
				continue
			}
			if old := refs.Get([]byte(n.String())); old != nil && digest.Digest(old) != id {
				notes = append(notes, "The image "+reference.FamiliarString(n)+" already exists, renaming the old one with ID "+string(old)+" to empty string")
			}
		}
		return nil
	})
	img, err := s.CreateRaw(ctx, rawConfig, layers, CreateOptions{Tags: tags, Manifest: manifest})
	if err != nil {
		return err
	}
	for _, n := range notes {
		out(n)
	}
	if len(tags) == 0 {
		out("Loaded image ID: " + img.ID.String())
	}
	for _, t := range tags {
		if n, err := ParseTag(t); err == nil {
			out("Loaded image: " + reference.FamiliarString(n))
		}
	}
	return nil
}
