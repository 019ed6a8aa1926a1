package snapshot

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/errdefs"
	"golang.org/x/sys/unix"
)

var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":          {false, unix.MS_RDONLY},
	"rw":          {true, unix.MS_RDONLY},
	"bind":        {false, unix.MS_BIND},
	"rbind":       {false, unix.MS_BIND | unix.MS_REC},
	"nosuid":      {false, unix.MS_NOSUID},
	"suid":        {true, unix.MS_NOSUID},
	"nodev":       {false, unix.MS_NODEV},
	"dev":         {true, unix.MS_NODEV},
	"noexec":      {false, unix.MS_NOEXEC},
	"exec":        {true, unix.MS_NOEXEC},
	"noatime":     {false, unix.MS_NOATIME},
	"relatime":    {false, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME},
	"sync":        {false, unix.MS_SYNCHRONOUS},
}

func parseOptions(opts []string) (uintptr, string) {
	var flags uintptr
	var data []string
	for _, o := range opts {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		data = append(data, o)
	}
	return flags, strings.Join(data, ",")
}

// maxMountData is the kernel's limit on the option string (one page).
const maxMountData = 4096

// Mount mounts m at target.
func (m Mount) Mount(target string) error {
	flags, data := parseOptions(m.Options)
	if len(data) >= maxMountData {
		if m.Type == "overlay" {
			// Too many layers for one option string: hand them to the
			// kernel one by one (overlayfs "lowerdir+", Linux 6.8+).
			return mountOverlayByParts(m, target, flags)
		}
		return errdefs.InvalidArgument("mount %s at %s: options are %d bytes, the kernel takes at most %d", m.Type, target, len(data), maxMountData-1)
	}
	typ := m.Type
	if flags&unix.MS_BIND != 0 {
		typ = ""
	}
	// A read-only bind needs a remount: the first mount(2) ignores MS_RDONLY.
	if err := unix.Mount(m.Source, target, typ, flags, data); err != nil {
		return errdefs.System("mount %s %s at %s: %w", m.Type, m.Source, target, err)
	}
	if flags&unix.MS_BIND != 0 && flags&unix.MS_RDONLY != 0 {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			unix.Unmount(target, unix.MNT_DETACH)
			return errdefs.System("remount %s read-only: %w", target, err)
		}
	}
	return nil
}

// MountAll mounts each mount at target, in order.
func MountAll(mounts []Mount, target string) error {
	for i, m := range mounts {
		if err := m.Mount(target); err != nil {
			for j := 0; j < i; j++ {
				Unmount(target)
			}
			return err
		}
	}
	return nil
}

// Unmount unmounts everything mounted at target. A target that is not a
// mount point, or does not exist, is not an error.
func Unmount(target string) error {
	for i := 0; i < 32; i++ {
		err := unix.Unmount(target, 0)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY):
			if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				return errdefs.System("unmount %s: %w", target, err)
			}
		default:
			if _, serr := os.Stat(target); errors.Is(serr, os.ErrNotExist) {
				return nil
			}
			return errdefs.System("unmount %s: %w", target, err)
		}
	}
	return errdefs.System("unmount %s: still mounted after 32 unmounts", target)
}

// mountOverlayByParts mounts an overlay with the new mount API, one fsconfig
// call per option and per lower directory, so the page-sized limit on
// mount(2)'s option string does not cap the number of layers.
func mountOverlayByParts(m Mount, target string, flags uintptr) error {
	fail := func(step string, err error) error {
		return errdefs.System("mount overlay at %s (%d bytes of options, by parts): %s: %w", target, len(strings.Join(m.Options, ",")), step, err)
	}
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fail("fsopen", err)
	}
	defer unix.Close(fd)
	if err := unix.FsconfigSetString(fd, "source", m.Source); err != nil {
		return fail("source", err)
	}
	for _, o := range m.Options {
		if _, ok := mountFlags[o]; ok {
			continue
		}
		k, v, hasValue := strings.Cut(o, "=")
		switch {
		case k == "lowerdir":
			for _, dir := range strings.Split(v, ":") {
				if err := unix.FsconfigSetString(fd, "lowerdir+", dir); err != nil {
					return fail("lowerdir+ "+dir, err)
				}
			}
		case hasValue:
			if err := unix.FsconfigSetString(fd, k, v); err != nil {
				return fail(k, err)
			}
		default:
			if err := unix.FsconfigSetFlag(fd, k); err != nil {
				return fail(k, err)
			}
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fail("create", err)
	}
	var attrs int
	if flags&unix.MS_RDONLY != 0 {
		attrs |= unix.MOUNT_ATTR_RDONLY
	}
	if flags&unix.MS_NOSUID != 0 {
		attrs |= unix.MOUNT_ATTR_NOSUID
	}
	if flags&unix.MS_NODEV != 0 {
		attrs |= unix.MOUNT_ATTR_NODEV
	}
	if flags&unix.MS_NOEXEC != 0 {
		attrs |= unix.MOUNT_ATTR_NOEXEC
	}
	if err := attachMount(fd, attrs, target); err != nil {
		return fail("mount", err)
	}
	return nil
}

// MountPoints lists the mount points in this process's mount namespace,
// from /proc/self/mountinfo (a bind mount from the same file system has the
// same device number, so stat cannot tell).
func MountPoints() (map[string]bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, errdefs.System("read mount table: %w", err)
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 {
			out[unescapeMountPath(f[4])] = true
		}
	}
	return out, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// attachMount makes the filesystem context fd (fsopen, configured and
// created) a mount with attrs and moves it to target.
func attachMount(fd int, attrs int, target string) error {
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fmt.Errorf("fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}
