package image

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/snapshot"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// Compression is how a tar stream is compressed.
type Compression int

// Compressions Berth reads.
const (
	Uncompressed Compression = iota
	Gzip
	Zstd
	Bzip2
)

var magics = []struct {
	c     Compression
	magic []byte
}{
	{Gzip, []byte{0x1f, 0x8b, 0x08}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{Bzip2, []byte{0x42, 0x5a, 0x68}},
}

// Decompress sniffs r's compression and returns the uncompressed stream.
// xz is refused with an InvalidArgument error.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(6)
	if bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}) {
		return nil, Uncompressed, errdefs.InvalidArgument("xz-compressed archives are not supported; use gzip or zstd")
	}
	for _, m := range magics {
		if !bytes.HasPrefix(head, m.magic) {
			continue
		}
		switch m.c {
		case Gzip:
			zr, err := gzip.NewReader(br)
			if err != nil {
				return nil, Gzip, errdefs.InvalidArgument("read gzip stream: %w", err)
			}
			return zr, Gzip, nil
		case Zstd:
			zr, err := zstd.NewReader(br)
			if err != nil {
				return nil, Zstd, errdefs.InvalidArgument("read zstd stream: %w", err)
			}
			return zr.IOReadCloser(), Zstd, nil
		case Bzip2:
			return io.NopCloser(bzip2.NewReader(br)), Bzip2, nil
		}
	}
	return io.NopCloser(br), Uncompressed, nil
}

// ChainID is the chain ID of a layer with diff ID diffID on top of the chain
// parent ("" for a bottom layer), as the OCI image spec defines it.
func ChainID(parent string, diffID digest.Digest) string {
	if parent == "" {
		return diffID.String()
	}
	return digest.FromString(parent + " " + diffID.String()).String()
}

// ChainIDs returns the chain ID of every prefix of diffIDs.
func ChainIDs(diffIDs []digest.Digest) []string {
	out := make([]string, len(diffIDs))
	parent := ""
	for i, d := range diffIDs {
		parent = ChainID(parent, d)
		out[i] = parent
	}
	return out
}

// ApplyLayer unpacks a layer tar (uncompressed, gzip or zstd; sniffed) on
// top of the layer parent ("" for none) and returns it. The uncompressed tar
// is kept in the content store (its digest is the diff ID). If the same
// chain is already unpacked, the existing layer is returned and the new copy
// dropped, so a layer is stored once however many images use it.
func (s *Store) ApplyLayer(ctx context.Context, parent string, r io.Reader) (Layer, error) {
	if parent != "" {
		if !s.layerExists(parent) {
			return Layer{}, errdefs.NotFound("parent layer %s: not found", parent)
		}
	}
	dr, _, err := Decompress(r)
	if err != nil {
		return Layer{}, err
	}
	defer dr.Close()
	w, err := s.cs.Writer(ctx, "")
	if err != nil {
		return Layer{}, err
	}
	defer w.Close()
	var stored, pinned digest.Digest
	defer func() {
		if pinned != "" {
			s.unpinBlob(pinned)
		}
	}()
	// The blob is the uncompressed tar: the layer refers to it.
	l, err := s.unpack(ctx, parent, io.TeeReader(dr, w), true, func() (digest.Digest, ocispec.Descriptor, error) {
		// Pinned from before it is visible until its layer is recorded.
		pinned = w.Digest()
		s.pinBlob(pinned)
		d, err := w.Commit(ctx)
		stored = d
		return d, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: w.Size()}, err
	})
	if stored != "" && (err != nil || l.Blob.Digest != stored) {
		// The same layer was already there with another blob (say, a
		// pulled gzip one): ours may be unused. GC decides under its lock.
		s.orphan(stored)
	}
	return l, err
}

// ApplyLayerBlob unpacks a layer whose blob (uncompressed, gzip or zstd) is
// already in the content store, e.g. a pulled or loaded one, on top of the
// layer parent. The blob itself is the layer's blob; nothing else is stored.
// When diffID is set, the uncompressed stream must hash to it, and a layer
// already unpacked with that chain is reused without reading the blob.
func (s *Store) ApplyLayerBlob(ctx context.Context, parent string, desc ocispec.Descriptor, diffID digest.Digest) (Layer, error) {
	return s.applyLayerBlob(ctx, parent, desc, diffID)
}

func (s *Store) applyLayerBlob(ctx context.Context, parent string, desc ocispec.Descriptor, diffID digest.Digest) (Layer, error) {
	s.pinBlob(desc.Digest)
	defer s.unpinBlob(desc.Digest)
	if diffID != "" {
		if l, ok := s.existingLayer(ChainID(parent, diffID)); ok {
			return l, nil
		}
	}
	if parent != "" {
		if !s.layerExists(parent) {
			return Layer{}, errdefs.NotFound("parent layer %s: not found", parent)
		}
	}
	f, err := s.cs.Open(ctx, desc.Digest)
	if err != nil {
		return Layer{}, err
	}
	defer f.Close()
	dr, comp, err := Decompress(f)
	if err != nil {
		return Layer{}, err
	}
	defer dr.Close()
	if desc.MediaType == "" {
		switch comp {
		case Gzip:
			desc.MediaType = ocispec.MediaTypeImageLayerGzip
		case Zstd:
			desc.MediaType = ocispec.MediaTypeImageLayerZstd
		default:
			desc.MediaType = ocispec.MediaTypeImageLayer
		}
	}
	if desc.Size == 0 {
		if fi, err := f.Stat(); err == nil {
			desc.Size = fi.Size()
		}
	}
	desc.Annotations, desc.URLs, desc.Platform = nil, nil, nil
	if comp == Uncompressed && desc.Digest.Algorithm() == digest.Canonical && (diffID == "" || diffID == desc.Digest) {
		// The blob is the tar, verified against its digest when stored, so
		// its digest is the diff ID: the unpack reads the tar's headers
		// from the file and seeks over the file data it refers to.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return Layer{}, errdefs.System("read layer %s: %w", desc.Digest, err)
		}
		return s.unpack(ctx, parent, f, true, func() (digest.Digest, ocispec.Descriptor, error) {
			return desc.Digest, desc, nil
		})
	}
	digester := digest.Canonical.Digester()
	// An uncompressed blob is the layer's tar: the layer refers to it.
	return s.unpack(ctx, parent, io.TeeReader(dr, digester.Hash()), comp == Uncompressed, func() (digest.Digest, ocispec.Descriptor, error) {
		got := digester.Digest()
		if diffID != "" && got != diffID {
			return "", desc, errdefs.InvalidArgument("layer %s: content has diff ID %s, the image config says %s", desc.Digest, got, diffID)
		}
		return got, desc, nil
	})
}

// unpack applies the uncompressed tar r into a new snapshot on parent;
// finish (called once r is drained) names the diff ID and blob. kept says
// the blob holds r's bytes as they are, so the snapshot can refer to it.
//
// The unpack itself runs without the store lock, so a slow upload holds up
// nobody: the extract snapshot is marked as in progress (Check leaves it
// alone) and, being a child of parent, keeps the parent from removal. Only
// the final step (check, commit, record) takes the lock, shared.
func (s *Store) unpack(ctx context.Context, parent string, r io.Reader, kept bool, finish func() (digest.Digest, ocispec.Descriptor, error)) (Layer, error) {
	key := "extract-" + randomID()
	s.setExtracting(key, true)
	defer s.setExtracting(key, false)
	if _, err := s.sn.Prepare(ctx, key, parent); err != nil {
		return Layer{}, err
	}
	committed := false
	defer func() {
		if !committed {
			s.sn.Remove(context.WithoutCancel(ctx), key)
		}
	}()
	t0 := time.Now()
	size, err := s.sn.Unpack(ctx, key, r, snapshot.UnpackOptions{Kept: kept})
	if err != nil {
		return Layer{}, err
	}
	// The tar's end-of-archive padding is part of the diff ID.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return Layer{}, errdefs.InvalidArgument("read layer: %w", err)
	}
	t1 := time.Now()
	diffID, blob, err := finish()
	if err != nil {
		return Layer{}, err
	}
	if kept {
		if err := s.linkBlob(ctx, key, blob.Digest); err != nil {
			return Layer{}, err
		}
	}
	t2 := time.Now()
	l := Layer{ChainID: ChainID(parent, diffID), DiffID: diffID, Parent: parent, Blob: blob, Size: size}
	out, ok, err := s.commitExtracted(ctx, key, l)
	committed = ok
	slog.Debug("layer unpacked", "chain", l.ChainID, "size", size, "kept", kept,
		"unpack", t1.Sub(t0), "finish", t2.Sub(t1), "commit", time.Since(t2))
	return out, err
}

// linkBlob names the blob d as the file holding the tar of snapshot key.
func (s *Store) linkBlob(ctx context.Context, key string, d digest.Digest) error {
	p, err := s.cs.Path(d)
	if err != nil {
		return err
	}
	return s.sn.LinkData(ctx, key, p)
}

// commitExtracted commits the extract snapshot key as layer l and records
// it, or returns the layer already there; ok says key was consumed.
func (s *Store) commitExtracted(ctx context.Context, key string, l Layer) (_ Layer, ok bool, _ error) {
	// Two unpacks of the same layer may finish together: the check, the
	// snapshot commit and the record go as one step, and GC waits for it.
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if existing, ok := s.existingLayer(l.ChainID); ok {
		return existing, false, nil
	}
	if !s.cs.Exists(ctx, l.Blob.Digest) {
		// An rmi of an image that had the same blob removed it meanwhile.
		return Layer{}, false, errdefs.Unavailable("layer blob %s was removed while unpacking; try again", l.Blob.Digest)
	}
	if _, err := s.sn.Stat(ctx, l.ChainID); err == nil {
		// A committed snapshot without its record (a crash between the
		// two): replace it with this complete one.
		if err := s.sn.Remove(ctx, l.ChainID); err != nil {
			return Layer{}, false, err
		}
	}
	if err := s.sn.Commit(ctx, l.ChainID, key); err != nil {
		return Layer{}, false, err
	}
	l.hold = s.hold(l.ChainID)
	if err := s.db.Update(func(tx *bolt.Tx) error { return putLayer(tx, &l) }); err != nil {
		return Layer{}, true, errdefs.System("record layer %s: %w", l.ChainID, err)
	}
	return l, true, nil
}

// existingLayer returns a recorded layer whose snapshot exists, holding it
// against GC until an image uses it.
func (s *Store) existingLayer(chainID string) (Layer, bool) {
	var l *Layer
	s.db.View(func(tx *bolt.Tx) error {
		l, _ = getLayer(tx, chainID)
		return nil
	})
	if l == nil {
		return Layer{}, false
	}
	if _, err := s.sn.Stat(context.Background(), chainID); err != nil {
		return Layer{}, false
	}
	out := *l
	out.hold = s.hold(chainID)
	return out, true
}

// holdFor is how long an unpacked layer that no image uses yet is safe from
// removal by another image's GC (a pull in progress).
const holdFor = time.Hour

// hold pins chainID against GC until release(chainID, token).
func (s *Store) hold(chainID string) uint64 {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	s.holdSeq++
	if s.holds[chainID] == nil {
		s.holds[chainID] = map[uint64]time.Time{}
	}
	s.holds[chainID][s.holdSeq] = time.Now()
	return s.holdSeq
}

func (s *Store) held(chainID string) bool {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	for tok, t := range s.holds[chainID] {
		if time.Since(t) > holdFor {
			// A caller that never made its image (it failed, or was a
			// pull given up on) does not pin the layer forever.
			delete(s.holds[chainID], tok)
		}
	}
	if len(s.holds[chainID]) == 0 {
		delete(s.holds, chainID)
		return false
	}
	return true
}

func (s *Store) release(chainID string, token uint64) {
	if token == 0 {
		return
	}
	s.holdMu.Lock()
	delete(s.holds[chainID], token)
	if len(s.holds[chainID]) == 0 {
		delete(s.holds, chainID)
	}
	s.holdMu.Unlock()
}

// layerExists says whether a layer is recorded and its snapshot exists,
// without holding it.
func (s *Store) layerExists(chainID string) bool {
	var l *Layer
	s.db.View(func(tx *bolt.Tx) error {
		l, _ = getLayer(tx, chainID)
		return nil
	})
	if l == nil {
		return false
	}
	_, err := s.sn.Stat(context.Background(), chainID)
	return err == nil
}

// pinBlob keeps d from deletion until unpinBlob: set before a blob is
// committed into the store by an operation that will reference it.
func (s *Store) pinBlob(d digest.Digest) {
	s.holdMu.Lock()
	s.pins[d]++
	s.holdMu.Unlock()
}

func (s *Store) unpinBlob(d digest.Digest) {
	s.holdMu.Lock()
	if s.pins[d]--; s.pins[d] <= 0 {
		delete(s.pins, d)
	}
	s.holdMu.Unlock()
}

// PinBlob keeps the blob d from removal by rmi, prune or check until
// UnpinBlob; a puller pins a blob before it downloads it (so it is covered
// from the moment it is visible) until the image naming it is created.
func (s *Store) PinBlob(d digest.Digest) { s.pinBlob(d) }

// UnpinBlob undoes one PinBlob.
func (s *Store) UnpinBlob(d digest.Digest) { s.unpinBlob(d) }

func (s *Store) isPinned(d digest.Digest) bool {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	return s.pins[d] > 0
}

// deleteBlob deletes an unreferenced blob unless it is pinned; the check
// and the deletion are one step with respect to pinning.
func (s *Store) deleteBlob(ctx context.Context, d digest.Digest) error {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	if s.pins[d] > 0 {
		return nil
	}
	return s.cs.Delete(ctx, d)
}

// setExtracting marks an extract snapshot as in progress (or done).
func (s *Store) setExtracting(key string, on bool) {
	s.holdMu.Lock()
	if on {
		s.extracting[key] = true
	} else {
		delete(s.extracting, key)
	}
	s.holdMu.Unlock()
}

func (s *Store) isExtracting(key string) bool {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	return s.extracting[key]
}

// orphan notes a blob that may be unreferenced, for the next GC.
func (s *Store) orphan(d digest.Digest) {
	s.holdMu.Lock()
	s.orphans[d] = true
	s.holdMu.Unlock()
}

// takeOrphans returns and forgets the noted blobs.
func (s *Store) takeOrphans() []digest.Digest {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	var out []digest.Digest
	for d := range s.orphans {
		out = append(out, d)
	}
	s.orphans = map[digest.Digest]bool{}
	return out
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
