package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/metadata"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// Annotations Docker and containerd put on index.json entries.
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = ocispec.AnnotationRefName
)

// manifestItem is one entry of a Docker archive's manifest.json.
type manifestItem struct {
	Config       string
	RepoTags     []string
	Layers       []string
	LayerSources map[digest.Digest]ocispec.Descriptor `json:",omitempty"`
}

type saveItem struct {
	img  *Image
	tags []reference.NamedTagged
}

// Save writes the images refs name to w as one tar in Docker 25's format:
// an OCI image layout (oci-layout, index.json, blobs/sha256/...) plus
// Docker's manifest.json and repositories, so Docker (old and new), skopeo
// (docker-archive: and oci-archive:) and Berth read it. A name without a tag
// saves every tag of its repository; an id saves the image untagged.
func (s *Store) Save(ctx context.Context, refs []string, w io.Writer) error {
	if len(refs) == 0 {
		return errdefs.InvalidArgument("no image names given to save")
	}
	// The plan (names resolved, every blob opened) is made under the lock;
	// the bytes are streamed after it, from the open files, so a slow
	// reader never holds up rmi or prune (a blob removed meanwhile stays
	// readable through its open file).
	s.mu.RLock()
	locked := true
	defer func() {
		if locked {
			s.mu.RUnlock()
		}
	}()

	var items []*saveItem
	byID := map[digest.Digest]*saveItem{}
	err := s.db.View(func(tx *bolt.Tx) error {
		names := namesOf(tx)
		for _, ref := range refs {
			id, err := resolve(tx, ref)
			var tags []reference.NamedTagged
			if n, perr := reference.ParseNormalizedNamed(ref); perr == nil && !isIDPrefix(id, ref) {
				if t, ok := n.(reference.NamedTagged); ok {
					tags = append(tags, t)
				} else if _, ok := n.(reference.Digested); !ok {
					// All tags of the repository.
					err = nil
					found := false
					tx.Bucket(metadata.BucketReferences).ForEach(func(k, v []byte) error {
						kn, kerr := reference.ParseNormalizedNamed(string(k))
						if kerr != nil || kn.Name() != n.Name() {
							return nil
						}
						if t, ok := kn.(reference.NamedTagged); ok {
							found = true
							item := byID[digest.Digest(v)]
							if item == nil {
								img, lerr := s.load(tx, digest.Digest(v), names)
								if lerr != nil {
									err = lerr
									return nil
								}
								item = &saveItem{img: img}
								byID[img.ID] = item
								items = append(items, item)
							}
							item.tags = appendTag(item.tags, t)
						}
						return nil
					})
					if err != nil {
						return err
					}
					if !found {
						return errdefs.NotFound("No such image: %s", ref)
					}
					continue
				}
			}
			if err != nil {
				return err
			}
			item := byID[id]
			if item == nil {
				img, err := s.load(tx, id, names)
				if err != nil {
					return err
				}
				item = &saveItem{img: img}
				byID[id] = item
				items = append(items, item)
			}
			for _, t := range tags {
				item.tags = appendTag(item.tags, t)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}

	sw := &saver{s: s, written: map[digest.Digest]bool{}}
	defer sw.close()
	if err := sw.dir("blobs/"); err != nil {
		return err
	}
	if err := sw.dir("blobs/sha256/"); err != nil {
		return err
	}
	index := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	var manifest []manifestItem
	repos := map[string]map[string]string{}
	for _, item := range items {
		img := item.img
		layers, err := s.Layers(ctx, img)
		if err != nil {
			return err
		}
		mi := manifestItem{Config: blobPath(img.ID), RepoTags: []string{}, Layers: []string{}}
		if err := sw.blob(ctx, img.ID); err != nil {
			return err
		}
		for _, l := range layers {
			if err := sw.blob(ctx, l.Blob.Digest); err != nil {
				return err
			}
			mi.Layers = append(mi.Layers, blobPath(l.Blob.Digest))
		}
		desc, err := sw.manifest(ctx, img, layers)
		if err != nil {
			return err
		}
		sort.Slice(item.tags, func(i, j int) bool { return item.tags[i].String() < item.tags[j].String() })
		if len(item.tags) == 0 {
			index.Manifests = append(index.Manifests, desc)
		}
		for _, t := range item.tags {
			d := desc
			d.Annotations = map[string]string{annotationImageName: t.String(), annotationRefName: t.Tag()}
			index.Manifests = append(index.Manifests, d)
			mi.RepoTags = append(mi.RepoTags, reference.FamiliarString(t))
			if len(layers) > 0 {
				fam := reference.FamiliarName(t)
				if repos[fam] == nil {
					repos[fam] = map[string]string{}
				}
				repos[fam][t.Tag()] = strings.TrimPrefix(blobPath(layers[len(layers)-1].Blob.Digest), "blobs/sha256/")
			}
		}
		manifest = append(manifest, mi)
	}
	for _, f := range []struct {
		name string
		v    any
	}{
		{"index.json", index},
		{"manifest.json", manifest},
		{"oci-layout", ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}},
	} {
		if err := sw.json(f.name, f.v); err != nil {
			return err
		}
	}
	if len(repos) > 0 {
		if err := sw.json("repositories", repos); err != nil {
			return err
		}
	}
	s.mu.RUnlock()
	locked = false
	return sw.emit(ctx, w)
}

func appendTag(list []reference.NamedTagged, t reference.NamedTagged) []reference.NamedTagged {
	for _, x := range list {
		if x.String() == t.String() {
			return list
		}
	}
	return append(list, t)
}

func blobPath(d digest.Digest) string {
	// Digests from archives are untrusted: never panic on a malformed one.
	alg, enc, ok := strings.Cut(string(d), ":")
	if !ok || d.Validate() != nil {
		return "blobs/invalid-digest"
	}
	return "blobs/" + alg + "/" + enc
}

// saver plans an archive: the entries in order, each from an open blob
// file or from bytes.
type saver struct {
	s       *Store
	parts   []part
	written map[digest.Digest]bool
}

type part struct {
	hdr  *tar.Header
	file *os.File // or
	data []byte
}

// archiveTime is the time on every entry, so saving twice gives the same tar.
var archiveTime = time.Unix(0, 0).UTC()

func (sw *saver) dir(name string) error {
	sw.parts = append(sw.parts, part{hdr: &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: archiveTime, Format: tar.FormatPAX}})
	return nil
}

func (sw *saver) blob(ctx context.Context, d digest.Digest) error {
	if sw.written[d] {
		return nil
	}
	if d.Algorithm() != digest.SHA256 && !sw.written[digest.Digest(d.Algorithm())] {
		sw.dir("blobs/" + string(d.Algorithm()) + "/")
		sw.written[digest.Digest(d.Algorithm())] = true
	}
	f, err := sw.s.cs.Open(ctx, d)
	if err != nil {
		return errdefs.System("save blob %s: %w", d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return errdefs.System("save blob %s: %w", d, err)
	}
	hdr := &tar.Header{Name: blobPath(d), Typeflag: tar.TypeReg, Mode: 0o444, Size: fi.Size(), ModTime: archiveTime, Format: tar.FormatPAX}
	sw.parts = append(sw.parts, part{hdr: hdr, file: f})
	sw.written[d] = true
	return nil
}

func (sw *saver) bytes(name string, b []byte, mode int64) {
	sw.parts = append(sw.parts, part{hdr: &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(b)), ModTime: archiveTime, Format: tar.FormatPAX}, data: b})
}

func (sw *saver) json(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	sw.bytes(name, b, 0o644)
	return nil
}

// emit writes the planned archive to w.
func (sw *saver) emit(ctx context.Context, w io.Writer) error {
	tw := tar.NewWriter(w)
	for _, p := range sw.parts {
		if err := tw.WriteHeader(p.hdr); err != nil {
			return errdefs.System("write image archive: %w", err)
		}
		switch {
		case p.file != nil:
			if _, err := io.CopyN(tw, contextReader{ctx, p.file}, p.hdr.Size); err != nil {
				return errdefs.System("write %s to image archive: %w", p.hdr.Name, err)
			}
		case p.data != nil:
			if _, err := tw.Write(p.data); err != nil {
				return errdefs.System("write image archive: %w", err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return errdefs.System("write image archive: %w", err)
	}
	return nil
}

func (sw *saver) close() {
	for _, p := range sw.parts {
		if p.file != nil {
			p.file.Close()
		}
	}
}

type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// manifest writes the image's manifest into the archive: the stored one when
// it names exactly the layer blobs being saved, else one made for the save
// (a layer shared with another image may be stored in another compression).
func (sw *saver) manifest(ctx context.Context, img *Image, layers []Layer) (ocispec.Descriptor, error) {
	mraw, err := sw.s.cs.ReadBlob(ctx, img.Manifest)
	if err != nil {
		return ocispec.Descriptor{}, errdefs.System("image %s: read manifest: %w", img.ID, err)
	}
	var m struct {
		MediaType string               `json:"mediaType"`
		Layers    []ocispec.Descriptor `json:"layers"`
	}
	json.Unmarshal(mraw, &m)
	same := len(m.Layers) == len(layers)
	for i := 0; same && i < len(layers); i++ {
		same = m.Layers[i].Digest == layers[i].Blob.Digest
	}
	if same {
		if m.MediaType == "" {
			m.MediaType = ocispec.MediaTypeImageManifest
		}
		if err := sw.blob(ctx, img.Manifest); err != nil {
			return ocispec.Descriptor{}, err
		}
		return ocispec.Descriptor{MediaType: m.MediaType, Digest: img.Manifest, Size: int64(len(mraw))}, nil
	}
	cfgSize, err := sw.s.cs.Info(ctx, img.ID)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	fresh := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: img.ID, Size: cfgSize},
		Layers:    []ocispec.Descriptor{},
	}
	for _, l := range layers {
		fresh.Layers = append(fresh.Layers, l.Blob)
	}
	raw, err := json.Marshal(fresh)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	d := digest.FromBytes(raw)
	if !sw.written[d] {
		sw.bytes(blobPath(d), raw, 0o444)
		sw.written[d] = true
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(len(raw))}, nil
}
