package inmemory

import (
	"bytes"
	"context"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/registry/storage/driver"
)

type object struct {
	data []byte
	mod  time.Time
}

// Driver keeps objects in memory.
type Driver struct {
	mu   sync.RWMutex
	objs map[string]*object
}

var _ driver.Driver = (*Driver)(nil)

// New returns an empty driver.
func New() *Driver { return &Driver{objs: map[string]*object{}} }

// Name implements driver.Driver.
func (d *Driver) Name() string { return "inmemory" }

func check(p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return errdefs.InvalidArgument("inmemory driver: invalid path %q", p)
	}
	return nil
}

func notFound(op, p string) error { return errdefs.NotFound("%s %s: not found", op, p) }

// GetContent implements driver.Driver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if err := check(p); err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	o, ok := d.objs[p]
	if !ok {
		return nil, notFound("read", p)
	}
	return bytes.Clone(o.data), nil
}

// PutContent implements driver.Driver.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	if err := check(p); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.objs[p] = &object{data: bytes.Clone(content), mod: time.Now()}
	return nil
}

// Reader implements driver.Driver.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	b, err := d.GetContent(ctx, p)
	if err != nil {
		return nil, err
	}
	if offset > int64(len(b)) {
		offset = int64(len(b))
	}
	return io.NopCloser(bytes.NewReader(b[offset:])), nil
}

type writer struct {
	d    *Driver
	p    string
	buf  []byte
	done bool
}

func (w *writer) Write(b []byte) (int, error) {
	if w.done {
		return 0, errdefs.Conflict("write %s: writer closed", w.p)
	}
	w.buf = append(w.buf, b...)
	return len(b), nil
}
func (w *writer) Size() int64 { return int64(len(w.buf)) }
func (w *writer) flush() {
	w.d.mu.Lock()
	w.d.objs[w.p] = &object{data: bytes.Clone(w.buf), mod: time.Now()}
	w.d.mu.Unlock()
}
func (w *writer) Close() error {
	if !w.done {
		w.flush()
		w.done = true
	}
	return nil
}
func (w *writer) Cancel(ctx context.Context) error {
	w.done = true
	w.d.mu.Lock()
	delete(w.d.objs, w.p)
	w.d.mu.Unlock()
	return nil
}
func (w *writer) Commit(ctx context.Context) error {
	if w.done {
		return errdefs.Conflict("commit %s: writer closed", w.p)
	}
	w.flush()
	return nil
}

// Writer implements driver.Driver.
func (d *Driver) Writer(ctx context.Context, p string, appendTo bool) (driver.FileWriter, error) {
	if err := check(p); err != nil {
		return nil, err
	}
	w := &writer{d: d, p: p}
	if appendTo {
		if b, err := d.GetContent(ctx, p); err == nil {
			w.buf = b
		}
	}
	w.flush()
	return w, nil
}

// Stat implements driver.Driver; directories are implied by object paths.
func (d *Driver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if err := check(p); err != nil {
		return driver.FileInfo{}, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if o, ok := d.objs[p]; ok {
		return driver.FileInfo{Path: p, Size: int64(len(o.data)), ModTime: o.mod}, nil
	}
	prefix := strings.TrimSuffix(p, "/") + "/"
	var newest time.Time
	found := false
	for k, o := range d.objs {
		if strings.HasPrefix(k, prefix) {
			found = true
			if o.mod.After(newest) {
				newest = o.mod
			}
		}
	}
	if !found && p != "/" {
		return driver.FileInfo{}, notFound("stat", p)
	}
	return driver.FileInfo{Path: p, IsDir: true, ModTime: newest}, nil
}

// List implements driver.Driver.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	if err := check(p); err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	prefix := strings.TrimSuffix(p, "/") + "/"
	seen := map[string]bool{}
	for k := range d.objs {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		first, _, _ := strings.Cut(rest, "/")
		seen[prefix+first] = true
	}
	if len(seen) == 0 {
		return nil, notFound("list", p)
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

// Move implements driver.Driver.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	if err := check(src); err != nil {
		return err
	}
	if err := check(dst); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.objs[src]
	if !ok {
		return notFound("move", src)
	}
	delete(d.objs, src)
	d.objs[dst] = o
	return nil
}

// Delete implements driver.Driver.
func (d *Driver) Delete(ctx context.Context, p string) error {
	if err := check(p); err != nil {
		return err
	}
	if p == "/" {
		return errdefs.InvalidArgument("inmemory driver: refusing to delete the root")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	found := false
	prefix := p + "/"
	for k := range d.objs {
		if k == p || strings.HasPrefix(k, prefix) {
			delete(d.objs, k)
			found = true
		}
	}
	if !found {
		return notFound("delete", p)
	}
	return nil
}
