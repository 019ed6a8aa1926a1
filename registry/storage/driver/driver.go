package driver

import (
	"context"
	"io"
	"time"
)

// Paths are slash-separated, absolute ("/blobs/sha256/ab/abcd/data") and
// relative to the driver's root. A driver never sees ".." or empty elements:
// the storage package builds every path with one function.

// FileInfo describes one stored object or directory.
type FileInfo struct {
	Path    string
	Size    int64
	ModTime time.Time
	IsDir   bool
}

// FileWriter is an in-progress write of one object. Nothing it wrote is
// visible at its path until Commit returns; Cancel discards it.
type FileWriter interface {
	io.Writer
	// Size is the number of bytes in the object so far, including bytes
	// written by earlier writers when the writer was opened to append.
	Size() int64
	// Close releases the writer, keeping what was written for a later append.
	Close() error
	// Cancel discards everything written.
	Cancel(ctx context.Context) error
	// Commit makes the written bytes durable (flushed to stable storage).
	Commit(ctx context.Context) error
}

// Reader opens an object for reading. Drivers whose objects are local files
// return an *os.File so the HTTP layer can use sendfile.
type Reader interface {
	Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error)
}

// Driver is the whole storage interface.
type Driver interface {
	Reader
	// Name names the driver in logs ("filesystem").
	Name() string
	// GetContent reads a small object whole.
	GetContent(ctx context.Context, path string) ([]byte, error)
	// PutContent writes a small object atomically: readers see the old or the
	// new content, never a mix.
	PutContent(ctx context.Context, path string, content []byte) error
	// Writer opens path for writing; append continues an existing object.
	Writer(ctx context.Context, path string, append bool) (FileWriter, error)
	// Stat describes path; a missing path is an errdefs.ErrNotFound error.
	Stat(ctx context.Context, path string) (FileInfo, error)
	// List returns the full paths of the direct children of a directory.
	List(ctx context.Context, path string) ([]string, error)
	// Move renames src to dst atomically, replacing dst.
	Move(ctx context.Context, src, dst string) error
	// Delete removes path and everything below it; a missing path is
	// errdefs.ErrNotFound.
	Delete(ctx context.Context, path string) error
}
