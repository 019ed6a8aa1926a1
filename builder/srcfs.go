package builder

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/snapshot"
	"github.com/opencontainers/go-digest"
)

// srcFS is a tree COPY reads from: a context directory, a context tar, or
// a mounted image. Paths are slash-separated and relative to the root
// ("." is the root); nothing resolves outside the root.
type srcFS interface {
	// Lstat describes rel without following a final symlink.
	Lstat(rel string) (fs.FileInfo, error)
	// ReadDir lists a directory, sorted by name (Lstat semantics).
	ReadDir(rel string) ([]fs.FileInfo, error)
	ReadLink(rel string) (string, error)
	// Open reads a regular file.
	Open(rel string) (io.ReadCloser, error)
	// Resolve follows every symlink in rel as a process chrooted at the
	// root would, and returns the path it names.
	Resolve(rel string) (string, error)
}

func cleanRel(p string) string {
	c := path.Clean("/" + filepath.ToSlash(p))[1:]
	if c == "" {
		return "."
	}
	return c
}

// dirFS is a directory on the host.
type dirFS struct{ root string }

func (d dirFS) host(rel string) string {
	return filepath.Join(d.root, filepath.FromSlash(cleanRel(rel)))
}

func (d dirFS) Lstat(rel string) (fs.FileInfo, error) { return os.Lstat(d.host(rel)) }

func (d dirFS) ReadDir(rel string) ([]fs.FileInfo, error) {
	ents, err := os.ReadDir(d.host(rel))
	if err != nil {
		return nil, err
	}
	out := make([]fs.FileInfo, 0, len(ents))
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, fi)
	}
	return out, nil
}

func (d dirFS) ReadLink(rel string) (string, error) { return os.Readlink(d.host(rel)) }

func (d dirFS) Open(rel string) (io.ReadCloser, error) { return os.Open(d.host(rel)) }

func (d dirFS) Resolve(rel string) (string, error) {
	host, err := snapshot.ResolveInRoot(d.root, cleanRel(rel), true)
	if err != nil {
		return "", err
	}
	r, err := filepath.Rel(d.root, host)
	if err != nil || r == ".." || strings.HasPrefix(r, "../") {
		return "", errdefs.InvalidArgument("resolve %s: outside the root", rel)
	}
	return cleanRel(r), nil
}

// tarFS is a context tar spooled, unextracted, to one file and indexed:
// receiving a context costs one sequential write and one hash per file,
// not one file creation per entry.
type tarFS struct {
	spool    *os.File
	entries  map[string]*tarNode
	children map[string][]string
}

type tarNode struct {
	hdr    tar.Header
	off    int64 // content offset in the spool
	digest digest.Digest
}

// spoolTar reads a context tar into a spool file in dir, hashing each
// regular file as it streams by.
func spoolTar(ctx context.Context, r io.Reader, dir string) (*tarFS, error) {
	f, err := os.CreateTemp(dir, "context-*.tar")
	if err != nil {
		return nil, errdefs.System("create context spool: %w", err)
	}
	os.Remove(f.Name()) // anonymous: gone with the last descriptor
	t := &tarFS{spool: f, entries: map[string]*tarNode{}, children: map[string][]string{}}
	t.entries["."] = &tarNode{hdr: tar.Header{Typeflag: tar.TypeDir, Mode: 0o755, Name: "."}}
	bw := bufio.NewWriterSize(f, 1<<20)
	var off int64
	tr := tar.NewReader(r)
	h := sha256.New()
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			f.Close()
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Close()
			return nil, errdefs.InvalidArgument("read build context: %w", err)
		}
		rel := cleanRel(hdr.Name)
		if rel == "." {
			continue
		}
		n := &tarNode{hdr: *hdr}
		n.hdr.Name = rel
		switch hdr.Typeflag {
		case tar.TypeReg:
			h.Reset()
			n.off = off
			c, err := io.CopyBuffer(io.MultiWriter(bw, h), tr, buf)
			if err != nil {
				f.Close()
				return nil, errdefs.InvalidArgument("read build context entry %s: %w", hdr.Name, err)
			}
			off += c
			n.digest = digest.NewDigest(digest.SHA256, h)
		case tar.TypeLink:
			target, ok := t.entries[cleanRel(hdr.Linkname)]
			if !ok || target.hdr.Typeflag != tar.TypeReg {
				continue
			}
			n.hdr.Typeflag, n.hdr.Size, n.hdr.Linkname = tar.TypeReg, target.hdr.Size, ""
			n.off, n.digest = target.off, target.digest
		case tar.TypeDir, tar.TypeSymlink:
		default:
			continue // devices and fifos have no place in a context
		}
		t.add(rel, n)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return nil, errdefs.System("write context spool: %w", err)
	}
	for dir := range t.children {
		sort.Strings(t.children[dir])
	}
	return t, nil
}

// add records n and any parent directory the tar did not list.
func (t *tarFS) add(rel string, n *tarNode) {
	if _, exists := t.entries[rel]; !exists {
		parent := path.Dir(rel)
		if _, ok := t.entries[parent]; !ok {
			t.add(parent, &tarNode{hdr: tar.Header{Name: parent, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: n.hdr.ModTime}})
		}
		t.children[parent] = append(t.children[parent], path.Base(rel))
	}
	t.entries[rel] = n
}

func (t *tarFS) Close() error { return t.spool.Close() }

func (t *tarFS) node(rel string) (*tarNode, error) {
	n, ok := t.entries[cleanRel(rel)]
	if !ok {
		return nil, &fs.PathError{Op: "stat", Path: rel, Err: fs.ErrNotExist}
	}
	return n, nil
}

func (t *tarFS) Lstat(rel string) (fs.FileInfo, error) {
	n, err := t.node(rel)
	if err != nil {
		return nil, err
	}
	return tarInfo{n}, nil
}

func (t *tarFS) ReadDir(rel string) ([]fs.FileInfo, error) {
	rel = cleanRel(rel)
	n, err := t.node(rel)
	if err != nil {
		return nil, err
	}
	if n.hdr.Typeflag != tar.TypeDir {
		return nil, &fs.PathError{Op: "readdir", Path: rel, Err: fs.ErrInvalid}
	}
	var out []fs.FileInfo
	for _, c := range t.children[rel] {
		out = append(out, tarInfo{t.entries[path.Join(rel, c)]})
	}
	return out, nil
}

func (t *tarFS) ReadLink(rel string) (string, error) {
	n, err := t.node(rel)
	if err != nil {
		return "", err
	}
	return n.hdr.Linkname, nil
}

func (t *tarFS) Open(rel string) (io.ReadCloser, error) {
	n, err := t.node(rel)
	if err != nil {
		return nil, err
	}
	if n.hdr.Typeflag != tar.TypeReg {
		return nil, &fs.PathError{Op: "open", Path: rel, Err: fs.ErrInvalid}
	}
	return io.NopCloser(io.NewSectionReader(t.spool, n.off, n.hdr.Size)), nil
}

func (t *tarFS) Resolve(rel string) (string, error) {
	parts := splitRel(cleanRel(rel))
	cur := "."
	for hops := 0; len(parts) > 0; {
		next := path.Join(cur, parts[0])
		parts = parts[1:]
		if n, ok := t.entries[next]; ok && n.hdr.Typeflag == tar.TypeSymlink {
			if hops++; hops > 40 {
				return "", errdefs.InvalidArgument("resolve %s: too many levels of symbolic links", rel)
			}
			base := cur
			if path.IsAbs(n.hdr.Linkname) {
				base = "."
			}
			parts = append(splitRel(cleanRel(path.Join(base, n.hdr.Linkname))), parts...)
			cur = "."
			continue
		}
		cur = next
	}
	return cur, nil
}

func splitRel(rel string) []string {
	if rel == "." {
		return nil
	}
	return strings.Split(rel, "/")
}

// tarInfo is a tar entry as an fs.FileInfo named by its base name.
type tarInfo struct{ n *tarNode }

func (i tarInfo) Name() string       { return path.Base(i.n.hdr.Name) }
func (i tarInfo) Size() int64        { return i.n.hdr.Size }
func (i tarInfo) Mode() fs.FileMode  { return i.n.hdr.FileInfo().Mode() }
func (i tarInfo) ModTime() time.Time { return i.n.hdr.ModTime }
func (i tarInfo) IsDir() bool        { return i.n.hdr.Typeflag == tar.TypeDir }
func (i tarInfo) Sys() any           { return &i.n.hdr }

// glob expands a pattern of path.Match segments against fsys, in order.
func glob(fsys srcFS, pattern string) ([]string, error) {
	matches := []string{"."}
	for _, seg := range splitRel(cleanRel(pattern)) {
		var next []string
		for _, m := range matches {
			if !strings.ContainsAny(seg, "*?[\\") {
				p := path.Join(m, seg)
				if r, err := fsys.Resolve(p); err == nil {
					if _, err := fsys.Lstat(r); err == nil {
						next = append(next, p)
					}
				}
				continue
			}
			if _, err := path.Match(seg, ""); err != nil {
				return nil, err
			}
			dir, err := fsys.Resolve(m)
			if err != nil {
				continue
			}
			ents, err := fsys.ReadDir(dir)
			if err != nil {
				continue
			}
			for _, e := range ents {
				if ok, _ := path.Match(seg, e.Name()); ok {
					next = append(next, path.Join(m, e.Name()))
				}
			}
		}
		matches = next
	}
	return matches, nil
}
