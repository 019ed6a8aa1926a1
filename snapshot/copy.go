package snapshot

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/errdefs"
	securejoin "github.com/cyphar/filepath-securejoin"
)

// PathStat is what `docker cp` learns about a path in a container: the JSON
// of the X-Docker-Container-Path-Stat header.
type PathStat struct {
	Name       string      `json:"name"`
	Size       int64       `json:"size"`
	Mode       os.FileMode `json:"mode"`
	Mtime      time.Time   `json:"mtime"`
	LinkTarget string      `json:"linkTarget"`
}

// ResolveInRoot maps path, as a process chrooted at root sees it, to a host
// path under root. Symlinks are followed inside root (an absolute or
// climbing link stays in it); the last element is followed only when
// followLast is set, so a link itself can be archived.
func ResolveInRoot(root, path string, followLast bool) (string, error) {
	clean := filepath.Clean("/" + path)
	if followLast || clean == "/" {
		p, err := securejoin.SecureJoin(root, clean)
		if err != nil {
			return "", errdefs.InvalidArgument("resolve %s: %w", path, err)
		}
		return p, nil
	}
	parent, err := securejoin.SecureJoin(root, filepath.Dir(clean))
	if err != nil {
		return "", errdefs.InvalidArgument("resolve %s: %w", path, err)
	}
	return filepath.Join(parent, filepath.Base(clean)), nil
}

// followsLast is docker cp's rule: a path ending in "/" or "/." names what a
// final symlink points to; otherwise the link itself.
func followsLast(path string) bool {
	return strings.HasSuffix(path, "/") || strings.HasSuffix(path, "/.")
}

// StatInRoot describes path inside root (not following a final symlink
// unless the path ends in "/"). A missing path is NotFound.
func StatInRoot(root, path string) (PathStat, error) {
	host, err := ResolveInRoot(root, path, followsLast(path))
	if err != nil {
		return PathStat{}, err
	}
	fi, err := os.Lstat(host)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return PathStat{}, errdefs.NotFound("Could not find the file %s in container", path)
		}
		return PathStat{}, errdefs.System("stat %s: %w", path, err)
	}
	st := PathStat{Name: filepath.Base(filepath.Clean("/" + path)), Size: fi.Size(), Mode: fi.Mode(), Mtime: fi.ModTime()}
	if fi.Mode()&os.ModeSymlink != 0 {
		// The target as the container sees it.
		if full, err := securejoin.SecureJoin(root, filepath.Clean("/"+path)); err == nil {
			if rel, err := filepath.Rel(root, full); err == nil {
				st.LinkTarget = "/" + rel
			}
		}
	}
	return st, nil
}

// CopyOut writes path (inside root) to w as a tar, as `docker cp` out does:
// a file as one entry named after it, a directory as "<name>/..." or, when
// path ends in "/.", its contents. Symlinks inside are archived as links,
// never followed; nothing outside root is read.
func CopyOut(ctx context.Context, root, path string, w io.Writer) error {
	host, err := ResolveInRoot(root, path, followsLast(path))
	if err != nil {
		return err
	}
	fi, err := os.Lstat(host)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errdefs.NotFound("Could not find the file %s in container", path)
		}
		return errdefs.System("stat %s: %w", path, err)
	}
	tw := tar.NewWriter(w)
	t := treeWriter{tw: tw, links: map[uint64]string{}}
	name := filepath.Base(filepath.Clean("/" + path))
	if name == "/" {
		name = "."
	}
	contents := strings.HasSuffix(path, "/.") && fi.IsDir()
	if !contents {
		if err := t.add(host, name, fi); err != nil {
			return errdefs.System("archive %s: %w", path, err)
		}
	}
	if fi.IsDir() {
		prefix := name
		if contents {
			prefix = ""
		}
		err := walkSorted(host, "", func(rel string, fi os.FileInfo) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return t.add(filepath.Join(host, rel), filepath.Join(prefix, rel), fi)
		})
		if err != nil {
			return errdefs.System("archive %s: %w", path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return errdefs.System("archive %s: %w", path, err)
	}
	return nil
}

// CopyInOptions are docker cp's PUT /archive parameters.
type CopyInOptions struct {
	// NoOverwriteDirNonDir refuses to replace a directory with a file or
	// the other way round.
	NoOverwriteDirNonDir bool
	// KeepOwner keeps the tar's uid/gid (copyUIDGID); otherwise entries
	// belong to UID and GID.
	KeepOwner bool
	UID, GID  int
}

// CopyIn unpacks the tar r into the directory dir inside root (a container's
// mounted root filesystem), as `docker cp` in does. Paths resolve inside
// root: no entry, symlink or hard link in the tar, and no symlink already in
// the container, makes anything outside root change.
func CopyIn(ctx context.Context, root, dir string, r io.Reader, opts CopyInOptions) error {
	host, err := ResolveInRoot(root, dir, true)
	if err != nil {
		return err
	}
	fi, err := os.Stat(host)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errdefs.NotFound("Could not find the file %s in container", dir)
		}
		return errdefs.System("stat %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return errdefs.InvalidArgument("extraction point is not a directory: %s", dir)
	}
	rel, err := filepath.Rel(root, host)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return errdefs.InvalidArgument("resolve %s: outside the container", dir)
	}
	a := applier{root: root, prefix: rel, plain: true, noOverwriteDirNonDir: opts.NoOverwriteDirNonDir}
	if rel == "." {
		a.prefix = ""
	}
	if !opts.KeepOwner {
		a.owner = &[2]int{opts.UID, opts.GID}
	}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return errdefs.InvalidArgument("read archive: %w", err)
		}
		if err := a.entry(ctx, hdr, tr); err != nil {
			return err
		}
	}
	for i := len(a.dirs) - 1; i >= 0; i-- {
		setTimes(a.dirs[i].path, a.dirs[i].hdr)
	}
	return nil
}
