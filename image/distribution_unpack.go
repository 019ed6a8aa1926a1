package image

import (
	"context"
	"io"
	"sync"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/snapshot"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Staged is a layer unpacked on its own, not yet on its parent: a pull
// unpacks the layers of an image in parallel this way and then puts each on
// the one below, in order, with CommitStaged. An overlay layer's directory
// does not depend on its parent's files (whiteouts are markers), so moving
// it under the parent afterwards gives the same snapshot as unpacking it
// there.
type Staged struct {
	key    string
	diffID digest.Digest
	blob   ocispec.Descriptor
	size   int64

	mu   sync.Mutex
	done bool // committed or discarded
}

// DiffID is the staged layer's verified diff ID.
func (st *Staged) DiffID() digest.Digest { return st.diffID }

// StageLayerBlob unpacks the layer blob desc (in the content store) into a
// snapshot of its own and verifies it against diffID. progress, if set, is
// called with the number of blob bytes read so far as the unpack goes. The
// caller commits it with CommitStaged or drops it with Discard.
func (s *Store) StageLayerBlob(ctx context.Context, desc ocispec.Descriptor, diffID digest.Digest, progress func(read int64)) (*Staged, error) {
	if err := diffID.Validate(); err != nil {
		return nil, errdefs.InvalidArgument("stage layer %s: diff ID: %w", desc.Digest, err)
	}
	s.pinBlob(desc.Digest)
	key := "extract-" + randomID()
	s.setExtracting(key, true)
	st := &Staged{key: key, diffID: diffID, blob: desc}
	ok := false
	defer func() {
		if !ok {
			s.dropStaged(context.WithoutCancel(ctx), st)
		}
	}()
	if _, err := s.sn.Prepare(ctx, key, ""); err != nil {
		return nil, err
	}
	f, err := s.cs.Open(ctx, desc.Digest)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var blob io.Reader = f
	if progress != nil {
		blob = &countingReader{r: f, fn: progress}
	}
	dr, comp, err := Decompress(blob)
	if err != nil {
		return nil, err
	}
	defer dr.Close()
	if st.blob.MediaType == "" {
		switch comp {
		case Gzip:
			st.blob.MediaType = ocispec.MediaTypeImageLayerGzip
		case Zstd:
			st.blob.MediaType = ocispec.MediaTypeImageLayerZstd
		default:
			st.blob.MediaType = ocispec.MediaTypeImageLayer
		}
	}
	st.blob.Annotations, st.blob.URLs, st.blob.Platform = nil, nil, nil
	kept := comp == Uncompressed
	if kept && diffID == desc.Digest {
		// The blob is the tar, verified when stored: index it from its
		// headers (see applyLayerBlob).
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, errdefs.System("read layer %s: %w", desc.Digest, err)
		}
		if st.size, err = s.sn.Unpack(ctx, key, f, snapshot.UnpackOptions{Kept: true}); err != nil {
			return nil, err
		}
		if progress != nil {
			progress(desc.Size)
		}
	} else {
		v := diffID.Verifier()
		tee := &teeReader{r: dr, w: v}
		if st.size, err = s.sn.Unpack(ctx, key, tee, snapshot.UnpackOptions{Kept: kept}); err != nil {
			return nil, err
		}
		// The tar's end-of-archive padding is part of the diff ID.
		if _, err := io.Copy(io.Discard, tee); err != nil {
			return nil, errdefs.InvalidArgument("read layer %s: %w", desc.Digest, err)
		}
		if !v.Verified() {
			return nil, errdefs.InvalidArgument("layer %s: content does not match diff ID %s from the image config", desc.Digest, diffID)
		}
	}
	if kept {
		if err := s.linkBlob(ctx, key, desc.Digest); err != nil {
			return nil, err
		}
	}
	ok = true
	return st, nil
}

// CommitStaged puts a staged layer on parent ("" for none) and records it,
// or returns the layer already unpacked with that chain. The staged
// snapshot is used up either way.
func (s *Store) CommitStaged(ctx context.Context, parent string, st *Staged) (Layer, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	chainID := ChainID(parent, st.diffID)
	if st.done {
		if l, ok := s.existingLayer(chainID); ok {
			return l, nil
		}
		return Layer{}, errdefs.System("staged layer %s: already used", st.diffID)
	}
	defer func() {
		if !st.done {
			s.dropStagedLocked(context.WithoutCancel(ctx), st)
		}
	}()
	if l, ok := s.existingLayer(chainID); ok {
		return l, nil
	}
	if parent != "" && !s.layerExists(parent) {
		return Layer{}, errdefs.NotFound("parent layer %s: not found", parent)
	}
	key := "extract-" + randomID()
	s.setExtracting(key, true)
	defer s.setExtracting(key, false)
	if _, err := s.sn.Prepare(ctx, key, parent); err != nil {
		return Layer{}, err
	}
	consumed := false
	defer func() {
		if !consumed {
			s.sn.Remove(context.WithoutCancel(ctx), key)
		}
	}()
	if err := s.sn.MoveContent(ctx, st.key, key); err != nil {
		return Layer{}, errdefs.System("move staged layer %s: %w", st.diffID, err)
	}
	l := Layer{ChainID: chainID, DiffID: st.diffID, Parent: parent, Blob: st.blob, Size: st.size}
	out, ok, err := s.commitExtracted(ctx, key, l)
	consumed = ok
	return out, err
}

// Discard drops a staged layer that will not be committed.
func (s *Store) Discard(ctx context.Context, st *Staged) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.done {
		s.dropStagedLocked(ctx, st)
	}
}

func (s *Store) dropStaged(ctx context.Context, st *Staged) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s.dropStagedLocked(ctx, st)
}

func (s *Store) dropStagedLocked(ctx context.Context, st *Staged) {
	st.done = true
	s.sn.Remove(ctx, st.key)
	s.setExtracting(st.key, false)
	s.unpinBlob(st.blob.Digest)
}

// teeReader feeds what it reads to w (a hash).
type teeReader struct {
	r io.Reader
	w io.Writer
}

func (t *teeReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.w.Write(p[:n])
	}
	return n, err
}

// countingReader reports the bytes read so far, every 1 MiB and at EOF.
type countingReader struct {
	r    io.Reader
	fn   func(int64)
	n    int64
	last int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n-c.last >= 1<<20 || (err == io.EOF && c.n != c.last) {
		c.last = c.n
		c.fn(c.n)
	}
	return n, err
}
