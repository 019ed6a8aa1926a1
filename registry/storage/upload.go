package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"sync"

	digest "github.com/opencontainers/go-digest"
)

// uploadState follows one upload between requests: a running sha256 over the
// bytes so far (nil when unknown, e.g. after a restart or a broken write,
// and then commit rehashes the file).
type uploadState struct {
	mu  sync.Mutex
	dig digest.Digester
}

var uploadIDRe = regexp.MustCompile(`^[a-f0-9]{32}$`)

func uploadKey(repo, id string) string { return repo + "\x00" + id }

func (s *Store) state(repo, id string) *uploadState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.uploads[uploadKey(repo, id)]
	if !ok {
		st = &uploadState{}
		s.uploads[uploadKey(repo, id)] = st
	}
	return st
}

func (s *Store) dropState(repo, id string) {
	s.mu.Lock()
	delete(s.uploads, uploadKey(repo, id))
	s.mu.Unlock()
}

// StartUpload opens a new upload session in repo and returns its id.
func (s *Store) StartUpload(ctx context.Context, repo string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("upload id for %s: %w", repo, err)
	}
	id := hex.EncodeToString(b[:])
	w, err := s.d.Writer(ctx, uploadDataPath(repo, id), false)
	if err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	st := s.state(repo, id)
	st.dig = digest.SHA256.Digester()
	return id, nil
}

// UploadSize returns how many bytes an upload holds.
func (s *Store) UploadSize(ctx context.Context, repo, id string) (int64, error) {
	if !uploadIDRe.MatchString(id) {
		return 0, fmt.Errorf("upload %q in %s: %w", id, repo, ErrBlobUploadUnknown)
	}
	fi, err := s.d.Stat(ctx, uploadDataPath(repo, id))
	if err != nil {
		if notFound(err) {
			return 0, fmt.Errorf("upload %s in %s: %w", id, repo, ErrBlobUploadUnknown)
		}
		return 0, err
	}
	return fi.Size, nil
}

// copyBuf sizes the copy from a client into an upload; large buffers mean
// fewer syscalls for the multi-megabyte layers registries mostly carry.
const copyBuf = 1 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBuf); return &b }}

// appendLocked appends r to the upload; start, when >= 0, must equal the
// current size (chunks arrive in order). The caller holds st.mu.
func (s *Store) appendLocked(ctx context.Context, repo, id string, st *uploadState, start int64, r io.Reader) (int64, error) {
	size, err := s.UploadSize(ctx, repo, id)
	if err != nil {
		return 0, err
	}
	if start >= 0 && start != size {
		return size, fmt.Errorf("upload %s in %s: chunk starts at %d, upload holds %d bytes: %w", id, repo, start, size, ErrRangeInvalid)
	}
	if r == nil {
		return size, nil
	}
	w, err := s.d.Writer(ctx, uploadDataPath(repo, id), true)
	if err != nil {
		return size, err
	}
	var dst io.Writer = w
	if st.dig != nil {
		dst = io.MultiWriter(w, st.dig.Hash())
	}
	bp := bufPool.Get().(*[]byte)
	_, cerr := io.CopyBuffer(dst, struct{ io.Reader }{r}, *bp)
	bufPool.Put(bp)
	size = w.Size()
	if err := w.Close(); err != nil && cerr == nil {
		cerr = err
	}
	if cerr != nil {
		// The hash may no longer match the file: rehash at commit.
		st.dig = nil
		return size, fmt.Errorf("upload %s in %s: write: %v: %w", id, repo, cerr, ErrBlobUploadInvalid)
	}
	return size, nil
}

// AppendUpload appends a chunk to an upload and returns the new size.
func (s *Store) AppendUpload(ctx context.Context, repo, id string, start int64, r io.Reader) (int64, error) {
	if _, err := s.UploadSize(ctx, repo, id); err != nil {
		return 0, err
	}
	st := s.state(repo, id)
	st.mu.Lock()
	defer st.mu.Unlock()
	return s.appendLocked(ctx, repo, id, st, start, r)
}

// CommitUpload appends an optional last chunk, verifies the content against
// want, and makes it a blob of repo. A digest mismatch discards the upload.
func (s *Store) CommitUpload(ctx context.Context, repo, id string, want digest.Digest, start int64, r io.Reader) (BlobInfo, error) {
	if _, err := s.UploadSize(ctx, repo, id); err != nil {
		return BlobInfo{}, err
	}
	st := s.state(repo, id)
	st.mu.Lock()
	defer st.mu.Unlock()
	size, err := s.appendLocked(ctx, repo, id, st, start, r)
	if err != nil {
		return BlobInfo{}, err
	}
	if err := want.Validate(); err != nil {
		return BlobInfo{}, fmt.Errorf("digest %q: %v: %w", want, err, ErrDigestInvalid)
	}
	data := uploadDataPath(repo, id)
	// Flush the bytes before they can become visible under their digest.
	w, err := s.d.Writer(ctx, data, true)
	if err != nil {
		return BlobInfo{}, err
	}
	if err := w.Commit(ctx); err != nil {
		w.Close()
		return BlobInfo{}, err
	}
	w.Close()
	var got digest.Digest
	if st.dig != nil && want.Algorithm() == digest.SHA256 {
		got = st.dig.Digest()
	} else {
		rc, err := s.d.Reader(ctx, data, 0)
		if err != nil {
			return BlobInfo{}, err
		}
		got, err = want.Algorithm().FromReader(rc)
		rc.Close()
		if err != nil {
			return BlobInfo{}, fmt.Errorf("hash upload %s in %s: %w", id, repo, err)
		}
	}
	if got != want {
		s.CancelUpload(ctx, repo, id)
		return BlobInfo{}, fmt.Errorf("upload %s in %s: content is %s, client claimed %s: %w", id, repo, got, want, ErrDigestInvalid)
	}
	unlock, err := s.locker.RLock(ctx)
	if err != nil {
		return BlobInfo{}, err
	}
	if _, err := s.d.Stat(ctx, blobDataPath(want)); err != nil {
		if !notFound(err) {
			unlock()
			return BlobInfo{}, err
		}
		if err := s.d.Move(ctx, data, blobDataPath(want)); err != nil {
			unlock()
			return BlobInfo{}, err
		}
	}
	err = s.linkBlob(ctx, repo, want)
	unlock()
	if err != nil {
		return BlobInfo{}, err
	}
	s.d.Delete(ctx, uploadDir(repo, id))
	s.dropState(repo, id)
	return BlobInfo{Digest: want, Size: size}, nil
}

// CancelUpload discards an upload.
func (s *Store) CancelUpload(ctx context.Context, repo, id string) error {
	if !uploadIDRe.MatchString(id) {
		return fmt.Errorf("upload %q in %s: %w", id, repo, ErrBlobUploadUnknown)
	}
	defer s.dropState(repo, id)
	if err := s.d.Delete(ctx, uploadDir(repo, id)); err != nil {
		if notFound(err) {
			return fmt.Errorf("upload %s in %s: %w", id, repo, ErrBlobUploadUnknown)
		}
		return err
	}
	return nil
}

// PutBlob stores a whole blob in one call (a monolithic upload).
func (s *Store) PutBlob(ctx context.Context, repo string, want digest.Digest, r io.Reader) (BlobInfo, error) {
	if err := want.Validate(); err != nil {
		return BlobInfo{}, fmt.Errorf("digest %q: %v: %w", want, err, ErrDigestInvalid)
	}
	id, err := s.StartUpload(ctx, repo)
	if err != nil {
		return BlobInfo{}, err
	}
	info, err := s.CommitUpload(ctx, repo, id, want, 0, r)
	if err != nil {
		s.CancelUpload(ctx, repo, id)
	}
	return info, err
}
