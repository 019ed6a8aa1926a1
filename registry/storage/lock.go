package storage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/berth-dev/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Locker coordinates garbage collection with the moments content becomes
// reachable (an upload committed, a blob mounted, a manifest put).
//
// Those operations hold the lock shared and Note what they linked. A
// collection takes the lock exclusively only twice and briefly: to
// BeginCollection, and at the end to read the notes (EndCollection) and
// sweep. Its expensive mark phase runs unlocked; whatever was linked
// meanwhile is in the notes and is kept.
type Locker interface {
	RLock(ctx context.Context) (unlock func(), err error)
	Lock(ctx context.Context) (unlock func(), err error)
	// Collect serializes collections; a collector takes it before anything
	// else and holds it to the end.
	Collect(ctx context.Context) (release func(), err error)
	// Note records a new link; it does nothing unless a collection is
	// running. Called under the shared lock.
	Note(ctx context.Context, n Note) error
	// BeginCollection starts recording notes; called under the exclusive lock.
	BeginCollection(ctx context.Context) error
	// EndCollection stops recording and returns the notes; called under the
	// exclusive lock.
	EndCollection(ctx context.Context) ([]Note, error)
}

// Note kinds.
const (
	NoteBlob     = "blob"
	NoteManifest = "manifest"
)

// Note says a repository gained a link to a blob or manifest.
type Note struct {
	Kind   string
	Repo   string
	Digest digest.Digest
}

// memLocker coordinates collections inside one process.
type memLocker struct {
	mu        sync.RWMutex
	collect   sync.Mutex
	notesMu   sync.Mutex
	recording bool
	notes     []Note
}

var _ Locker = (*memLocker)(nil)

func (l *memLocker) RLock(ctx context.Context) (func(), error) {
	l.mu.RLock()
	return l.mu.RUnlock, nil
}

func (l *memLocker) Lock(ctx context.Context) (func(), error) {
	l.mu.Lock()
	return l.mu.Unlock, nil
}

func (l *memLocker) Collect(ctx context.Context) (func(), error) {
	l.collect.Lock()
	return l.collect.Unlock, nil
}

func (l *memLocker) Note(ctx context.Context, n Note) error {
	l.notesMu.Lock()
	defer l.notesMu.Unlock()
	if l.recording {
		l.notes = append(l.notes, n)
	}
	return nil
}

func (l *memLocker) BeginCollection(ctx context.Context) error {
	l.notesMu.Lock()
	defer l.notesMu.Unlock()
	l.recording, l.notes = true, nil
	return nil
}

func (l *memLocker) EndCollection(ctx context.Context) ([]Note, error) {
	l.notesMu.Lock()
	defer l.notesMu.Unlock()
	notes := l.notes
	l.recording, l.notes = false, nil
	return notes, nil
}

// FileLocker coordinates processes sharing one filesystem root with flock(2)
// on root/.gc.lock — `berth-registry gc` in one process and `serve` in
// another. While a collection runs, root/.gc.running exists and notes are
// appended to root/.gc.journal.
type FileLocker struct {
	lockPath, collectPath, runningPath, journalPath string
}

var _ Locker = (*FileLocker)(nil)

// NewFileLocker uses root/.gc.lock.
func NewFileLocker(root string) (*FileLocker, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, errdefs.System("lock: create %s: %v", root, err)
	}
	l := &FileLocker{
		lockPath:    filepath.Join(root, ".gc.lock"),
		collectPath: filepath.Join(root, ".gc.collector"),
		runningPath: filepath.Join(root, ".gc.running"),
		journalPath: filepath.Join(root, ".gc.journal"),
	}
	for _, p := range []string{l.lockPath, l.collectPath} {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, errdefs.System("lock: open %s: %v", p, err)
		}
		f.Close()
	}
	return l, nil
}

func flock(path string, how int) (func(), error) {
	// One open file description per holder: flock locks belong to it, so
	// goroutines of one process share a read lock without counting.
	f, err := os.Open(path)
	if err != nil {
		return nil, errdefs.System("lock: open %s: %v", path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, errdefs.System("lock: flock %s: %v", path, err)
	}
	return func() { f.Close() }, nil
}

// RLock implements Locker.
func (l *FileLocker) RLock(ctx context.Context) (func(), error) {
	return flock(l.lockPath, unix.LOCK_SH)
}

// Lock implements Locker.
func (l *FileLocker) Lock(ctx context.Context) (func(), error) {
	return flock(l.lockPath, unix.LOCK_EX)
}

// Collect implements Locker.
func (l *FileLocker) Collect(ctx context.Context) (func(), error) {
	return flock(l.collectPath, unix.LOCK_EX)
}

// Note implements Locker: one O_APPEND line, atomic for lines this short.
func (l *FileLocker) Note(ctx context.Context, n Note) error {
	if _, err := os.Stat(l.runningPath); err != nil {
		return nil // no collection running
	}
	f, err := os.OpenFile(l.journalPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return errdefs.System("gc journal: open %s: %v", l.journalPath, err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s %s %s\n", n.Kind, n.Repo, n.Digest); err != nil {
		return errdefs.System("gc journal: write %s: %v", l.journalPath, err)
	}
	return nil
}

// BeginCollection implements Locker.
func (l *FileLocker) BeginCollection(ctx context.Context) error {
	if err := os.WriteFile(l.journalPath, nil, 0o644); err != nil {
		return errdefs.System("gc journal: reset %s: %v", l.journalPath, err)
	}
	if err := os.WriteFile(l.runningPath, []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
		return errdefs.System("gc: mark running %s: %v", l.runningPath, err)
	}
	return nil
}

// EndCollection implements Locker.
func (l *FileLocker) EndCollection(ctx context.Context) ([]Note, error) {
	os.Remove(l.runningPath)
	f, err := os.Open(l.journalPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, errdefs.System("gc journal: read %s: %v", l.journalPath, err)
	}
	defer f.Close()
	var notes []Note
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue
		}
		d, err := digest.Parse(fields[2])
		if err != nil {
			continue
		}
		notes = append(notes, Note{Kind: fields[0], Repo: fields[1], Digest: d})
	}
	if err := sc.Err(); err != nil {
		return nil, errdefs.System("gc journal: read %s: %v", l.journalPath, err)
	}
	os.Truncate(l.journalPath, 0)
	return notes, nil
}
