package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/registry/storage/driver"
	"golang.org/x/sys/unix"
)

// Driver stores every object as a file below Root.
type Driver struct {
	root string
}

var _ driver.Driver = (*Driver)(nil)

// New returns a driver rooted at dir, creating it if needed.
func New(dir string) (*Driver, error) {
	if dir == "" {
		return nil, errdefs.InvalidArgument("filesystem driver: root directory is empty")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, errdefs.InvalidArgument("filesystem driver: root %q: %v", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, errdefs.System("filesystem driver: create root %q: %v", abs, err)
	}
	return &Driver{root: abs}, nil
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return "filesystem" }

// Root is the directory the driver stores under.
func (d *Driver) Root() string { return d.root }

func (d *Driver) full(p string) (string, error) {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return "", errdefs.InvalidArgument("filesystem driver: invalid path %q", p)
	}
	return filepath.Join(d.root, filepath.FromSlash(p)), nil
}

func classify(op, p string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s %s: %w", op, p, errdefs.ErrNotFound)
	}
	return fmt.Errorf("%s %s: %v: %w", op, p, err, errdefs.ErrSystem)
}

// GetContent implements driver.Driver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	fp, err := d.full(p)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(fp)
	if err != nil {
		return nil, classify("read", p, err)
	}
	return b, nil
}

// PutContent implements driver.Driver: temp file, fsync, rename.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	fp, err := d.full(p)
	if err != nil {
		return err
	}
	dir := filepath.Dir(fp)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return classify("mkdir", p, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return classify("create", p, err)
	}
	tmp := f.Name()
	if _, err := f.Write(content); err != nil {
		f.Close()
		os.Remove(tmp)
		return classify("write", p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return classify("sync", p, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return classify("close", p, err)
	}
	if err := os.Rename(tmp, fp); err != nil {
		os.Remove(tmp)
		return classify("rename", p, err)
	}
	return nil
}

// Reader implements driver.Driver. It returns the *os.File itself so that
// copying it to a TCP connection uses sendfile.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	fp, err := d.full(p)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(fp)
	if err != nil {
		return nil, classify("open", p, err)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, classify("seek", p, err)
		}
	}
	return f, nil
}

// Writer implements driver.Driver.
func (d *Driver) Writer(ctx context.Context, p string, appendTo bool) (driver.FileWriter, error) {
	fp, err := d.full(p)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
		return nil, classify("mkdir", p, err)
	}
	flags := os.O_WRONLY | os.O_CREATE
	if !appendTo {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(fp, flags, 0o644)
	if err != nil {
		return nil, classify("open", p, err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, classify("seek", p, err)
	}
	return &fileWriter{f: f, size: size, path: p}, nil
}

type fileWriter struct {
	f       *os.File
	path    string
	size    int64
	flushed int64 // bytes already handed to writeback
	closed  bool
}

// writebackChunk is how much a writer lets accumulate before asking the
// kernel to start writing it out, so Commit's fsync finds little left to do
// and disk writes overlap with the network.
const writebackChunk = 8 << 20

func (w *fileWriter) startWriteback() {
	if w.size-w.flushed < writebackChunk {
		return
	}
	unix.SyncFileRange(int(w.f.Fd()), w.flushed, w.size-w.flushed, unix.SYNC_FILE_RANGE_WRITE)
	w.flushed = w.size
}

func (w *fileWriter) Write(b []byte) (int, error) {
	if w.closed {
		return 0, errdefs.Conflict("write %s: writer already closed", w.path)
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	if err != nil {
		return n, classify("write", w.path, err)
	}
	w.startWriteback()
	return n, nil
}

// ReadFrom lets io.Copy from a socket into the file skip an extra buffer.
func (w *fileWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.closed {
		return 0, errdefs.Conflict("write %s: writer already closed", w.path)
	}
	n, err := io.Copy(onlyWriter{w}, r)
	return n, err
}

type onlyWriter struct{ io.Writer }

func (w *fileWriter) Size() int64 { return w.size }

func (w *fileWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if err := w.f.Close(); err != nil {
		return classify("close", w.path, err)
	}
	return nil
}

func (w *fileWriter) Cancel(ctx context.Context) error {
	name := w.f.Name()
	w.Close()
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return classify("remove", w.path, err)
	}
	return nil
}

func (w *fileWriter) Commit(ctx context.Context) error {
	if w.closed {
		return errdefs.Conflict("commit %s: writer already closed", w.path)
	}
	if err := w.f.Sync(); err != nil {
		return classify("sync", w.path, err)
	}
	return nil
}

// Stat implements driver.Driver.
func (d *Driver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	fp, err := d.full(p)
	if err != nil {
		return driver.FileInfo{}, err
	}
	fi, err := os.Stat(fp)
	if err != nil {
		return driver.FileInfo{}, classify("stat", p, err)
	}
	return driver.FileInfo{Path: p, Size: fi.Size(), ModTime: fi.ModTime(), IsDir: fi.IsDir()}, nil
}

// List implements driver.Driver.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	fp, err := d.full(p)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(fp)
	if err != nil {
		return nil, classify("list", p, err)
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		out = append(out, path.Join(p, e.Name()))
	}
	return out, nil
}

// Move implements driver.Driver.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	fs, err := d.full(src)
	if err != nil {
		return err
	}
	fd, err := d.full(dst)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(fd), 0o755); err != nil {
		return classify("mkdir", dst, err)
	}
	if err := os.Rename(fs, fd); err != nil {
		return classify("move", src, err)
	}
	// Make the rename itself durable.
	if dir, err := os.Open(filepath.Dir(fd)); err == nil {
		dir.Sync()
		dir.Close()
	}
	return nil
}

// Delete implements driver.Driver.
func (d *Driver) Delete(ctx context.Context, p string) error {
	fp, err := d.full(p)
	if err != nil {
		return err
	}
	if p == "/" {
		return errdefs.InvalidArgument("filesystem driver: refusing to delete the root")
	}
	if _, err := os.Lstat(fp); err != nil {
		return classify("delete", p, err)
	}
	if err := os.RemoveAll(fp); err != nil {
		return classify("delete", p, err)
	}
	return nil
}
