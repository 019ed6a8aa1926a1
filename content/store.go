package content

// On disk, under the store's root (<data-root>/content):
//
//	content/
//	├── blobs/
//	│   ├── sha256/<hex>   immutable blobs; the name is the digest of the bytes
//	│   └── sha512/<hex>
//	└── ingest/<random>    blobs being written; never read, removed at open
//
// A blob is written to ingest/, hashed while written, fsynced and renamed into
// blobs/ only when its digest is known (and matches the expected one), so a
// half-written blob is never visible under a digest name. Which blobs are in
// use is decided by the image store, which deletes what no image references.

import (
	"context"
	_ "crypto/sha256" // register the digest algorithms go-digest verifies
	_ "crypto/sha512"
	"errors"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Store is a content-addressed blob store on a local filesystem.
type Store struct {
	root string
}

// NewStore opens (creating if needed) the blob store at root and removes
// ingests that a crash left behind.
func NewStore(root string) (*Store, error) {
	for _, d := range []string{
		filepath.Join(root, "blobs", string(digest.SHA256)),
		filepath.Join(root, "blobs", string(digest.SHA512)),
	} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, errdefs.System("create content store %s: %w", root, err)
		}
	}
	ingest := filepath.Join(root, "ingest")
	if err := os.RemoveAll(ingest); err != nil {
		return nil, errdefs.System("clean content ingests in %s: %w", root, err)
	}
	if err := os.MkdirAll(ingest, 0o700); err != nil {
		return nil, errdefs.System("create content ingest dir in %s: %w", root, err)
	}
	return &Store{root: root}, nil
}

// Root is the directory the store lives in.
func (s *Store) Root() string { return s.root }

func validate(dgst digest.Digest) error {
	if err := dgst.Validate(); err != nil {
		return errdefs.InvalidArgument("invalid digest %q: %w", dgst, err)
	}
	if dgst.Algorithm() != digest.SHA256 && dgst.Algorithm() != digest.SHA512 {
		return errdefs.InvalidArgument("unsupported digest algorithm %q in %s", dgst.Algorithm(), dgst)
	}
	return nil
}

// Path is where the blob dgst lives (whether or not it exists).
func (s *Store) Path(dgst digest.Digest) (string, error) {
	if err := validate(dgst); err != nil {
		return "", err
	}
	return filepath.Join(s.root, "blobs", string(dgst.Algorithm()), dgst.Encoded()), nil
}

// Info returns the size of a blob, or a NotFound error.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (int64, error) {
	p, err := s.Path(dgst)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, errdefs.NotFound("content %s: blob not found", dgst)
		}
		return 0, errdefs.System("stat content %s: %w", dgst, err)
	}
	return fi.Size(), nil
}

// Exists reports whether the blob is present.
func (s *Store) Exists(ctx context.Context, dgst digest.Digest) bool {
	_, err := s.Info(ctx, dgst)
	return err == nil
}

// Open opens a blob for reading, or returns a NotFound error.
func (s *Store) Open(ctx context.Context, dgst digest.Digest) (*os.File, error) {
	p, err := s.Path(dgst)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errdefs.NotFound("content %s: blob not found", dgst)
		}
		return nil, errdefs.System("open content %s: %w", dgst, err)
	}
	return f, nil
}

// ReadBlob reads a whole (small) blob such as a manifest or config.
func (s *Store) ReadBlob(ctx context.Context, dgst digest.Digest) ([]byte, error) {
	f, err := s.Open(ctx, dgst)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, errdefs.System("read content %s: %w", dgst, err)
	}
	return b, nil
}

// WriteBlob stores b and returns its sha256 digest.
func (s *Store) WriteBlob(ctx context.Context, b []byte) (digest.Digest, error) {
	w, err := s.Writer(ctx, "")
	if err != nil {
		return "", err
	}
	defer w.Close()
	if _, err := w.Write(b); err != nil {
		return "", err
	}
	return w.Commit(ctx)
}

// Write copies r into the store. When expected is not empty the bytes must
// hash to it (with its algorithm) or nothing is stored. It returns the digest
// and size of what was stored.
func (s *Store) Write(ctx context.Context, r io.Reader, expected digest.Digest) (digest.Digest, int64, error) {
	w, err := s.Writer(ctx, expected)
	if err != nil {
		return "", 0, err
	}
	defer w.Close()
	n, err := io.Copy(w, contextReader{ctx, r})
	if err != nil {
		return "", n, errdefs.System("write content: %w", err)
	}
	d, err := w.Commit(ctx)
	return d, n, err
}

// Writer starts an ingest. Write to it, then Commit; Close without Commit
// discards it. When expected is not empty Commit verifies the digest.
func (s *Store) Writer(ctx context.Context, expected digest.Digest) (*Writer, error) {
	alg := digest.SHA256
	if expected != "" {
		if err := validate(expected); err != nil {
			return nil, err
		}
		alg = expected.Algorithm()
	}
	f, err := os.CreateTemp(filepath.Join(s.root, "ingest"), "blob-")
	if err != nil {
		return nil, errdefs.System("start content ingest: %w", err)
	}
	return &Writer{s: s, f: f, h: alg.Hash(), alg: alg, expected: expected}, nil
}

// Writer is an ingest in progress.
type Writer struct {
	s        *Store
	f        *os.File
	h        hash.Hash
	alg      digest.Algorithm
	expected digest.Digest
	n        int64
	flushed  int64 // writeback started up to here
	done     bool
}

// writebackEvery starts writeback of a blob while it is written, so that
// Commit's fsync finds little left to do.
const writebackEvery = 8 << 20

// Write appends p to the blob and the running hash.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		return n, errdefs.System("write content ingest: %w", err)
	}
	if w.n-w.flushed >= writebackEvery {
		unix.SyncFileRange(int(w.f.Fd()), w.flushed, w.n-w.flushed, unix.SYNC_FILE_RANGE_WRITE)
		w.flushed = w.n
	}
	return n, nil
}

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// Digest is the digest of the bytes written so far.
func (w *Writer) Digest() digest.Digest { return digest.NewDigest(w.alg, w.h) }

// Commit verifies the blob, fsyncs it and makes it visible under its digest.
// Committing a blob that already exists is not an error.
func (w *Writer) Commit(ctx context.Context) (digest.Digest, error) {
	if w.done {
		return "", errdefs.System("content ingest already closed")
	}
	dgst := w.Digest()
	if w.expected != "" && dgst != w.expected {
		w.Close()
		return "", errdefs.InvalidArgument("content digest mismatch: expected %s, got %s", w.expected, dgst)
	}
	if err := w.f.Sync(); err != nil {
		w.Close()
		return "", errdefs.System("sync content %s: %w", dgst, err)
	}
	if err := w.f.Chmod(0o444); err != nil {
		w.Close()
		return "", errdefs.System("chmod content %s: %w", dgst, err)
	}
	target, _ := w.s.Path(dgst)
	tmp := w.f.Name()
	w.f.Close()
	w.done = true
	if _, err := os.Stat(target); err == nil {
		os.Remove(tmp)
		return dgst, nil
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		return "", errdefs.System("commit content %s: %w", dgst, err)
	}
	if err := fsutil.SyncDir(filepath.Dir(target)); err != nil {
		return "", errdefs.System("sync content dir for %s: %w", dgst, err)
	}
	return dgst, nil
}

// Close discards an uncommitted ingest; after Commit it does nothing.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	return os.Remove(w.f.Name())
}

// Delete removes a blob. Deleting a missing blob is a NotFound error.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	p, err := s.Path(dgst)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errdefs.NotFound("content %s: blob not found", dgst)
		}
		return errdefs.System("delete content %s: %w", dgst, err)
	}
	return nil
}

// Walk calls fn for every blob in the store. Files whose names are not
// valid digests are reported with an empty digest and their path, so that a
// check can find them.
func (s *Store) Walk(ctx context.Context, fn func(dgst digest.Digest, size int64, path string) error) error {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		dir := filepath.Join(s.root, "blobs", string(alg))
		entries, err := os.ReadDir(dir)
		if err != nil {
			return errdefs.System("list content %s: %w", dir, err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			p := filepath.Join(dir, e.Name())
			dgst := digest.NewDigestFromEncoded(alg, e.Name())
			if dgst.Validate() != nil {
				dgst = ""
			}
			var size int64
			if fi, err := e.Info(); err == nil {
				size = fi.Size()
			}
			if err := fn(dgst, size, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// Verify re-hashes a blob and reports a mismatch as an error of class
// ErrSystem naming the blob.
func (s *Store) Verify(ctx context.Context, dgst digest.Digest) error {
	f, err := s.Open(ctx, dgst)
	if err != nil {
		return err
	}
	defer f.Close()
	v := dgst.Verifier()
	if _, err := io.Copy(v, contextReader{ctx, f}); err != nil {
		return errdefs.System("read content %s: %w", dgst, err)
	}
	if !v.Verified() {
		return errdefs.System("content %s: blob is corrupt (digest mismatch)", dgst)
	}
	return nil
}

// Usage is the total size of all blobs.
func (s *Store) Usage(ctx context.Context) (int64, error) {
	var total int64
	err := s.Walk(ctx, func(_ digest.Digest, size int64, _ string) error {
		total += size
		return nil
	})
	return total, err
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

var _ io.WriteCloser = (*Writer)(nil)
