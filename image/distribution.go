package image

import (
	"context"
	"encoding/json"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/metadata"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// What pull and push remember, in metadata.db:
//
//	distribution-compressed/
//	  <diff ID>  -> descriptor (JSON) of the layer's compressed blob, made once for push
//	distribution-sources/
//	  <blob digest> -> ["registry/repo", ...] where the blob is known to live (for cross-repo mounts)
var (
	bucketCompressed = []byte("distribution-compressed")
	bucketSources    = []byte("distribution-sources")
)

// maxSources bounds the repositories remembered per blob.
const maxSources = 8

// Layer returns the unpacked layer with this chain ID, if its snapshot
// exists, and holds it against GC until an image uses it (as a pull does).
func (s *Store) Layer(ctx context.Context, chainID string) (Layer, bool) {
	return s.existingLayer(chainID)
}

// CompressedBlob returns the compressed blob remembered for a diff ID, if
// that blob is still in the content store.
func (s *Store) CompressedBlob(ctx context.Context, diffID digest.Digest) (ocispec.Descriptor, bool) {
	var desc ocispec.Descriptor
	found := false
	s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketCompressed); b != nil {
			if v := b.Get([]byte(diffID)); v != nil && json.Unmarshal(v, &desc) == nil {
				found = true
			}
		}
		return nil
	})
	if !found || !s.cs.Exists(ctx, desc.Digest) {
		return ocispec.Descriptor{}, false
	}
	return desc, true
}

// SetCompressedBlob remembers desc as the compressed blob of diffID.
func (s *Store) SetCompressedBlob(ctx context.Context, diffID digest.Digest, desc ocispec.Descriptor) error {
	v, err := json.Marshal(desc)
	if err != nil {
		return errdefs.System("encode descriptor of %s: %w", desc.Digest, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCompressed)
		if err != nil {
			return err
		}
		return b.Put([]byte(diffID), v)
	})
	if err != nil {
		return errdefs.System("remember compressed blob of %s: %w", diffID, err)
	}
	return nil
}

// AddBlobSource remembers that the blob dgst lives in repo ("host/path").
func (s *Store) AddBlobSource(ctx context.Context, dgst digest.Digest, repo string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketSources)
		if err != nil {
			return err
		}
		var list []string
		if v := b.Get([]byte(dgst)); v != nil {
			json.Unmarshal(v, &list)
		}
		out := []string{repo}
		for _, r := range list {
			if r != repo && len(out) < maxSources {
				out = append(out, r)
			}
		}
		v, err := json.Marshal(out)
		if err != nil {
			return err
		}
		return b.Put([]byte(dgst), v)
	})
	if err != nil {
		return errdefs.System("remember source of blob %s: %w", dgst, err)
	}
	return nil
}

// BlobSources lists the repositories ("host/path") the blob dgst is known
// to live in, most recent first.
func (s *Store) BlobSources(ctx context.Context, dgst digest.Digest) []string {
	var list []string
	s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketSources); b != nil {
			if v := b.Get([]byte(dgst)); v != nil {
				json.Unmarshal(v, &list)
			}
		}
		return nil
	})
	return list
}

// AddReference points the name ref (a tag or a repo digest, e.g.
// "registry:5000/app@sha256:...") at the existing image id.
func (s *Store) AddReference(ctx context.Context, ref string, id digest.Digest) error {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return errdefs.InvalidArgument("invalid reference %s: %w", ref, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	err = s.db.Update(func(tx *bolt.Tx) error {
		if r, err := getRecord(tx, id); err != nil {
			return err
		} else if r == nil {
			return errdefs.NotFound("No such image: %s", id)
		}
		return tx.Bucket(metadata.BucketReferences).Put([]byte(n.String()), []byte(id))
	})
	if err != nil && !errdefs.IsNotFound(err) {
		return errdefs.System("add reference %s: %w", ref, err)
	}
	return err
}
