package snapshot

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/errdefs"
	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// OCI whiteout names in layer tars.
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
	// overlayOpaque marks a directory whose lower contents are hidden.
	overlayOpaque = "trusted.overlay.opaque"
)

// Apply unpacks the uncompressed layer tar r into dir, the own directory of a
// snapshot, converting OCI whiteouts to overlay form (a 0:0 character device
// for a deleted entry, trusted.overlay.opaque=y for an opaque directory).
//
// Nothing outside dir is created or changed: paths are resolved as if dir
// were the root (an absolute symlink or one through which a later entry is
// written stays inside dir), entries and hard links whose paths climb out of
// the root, and relative symlinks that point above it, are refused with an
// InvalidArgument error. Ownership, permission bits (setuid included), device
// numbers, xattrs, hard links and times are kept as the tar says.
//
// It returns the total size of the regular files written.
func Apply(ctx context.Context, dir string, r io.Reader) (int64, error) {
	a := applier{root: dir}
	err := eachEntry(ctx, r, func(hdr *tar.Header, data io.Reader) error { return a.entry(ctx, hdr, data) })
	if err != nil {
		return a.size, err
	}
	// Directory times last: creating entries inside changes them.
	for i := len(a.dirs) - 1; i >= 0; i-- {
		d := a.dirs[i]
		setTimes(d.path, d.hdr)
	}
	return a.size, nil
}

// What a layer entry's base name makes it.
const (
	plainEntry    = iota
	opaqueEntry   // .wh..wh..opq: its directory hides what lower layers have there
	metaEntry     // other .wh..wh.* names: aufs hard-link bookkeeping, not content
	whiteoutEntry // .wh.<name>: <name> is deleted
)

// classifyEntry tells what the entry with base name base is and, for a
// whiteout, which name it deletes.
func classifyEntry(hdr *tar.Header, base string) (kind int, deleted string, err error) {
	switch {
	case base == whiteoutOpaque:
		return opaqueEntry, "", nil
	case strings.HasPrefix(base, whiteoutMeta):
		return metaEntry, "", nil
	case strings.HasPrefix(base, whiteoutPrefix):
		name := base[len(whiteoutPrefix):]
		if name == "" || name == "." || name == ".." {
			return 0, "", errdefs.InvalidArgument("layer entry %q: invalid whiteout", hdr.Name)
		}
		return whiteoutEntry, name, nil
	}
	return plainEntry, "", nil
}

// eachEntry calls fn with every entry of the layer tar r and its data,
// stopping at the first error or when ctx ends.
func eachEntry(ctx context.Context, r io.Reader, fn func(*tar.Header, io.Reader) error) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return errdefs.InvalidArgument("read layer tar: %w", err)
		}
		if err := fn(hdr, tr); err != nil {
			return err
		}
	}
}

type applier struct {
	root string
	size int64

	// For copies into a container (CopyIn) rather than layers:
	prefix               string  // directory (relative to root) entries land in
	plain                bool    // .wh. names are ordinary files
	noOverwriteDirNonDir bool    // refuse to replace a directory by a non-directory and back
	owner                *[2]int // uid, gid for every entry instead of the tar's

	// resolved caches resolveParent: entry directory -> real directory. A
	// chain of real directories resolves the same until something in it is
	// removed, which clears the cache.
	resolved map[string]string
	buf      []byte // copy buffer, reused for every file
	dirs     []struct {
		path string
		hdr  *tar.Header
	}
}

// relPath cleans a tar entry name to a path relative to the root, refusing
// one that climbs out.
func relPath(name string) (string, error) {
	p := filepath.Clean(strings.TrimLeft(filepath.FromSlash(name), "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", errdefs.InvalidArgument("layer entry %q points outside the layer root", name)
	}
	return p, nil
}

// resolveParent returns the real directory (inside the root, symlinks
// resolved as in a chroot) that will hold rel's last element, creating it.
func (a *applier) resolveParent(rel string) (string, error) {
	dir := filepath.Dir(rel)
	if p, ok := a.resolved[dir]; ok {
		return p, nil
	}
	parent, err := securejoin.SecureJoin(a.root, dir)
	if err != nil {
		return "", errdefs.InvalidArgument("resolve layer entry %q: %w", rel, err)
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", errdefs.InvalidArgument("create parent of layer entry %q: %w", rel, err)
	}
	if a.resolved == nil {
		a.resolved = map[string]string{}
	}
	a.resolved[dir] = parent
	return parent, nil
}

// removeAll removes p and forgets every resolved directory: what was
// removed may have been a component of one (a real directory now replaced,
// possibly by a symlink).
func (a *applier) removeAll(p string) error {
	a.resolved = nil
	return os.RemoveAll(p)
}

func (a *applier) entry(ctx context.Context, hdr *tar.Header, r io.Reader) error {
	rel, err := relPath(hdr.Name)
	if err != nil {
		return err
	}
	if a.prefix != "" {
		if rel == "." {
			return nil // the target directory itself keeps its metadata
		}
		rel = filepath.Join(a.prefix, rel)
	}
	base := filepath.Base(rel)

	if rel == "." {
		if hdr.Typeflag != tar.TypeDir {
			return errdefs.InvalidArgument("layer entry %q: the root must be a directory", hdr.Name)
		}
		return a.meta(a.root, hdr, true)
	}

	kind, deleted := plainEntry, ""
	if !a.plain { // in a copy (CopyIn) .wh. names are ordinary files
		if kind, deleted, err = classifyEntry(hdr, base); err != nil {
			return err
		}
	}
	switch kind {
	case opaqueEntry:
		parent, err := securejoin.SecureJoin(a.root, filepath.Dir(rel))
		if err != nil {
			return errdefs.InvalidArgument("resolve opaque whiteout %q: %w", hdr.Name, err)
		}
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return errdefs.InvalidArgument("create opaque directory %q: %w", filepath.Dir(rel), err)
		}
		if err := unix.Lsetxattr(parent, overlayOpaque, []byte("y"), 0); err != nil {
			return errdefs.System("mark %q opaque: %w", filepath.Dir(rel), err)
		}
		return nil
	case metaEntry:
		return nil
	case whiteoutEntry:
		name := deleted
		parent, err := a.resolveParent(rel)
		if err != nil {
			return err
		}
		p := filepath.Join(parent, name)
		if err := a.removeAll(p); err != nil {
			return errdefs.System("apply whiteout %q: %w", hdr.Name, err)
		}
		if err := unix.Mknod(p, unix.S_IFCHR, 0); err != nil {
			return errdefs.System("apply whiteout %q: %w", hdr.Name, err)
		}
		return nil
	}

	parent, err := a.resolveParent(rel)
	if err != nil {
		return err
	}
	p := filepath.Join(parent, base)

	// Replace what is there, unless both are directories (then merge).
	if fi, err := os.Lstat(p); err == nil {
		if a.noOverwriteDirNonDir && fi.IsDir() != (hdr.Typeflag == tar.TypeDir) {
			if fi.IsDir() {
				return errdefs.InvalidArgument("cannot overwrite directory %q with non-directory %q", "/"+rel, hdr.Name)
			}
			return errdefs.InvalidArgument("cannot overwrite non-directory %q with directory %q", "/"+rel, hdr.Name)
		}
		if !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
			if err := a.removeAll(p); err != nil {
				return errdefs.System("replace %q: %w", rel, err)
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return errdefs.InvalidArgument("layer entry %q: %w", hdr.Name, err)
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return errdefs.System("create directory %q: %w", rel, err)
		}
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		if err := checkSparse(hdr); err != nil {
			return err
		}
		// A plain blocking fd (not os.OpenFile's poller registration) and
		// fchown/fchmod on it: fewer system calls per file, which counts
		// when a layer holds tens of thousands.
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return errdefs.System("create file %q: %w", rel, err)
		}
		var n int64
		if sparse(hdr) {
			n, err = copySparseFD(ctx, fd, r, a.buffer())
		} else {
			n, err = io.CopyBuffer(fdWriter(fd), ctxReader{ctx, r}, a.buffer())
		}
		a.size += n
		if err == nil {
			err = a.owned(hdr, func(uid, gid int) error { return unix.Fchown(fd, uid, gid) })
		}
		if err == nil {
			err = unix.Fchmod(fd, uint32(hdr.Mode&0o7777))
		}
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
		if err != nil {
			return errdefs.InvalidArgument("write file %q: %w", rel, err)
		}
		return a.metaRest(p, hdr)
	case tar.TypeSymlink:
		if !filepath.IsAbs(hdr.Linkname) {
			t := filepath.Join(filepath.Dir(rel), hdr.Linkname)
			if t == ".." || strings.HasPrefix(t, "../") {
				return errdefs.InvalidArgument("layer entry %q: symlink target %q points outside the layer root", hdr.Name, hdr.Linkname)
			}
		}
		if err := os.Symlink(hdr.Linkname, p); err != nil {
			return errdefs.System("create symlink %q: %w", rel, err)
		}
	case tar.TypeLink:
		lrel, err := relPath(hdr.Linkname)
		if err != nil || lrel == "." {
			return errdefs.InvalidArgument("layer entry %q: hard link target %q points outside the layer root", hdr.Name, hdr.Linkname)
		}
		lrel = filepath.Join(a.prefix, lrel)
		lparent, err := securejoin.SecureJoin(a.root, filepath.Dir(lrel))
		if err != nil {
			return errdefs.InvalidArgument("resolve hard link target %q: %w", hdr.Linkname, err)
		}
		target := filepath.Join(lparent, filepath.Base(lrel))
		fi, err := os.Lstat(target)
		if err != nil {
			return errdefs.InvalidArgument("layer entry %q: hard link target %q: %w", hdr.Name, hdr.Linkname, err)
		}
		if fi.IsDir() {
			return errdefs.InvalidArgument("layer entry %q: hard link to directory %q", hdr.Name, hdr.Linkname)
		}
		if err := os.Link(target, p); err != nil {
			return errdefs.System("create hard link %q: %w", rel, err)
		}
		// A hard link shares the target's inode: its metadata is the target's.
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		if err := unix.Mknod(p, mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
			return errdefs.System("create device %q: %w", rel, err)
		}
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return errdefs.InvalidArgument("layer entry %q: unsupported tar type %q", hdr.Name, hdr.Typeflag)
	}
	return a.meta(p, hdr, false)
}

// meta applies ownership, mode, xattrs and times to p, which is never a
// symlink followed: p's parent is resolved and p itself was just created.
func (a *applier) meta(p string, hdr *tar.Header, isRoot bool) error {
	if err := a.owned(hdr, func(uid, gid int) error { return unix.Lchown(p, uid, gid) }); err != nil {
		return errdefs.System("chown %q: %w", hdr.Name, err)
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := unix.Chmod(p, uint32(hdr.Mode&0o7777)); err != nil {
			return errdefs.System("chmod %q: %w", hdr.Name, err)
		}
	}
	return a.metaRest(p, hdr)
}

// sparse says whether a file's data in the tar is not its contents as they
// are (GNU sparse files: a map and the data runs only).
func sparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// maxSparseSize bounds the size a sparse file in a layer may claim. The tar
// holds only its data runs, so a few bytes of archive could otherwise make
// the unpack expand exabytes of zeros.
const maxSparseSize = 256 << 30

// checkSparse refuses a sparse entry that claims more than maxSparseSize.
func checkSparse(hdr *tar.Header) error {
	if sparse(hdr) && hdr.Size > maxSparseSize {
		return errdefs.InvalidArgument("layer entry %q: sparse file of %d bytes (at most %d)", hdr.Name, hdr.Size, int64(maxSparseSize))
	}
	return nil
}

// copySparseFD copies a sparse file's contents to fd, seeking over whole
// zero blocks so that the holes stay holes; it returns the bytes covered.
func copySparseFD(ctx context.Context, fd int, r io.Reader, buf []byte) (int64, error) {
	n, err := copyHoles(ctx, r, buf, 4096, func(p []byte) error {
		_, err := fdWriter(fd).Write(p)
		return err
	}, func(n int64) error {
		_, err := unix.Seek(fd, n, io.SeekCurrent)
		return err
	})
	if err != nil {
		return n, err
	}
	// A trailing hole: the size comes from truncating.
	return n, unix.Ftruncate(fd, n)
}

// copyHoles reads r to its end in len(buf) pieces and passes them on in
// blocks of bs bytes: runs of whole zero blocks to skip, the rest to write.
// It returns the bytes read.
func copyHoles(ctx context.Context, r io.Reader, buf []byte, bs int, write func([]byte) error, skip func(int64) error) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := io.ReadFull(r, buf)
		for p := buf[:n]; len(p) > 0; {
			// The longest run of whole zero blocks, or of anything else.
			k := 0
			for k+bs <= len(p) && allZero(p[k:k+bs]) {
				k += bs
			}
			if k > 0 {
				if serr := skip(int64(k)); serr != nil {
					return total, serr
				}
			} else {
				for k < len(p) && (k+bs > len(p) || !allZero(p[k:k+bs])) {
					k += min(bs, len(p)-k)
				}
				if werr := write(p[:k]); werr != nil {
					return total, werr
				}
			}
			total += int64(k)
			p = p[k:]
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// allZero reports whether p holds only zero bytes.
func allZero(p []byte) bool {
	for len(p) >= 8 {
		if binary.NativeEndian.Uint64(p) != 0 {
			return false
		}
		p = p[8:]
	}
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}

// fdWriter writes to a raw file descriptor.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(w), p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.ErrShortWrite
		}
		n += m
	}
	return n, nil
}

func (a *applier) buffer() []byte {
	if a.buf == nil {
		a.buf = make([]byte, 256<<10)
	}
	return a.buf
}

// owned calls chown with the entry's owner (or the forced one).
func (a *applier) owned(hdr *tar.Header, chown func(uid, gid int) error) error {
	uid, gid := hdr.Uid, hdr.Gid
	if a.owner != nil {
		uid, gid = a.owner[0], a.owner[1]
	}
	return chown(uid, gid)
}

// metaRest applies xattrs and times (after ownership and mode: chown
// clears setuid, and writing changes times).
func (a *applier) metaRest(p string, hdr *tar.Header) error {
	for k, v := range hdr.PAXRecords {
		key, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || strings.HasPrefix(key, "trusted.overlay.") {
			// overlay's own attributes would change how the layer stacks.
			continue
		}
		if err := unix.Lsetxattr(p, key, []byte(v), 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) || (hdr.Typeflag == tar.TypeSymlink && errors.Is(err, unix.EPERM)) {
				continue
			}
			return errdefs.System("set xattr %s on %q: %w", key, hdr.Name, err)
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		a.dirs = append(a.dirs, struct {
			path string
			hdr  *tar.Header
		}{p, hdr})
		return nil
	}
	setTimes(p, hdr)
	return nil
}

func setTimes(p string, hdr *tar.Header) {
	mt := hdr.ModTime
	at := hdr.AccessTime
	if at.IsZero() {
		at = mt
	}
	if mt.IsZero() {
		mt = time.Unix(0, 0)
		at = mt
	}
	ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
	// Times are best effort: a filesystem that refuses them loses nothing else.
	_ = unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
