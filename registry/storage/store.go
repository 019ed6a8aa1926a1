package storage

import (
	"context"
	_ "crypto/sha256" // registers the digest algorithms go-digest verifies
	_ "crypto/sha512"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/registry/storage/driver"
	"github.com/berth-dev/berth/registry/storage/driver/filesystem"
	digest "github.com/opencontainers/go-digest"
)

// Store applies the repository rules over a driver.
type Store struct {
	d      driver.Driver
	locker Locker

	mu      sync.Mutex
	uploads map[string]*uploadState // key: repo + "\x00" + id
}

// Option configures a Store.
type Option func(*Store)

// WithLocker sets the lock shared with garbage collection; the default is an
// in-process lock, enough when collection runs inside the serving process.
func WithLocker(l Locker) Option { return func(s *Store) { s.locker = l } }

// New returns a Store over d.
func New(d driver.Driver, opts ...Option) (*Store, error) {
	if d == nil {
		return nil, errdefs.InvalidArgument("storage: nil driver")
	}
	s := &Store{d: d, uploads: map[string]*uploadState{}}
	for _, o := range opts {
		o(s)
	}
	if s.locker == nil {
		s.locker = &memLocker{}
	}
	return s, nil
}

// Driver returns the underlying driver.
func (s *Store) Driver() driver.Driver { return s.d }

// readLink reads a link file and parses the digest it holds.
func (s *Store) readLink(ctx context.Context, p string) (digest.Digest, error) {
	b, err := s.d.GetContent(ctx, p)
	if err != nil {
		return "", err
	}
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("corrupt link %s: %v: %w", p, err, errdefs.ErrSystem)
	}
	return d, nil
}

func (s *Store) writeLink(ctx context.Context, p string, d digest.Digest) error {
	return s.d.PutContent(ctx, p, []byte(d.String()))
}

func notFound(err error) bool { return errdefs.IsNotFound(err) }

// BlobInfo is what the store knows of a blob in a repository.
type BlobInfo struct {
	Digest digest.Digest
	Size   int64
}

// StatBlob reports a blob linked into repo.
func (s *Store) StatBlob(ctx context.Context, repo string, d digest.Digest) (BlobInfo, error) {
	if _, err := s.d.Stat(ctx, layerLinkPath(repo, d)); err != nil {
		if notFound(err) {
			// A manifest is also a blob of its repository.
			if _, err2 := s.d.Stat(ctx, revisionLinkPath(repo, d)); err2 != nil {
				return BlobInfo{}, fmt.Errorf("blob %s in %s: %w", d, repo, ErrBlobUnknown)
			}
		} else {
			return BlobInfo{}, err
		}
	}
	fi, err := s.d.Stat(ctx, blobDataPath(d))
	if err != nil {
		if notFound(err) {
			return BlobInfo{}, fmt.Errorf("blob %s in %s: %w", d, repo, ErrBlobUnknown)
		}
		return BlobInfo{}, err
	}
	return BlobInfo{Digest: d, Size: fi.Size}, nil
}

// OpenBlob opens a blob linked into repo at offset.
func (s *Store) OpenBlob(ctx context.Context, repo string, d digest.Digest, offset int64) (io.ReadCloser, BlobInfo, error) {
	info, err := s.StatBlob(ctx, repo, d)
	if err != nil {
		return nil, info, err
	}
	rc, err := s.d.Reader(ctx, blobDataPath(d), offset)
	if err != nil {
		if notFound(err) {
			return nil, info, fmt.Errorf("blob %s in %s: %w", d, repo, ErrBlobUnknown)
		}
		return nil, info, err
	}
	return rc, info, nil
}

// DeleteBlob unlinks a blob from repo; the bytes stay until garbage
// collection finds no repository using them.
func (s *Store) DeleteBlob(ctx context.Context, repo string, d digest.Digest) error {
	if err := s.d.Delete(ctx, path.Dir(layerLinkPath(repo, d))); err != nil {
		if notFound(err) {
			return fmt.Errorf("blob %s in %s: %w", d, repo, ErrBlobUnknown)
		}
		return err
	}
	return nil
}

// MountBlob links a blob that from already has into repo. An empty from
// mounts any blob the registry holds; allowed, when set, decides whether the
// caller may read the repositories that hold it.
func (s *Store) MountBlob(ctx context.Context, repo, from string, d digest.Digest, allowed func(repo string) bool) (BlobInfo, error) {
	var info BlobInfo
	var err error
	if from != "" {
		info, err = s.StatBlob(ctx, from, d)
		if err != nil {
			return info, err
		}
	} else {
		fi, err := s.d.Stat(ctx, blobDataPath(d))
		if err != nil {
			if notFound(err) {
				return info, fmt.Errorf("blob %s: %w", d, ErrBlobUnknown)
			}
			return info, err
		}
		info = BlobInfo{Digest: d, Size: fi.Size}
		if allowed != nil {
			ok := false
			repos, err := s.Repositories(ctx)
			if err != nil {
				return info, err
			}
			for _, r := range repos {
				if !allowed(r) {
					continue
				}
				if _, err := s.StatBlob(ctx, r, d); err == nil {
					ok = true
					break
				}
			}
			if !ok {
				return info, fmt.Errorf("blob %s: %w", d, ErrBlobUnknown)
			}
		}
	}
	unlock, err := s.locker.RLock(ctx)
	if err != nil {
		return info, err
	}
	defer unlock()
	// Re-check under the lock: a collection may have removed it meanwhile.
	if _, err := s.d.Stat(ctx, blobDataPath(d)); err != nil {
		if notFound(err) {
			return info, fmt.Errorf("blob %s: %w", d, ErrBlobUnknown)
		}
		return info, err
	}
	if err := s.linkBlob(ctx, repo, d); err != nil {
		return info, err
	}
	return info, nil
}

// Repositories lists every repository holding manifests or blobs, sorted.
func (s *Store) Repositories(ctx context.Context) ([]string, error) {
	var out []string
	var walk func(p string) error
	walk = func(p string) error {
		children, err := s.d.List(ctx, p)
		if err != nil {
			if notFound(err) {
				return nil
			}
			return err
		}
		isRepo := false
		for _, c := range children {
			base := path.Base(c)
			if base == "_manifests" || base == "_layers" {
				isRepo = true
				continue
			}
			if strings.HasPrefix(base, "_") {
				continue
			}
			if err := walk(c); err != nil {
				return err
			}
		}
		if isRepo {
			out = append(out, strings.TrimPrefix(p, repositoriesRoot+"/"))
		}
		return nil
	}
	if err := walk(repositoriesRoot); err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

// RepositoryExists reports whether repo holds anything.
func (s *Store) RepositoryExists(ctx context.Context, repo string) bool {
	for _, p := range []string{revisionsRoot(repo), layersRoot(repo), tagsRoot(repo)} {
		if _, err := s.d.Stat(ctx, p); err == nil {
			return true
		}
	}
	return false
}

// Visibility is whether anonymous users may pull a repository.
type Visibility string

const (
	Public  Visibility = "public"
	Private Visibility = "private"
)

// ParseVisibility parses "public" or "private".
func ParseVisibility(s string) (Visibility, error) {
	switch Visibility(s) {
	case Public, Private:
		return Visibility(s), nil
	}
	return "", errdefs.InvalidArgument("visibility %q: must be public or private", s)
}

// GetVisibility returns repo's visibility; repositories are private unless made public.
func (s *Store) GetVisibility(ctx context.Context, repo string) (Visibility, error) {
	b, err := s.d.GetContent(ctx, visibilityPath(repo))
	if err != nil {
		if notFound(err) {
			return Private, nil
		}
		return Private, err
	}
	if Visibility(strings.TrimSpace(string(b))) == Public {
		return Public, nil
	}
	return Private, nil
}

// SetVisibility records repo's visibility.
func (s *Store) SetVisibility(ctx context.Context, repo string, v Visibility) error {
	if err := ValidateName(repo); err != nil {
		return err
	}
	if _, err := ParseVisibility(string(v)); err != nil {
		return err
	}
	return s.d.PutContent(ctx, visibilityPath(repo), []byte(v))
}

// linkBlob records d as a blob of repo and tells a running collection; the
// caller holds the shared lock.
func (s *Store) linkBlob(ctx context.Context, repo string, d digest.Digest) error {
	if err := s.writeLink(ctx, layerLinkPath(repo, d), d); err != nil {
		return err
	}
	return s.locker.Note(ctx, Note{Kind: NoteBlob, Repo: repo, Digest: d})
}

// OpenFilesystem opens a Store on a local directory, with a lock file that
// lets a separate `berth-registry gc` process work while this one serves.
func OpenFilesystem(root string) (*Store, error) {
	d, err := filesystem.New(root)
	if err != nil {
		return nil, err
	}
	lk, err := NewFileLocker(d.Root())
	if err != nil {
		return nil, err
	}
	return New(d, WithLocker(lk))
}
