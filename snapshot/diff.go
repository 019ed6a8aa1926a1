package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"golang.org/x/sys/unix"
)

// Diff writes the changes of the active snapshot key (its upper directory)
// as an OCI layer tar: deleted entries as .wh.<name>, opaque directories with
// .wh..wh..opq, hard links inside the layer as tar hard links.
func (o *Overlay) Diff(ctx context.Context, key string, w io.Writer) error {
	dir, err := o.UpperDir(ctx, key)
	if err != nil {
		return err
	}
	return writeTree(ctx, dir, w, true)
}

// WriteTar writes the tree under dir (for instance a mounted root
// filesystem, for export) as a plain tar.
func WriteTar(ctx context.Context, dir string, w io.Writer) error {
	return writeTree(ctx, dir, w, false)
}

func writeTree(ctx context.Context, root string, w io.Writer, overlay bool) error {
	tw := tar.NewWriter(w)
	t := treeWriter{tw: tw, links: map[uint64]string{}, overlay: overlay}
	err := walkSorted(root, "", func(rel string, fi os.FileInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return t.add(filepath.Join(root, rel), rel, fi)
	})
	if err != nil {
		return errdefs.System("archive %s: %w", root, err)
	}
	if err := tw.Close(); err != nil {
		return errdefs.System("archive %s: %w", root, err)
	}
	return nil
}

// treeWriter writes files into a tar, never following symlinks.
type treeWriter struct {
	tw      *tar.Writer
	links   map[uint64]string // inode -> first name written, for hard links
	overlay bool              // translate overlay whiteouts and opaque dirs
	buf     []byte            // copy buffer, reused for every file
}

// add writes the file at full (already lstat'ed as fi) under name.
func (t *treeWriter) add(full, name string, fi os.FileInfo) error {
	tw := t.tw
	st, _ := fi.Sys().(*syscall.Stat_t)
	if t.overlay && fi.Mode()&os.ModeCharDevice != 0 && st != nil && st.Rdev == 0 {
		// Overlay whiteout -> OCI whiteout.
		hdr := &tar.Header{Name: filepath.Join(filepath.Dir(name), whiteoutPrefix+filepath.Base(name)), Typeflag: tar.TypeReg, ModTime: fi.ModTime(), Format: tar.FormatPAX}
		return tw.WriteHeader(hdr)
	}
	link := ""
	if fi.Mode()&os.ModeSymlink != 0 {
		l, err := os.Readlink(full)
		if err != nil {
			return err
		}
		link = l
	}
	if fi.Mode()&os.ModeSocket != 0 {
		return nil // sockets do not travel in archives
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	if fi.IsDir() && !strings.HasSuffix(name, "/") {
		hdr.Name += "/"
	}
	hdr.Format = tar.FormatPAX
	hdr.Uname, hdr.Gname = "", ""
	hdr.ModTime = fi.ModTime()
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	if st != nil {
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		// tar.FileInfoHeader maps setuid etc. from os.FileMode; keep the raw bits.
		hdr.Mode = int64(st.Mode & 0o7777)
		if fi.Mode().IsRegular() && st.Nlink > 1 {
			if first, ok := t.links[st.Ino]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				t.links[st.Ino] = name
			}
		}
	}
	opaque := false
	for k, v := range xattrs(full) {
		if strings.HasPrefix(k, "trusted.overlay.") {
			if t.overlay && k == overlayOpaque && string(v) == "y" && fi.IsDir() {
				opaque = true
			}
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+k] = string(v)
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if opaque {
		if err := tw.WriteHeader(&tar.Header{Name: filepath.Join(name, whiteoutOpaque), Typeflag: tar.TypeReg, ModTime: fi.ModTime(), Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
		f, err := os.OpenFile(full, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		if t.buf == nil {
			t.buf = make([]byte, 1<<20)
		}
		// Large chunks: fewer system calls here and for whoever reads the tar.
		n, err := io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), t.buf)
		f.Close()
		if err == nil && n < hdr.Size {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return errdefs.System("read %s: %w (did the file change while being archived?)", name, err)
		}
	}
	return nil
}

// walkSorted calls fn for every entry below root in lexical order, parents
// before children.
func walkSorted(root, rel string, fn func(rel string, fi os.FileInfo) error) error {
	entries, err := os.ReadDir(filepath.Join(root, rel))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		r := filepath.Join(rel, e.Name())
		fi, err := os.Lstat(filepath.Join(root, r))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		if err := fn(r, fi); err != nil {
			return err
		}
		if fi.IsDir() {
			if err := walkSorted(root, r, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// xattrs reads every extended attribute of path (not following symlinks).
func xattrs(path string) map[string][]byte {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(path, buf)
	if errors.Is(err, unix.ERANGE) {
		if sz, err2 := unix.Llistxattr(path, nil); err2 == nil {
			buf = make([]byte, sz)
			n, err = unix.Llistxattr(path, buf)
		}
	}
	if err != nil || n == 0 {
		return nil
	}
	out := map[string][]byte{}
	for _, name := range bytes.Split(buf[:n], []byte{0}) {
		if len(name) == 0 {
			continue
		}
		v := make([]byte, 256)
		m, err := unix.Lgetxattr(path, string(name), v)
		if errors.Is(err, unix.ERANGE) {
			if sz, err2 := unix.Lgetxattr(path, string(name), nil); err2 == nil {
				v = make([]byte, sz)
				m, err = unix.Lgetxattr(path, string(name), v)
			}
		}
		if err == nil {
			out[string(name)] = v[:m]
		}
	}
	return out
}
