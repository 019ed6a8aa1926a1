package storage

import (
	"context"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/errdefs"
	"golang.org/x/sys/unix"
)

// FileLocker coordinates processes sharing one filesystem root with flock(2)
// on a lock file: `berth-registry gc` in one process and `serve` in another.
type FileLocker struct {
	path string
}

var _ Locker = (*FileLocker)(nil)

// NewFileLocker uses root/.gc.lock.
func NewFileLocker(root string) (*FileLocker, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, errdefs.System("lock: create %s: %v", root, err)
	}
	p := filepath.Join(root, ".gc.lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, errdefs.System("lock: open %s: %v", p, err)
	}
	f.Close()
	return &FileLocker{path: p}, nil
}

func (l *FileLocker) lock(how int) (func(), error) {
	// One open file description per holder: flock locks belong to it, so
	// goroutines of one process share a read lock without counting.
	f, err := os.Open(l.path)
	if err != nil {
		return nil, errdefs.System("lock: open %s: %v", l.path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, errdefs.System("lock: flock %s: %v", l.path, err)
	}
	return func() { f.Close() }, nil
}

// RLock implements Locker.
func (l *FileLocker) RLock(ctx context.Context) (func(), error) { return l.lock(unix.LOCK_SH) }

// Lock implements Locker.
func (l *FileLocker) Lock(ctx context.Context) (func(), error) { return l.lock(unix.LOCK_EX) }
