package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// Populate copies src (a directory of a container's root file system) into
// volume name when the volume is empty, as Docker does at a volume's first
// mount: content, ownership, modes, times, symlinks, hard links and device
// nodes are kept, and the volume directory takes src's owner and mode.
// A missing or non-directory src, or a volume with content, is left alone.
// copied reports whether anything was copied.
func (s *Store) Populate(ctx context.Context, name, src string) (copied bool, err error) {
	s.mu.Lock()
	lock := s.copying[name]
	if lock == nil {
		lock = &sync.Mutex{}
		s.copying[name] = lock
	}
	s.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()

	fi, err := os.Lstat(src)
	if err != nil || !fi.IsDir() {
		return false, nil
	}
	dst := s.DataPath(name)
	empty, err := isEmptyDir(dst)
	if err != nil {
		return false, errdefs.System("copy image content into volume %s: %w", name, err)
	}
	if !empty {
		return false, nil
	}
	if err := CopyTree(ctx, src, dst); err != nil {
		return false, fmt.Errorf("copy image content into volume %s: %w", name, err)
	}
	return true, nil
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return len(names) == 0, err
}

// CopyTree copies the tree at src into the existing directory dst, never
// following symlinks, and gives dst src's owner and mode. Extended
// attributes other than user.* and security.capability are left behind
// (overlayfs keeps its own trusted.* attributes on the source).
func CopyTree(ctx context.Context, src, dst string) error {
	type inode struct{ dev, ino uint64 }
	links := map[inode]string{} // first copy of each multiply linked file
	type dirMeta struct {
		src, dst string
		fi       fs.FileInfo
	}
	var dirs []dirMeta
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		if rel == "." {
			dirs = append(dirs, dirMeta{path, target, fi})
			return nil
		}
		if st != nil && !fi.IsDir() && st.Nlink > 1 {
			key := inode{uint64(st.Dev), st.Ino}
			if first, ok := links[key]; ok {
				return os.Link(first, target)
			}
			links[key] = target
		}
		switch mode := fi.Mode(); {
		case mode.IsDir():
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, dirMeta{path, target, fi})
			return nil // owner, mode and times once its content is in
		case mode.IsRegular():
			if err := copyFile(path, target); err != nil {
				return err
			}
		case mode&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case mode&(fs.ModeDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0:
			if st == nil {
				return fmt.Errorf("%s: no device number", path)
			}
			if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
				return fmt.Errorf("mknod %s: %w", target, err)
			}
		default:
			return fmt.Errorf("%s: unsupported file type %s", path, mode.Type())
		}
		return applyMeta(path, target, fi)
	})
	if err != nil {
		return err
	}
	// Innermost first, so setting a directory's times is not undone by
	// writing into it.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := applyMeta(dirs[i].src, dirs[i].dst, dirs[i].fi); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// applyMeta gives dst src's owner, mode, extended attributes and times.
// chown comes before chmod: it clears the setuid and setgid bits.
func applyMeta(src, dst string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no ownership information", src)
	}
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", dst, err)
	}
	copyXattrs(src, dst)
	if fi.Mode()&fs.ModeSymlink == 0 {
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return fmt.Errorf("chmod %s: %w", dst, err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(st.Atim.Nano()), unix.NsecToTimespec(st.Mtim.Nano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", dst, err)
	}
	return nil
}

// copyXattrs copies user.* and security.capability; a file system that
// does not take them is not an error.
func copyXattrs(src, dst string) {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(src, buf)
	if err != nil || n == 0 {
		return
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if !strings.HasPrefix(name, "user.") && name != "security.capability" {
			continue
		}
		val := make([]byte, 64*1024)
		vn, err := unix.Lgetxattr(src, name, val)
		if err != nil {
			continue
		}
		unix.Lsetxattr(dst, name, val[:vn], 0)
	}
}
