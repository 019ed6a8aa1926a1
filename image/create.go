package image

import (
	"context"
	"encoding/json"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/metadata"
	"github.com/distribution/reference"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// CreateOptions are the optional parts of a new image.
type CreateOptions struct {
	// Tags to point at the image, e.g. "busybox:latest" (normalised).
	Tags []string
	// Manifest, when set, is kept as the image's manifest (e.g. a
	// registry's, so its digest stays the repo digest); otherwise an OCI
	// manifest is made from the config and the layers' blobs.
	Manifest []byte
	// RepoDigests to record, e.g. "busybox@sha256:<manifest digest>".
	RepoDigests []string
	// Parent is the image this one was committed or built from.
	Parent digest.Digest
}

// Create makes an image from a config and its layers (bottom first, as
// ApplyLayer returned them). The config's RootFS is set from the layers.
func (s *Store) Create(ctx context.Context, cfg dockerspec.DockerOCIImage, layers []Layer, opts CreateOptions) (*Image, error) {
	cfg.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{}}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
	}
	if cfg.Created == nil {
		now := time.Now().UTC()
		cfg.Created = &now
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, errdefs.InvalidArgument("encode image config: %w", err)
	}
	return s.CreateRaw(ctx, raw, layers, opts)
}

// CreateRaw is Create with the config's exact bytes (whose digest is the
// image ID), as loaded or pulled.
func (s *Store) CreateRaw(ctx context.Context, rawConfig []byte, layers []Layer, opts CreateOptions) (*Image, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.createRaw(ctx, rawConfig, layers, opts)
}

func (s *Store) createRaw(ctx context.Context, rawConfig []byte, layers []Layer, opts CreateOptions) (*Image, error) {
	var cfg dockerspec.DockerOCIImage
	if err := json.Unmarshal(rawConfig, &cfg); err != nil {
		return nil, errdefs.InvalidArgument("parse image config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(layers) {
		return nil, errdefs.InvalidArgument("image config lists %d layers, %d given", len(cfg.RootFS.DiffIDs), len(layers))
	}
	chainID := ""
	var size int64
	for i, l := range layers {
		if l.DiffID != cfg.RootFS.DiffIDs[i] || l.Parent != chainID {
			return nil, errdefs.InvalidArgument("layer %d (%s) does not match the image config's diff ID %s", i, l.DiffID, cfg.RootFS.DiffIDs[i])
		}
		chainID = l.ChainID
		size += l.Size
	}
	var tags []reference.Named
	for _, t := range opts.Tags {
		n, err := ParseTag(t)
		if err != nil {
			return nil, err
		}
		tags = append(tags, n)
	}
	var repoDigests []reference.Named
	for _, d := range opts.RepoDigests {
		n, err := reference.ParseNormalizedNamed(d)
		if err != nil {
			return nil, errdefs.InvalidArgument("invalid repo digest %s: %w", d, err)
		}
		if _, ok := n.(reference.Canonical); !ok {
			return nil, errdefs.InvalidArgument("invalid repo digest %s: no digest", d)
		}
		repoDigests = append(repoDigests, n)
	}

	id, err := s.cs.WriteBlob(ctx, rawConfig)
	if err != nil {
		return nil, err
	}
	manifest := opts.Manifest
	if manifest == nil {
		m := ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: ocispec.MediaTypeImageManifest,
			Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: id, Size: int64(len(rawConfig))},
			Layers:    []ocispec.Descriptor{},
		}
		for _, l := range layers {
			m.Layers = append(m.Layers, l.Blob)
		}
		if manifest, err = json.Marshal(m); err != nil {
			return nil, errdefs.System("encode manifest: %w", err)
		}
	}
	mdgst, err := s.cs.WriteBlob(ctx, manifest)
	if err != nil {
		return nil, err
	}
	created := time.Now().UTC()
	if cfg.Created != nil {
		created = *cfg.Created
	}
	rec := &record{Manifest: mdgst, ChainID: chainID, Size: size, Parent: opts.Parent, Created: created}
	if len(tags) > 0 {
		rec.Tagged = time.Now().UTC()
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if old, err := getRecord(tx, id); err != nil {
			return err
		} else if old != nil {
			// Same config again (e.g. a re-import of the same tar with the
			// same time): keep the record, only add names.
			rec.Manifest, rec.Parent = old.Manifest, old.Parent
			if rec.Tagged.IsZero() {
				rec.Tagged = old.Tagged
			}
		}
		for _, l := range layers {
			if existing, err := getLayer(tx, l.ChainID); err != nil {
				return err
			} else if existing == nil {
				return errdefs.NotFound("layer %s: not found (removed while the image was created?)", l.ChainID)
			}
		}
		if err := putRecord(tx, id, rec); err != nil {
			return err
		}
		refs := tx.Bucket(metadata.BucketReferences)
		for _, n := range append(tags, repoDigests...) {
			if err := refs.Put([]byte(n.String()), []byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, errdefs.System("record image %s: %w", id, err)
	}
	for _, l := range layers {
		s.release(l.ChainID, l.hold)
	}
	return s.Get(ctx, id.String())
}
