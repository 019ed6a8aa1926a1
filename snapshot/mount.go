package snapshot

import (
	"errors"
	"os"
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
		return errdefs.InvalidArgument("mount %s at %s: options are %d bytes, the kernel takes at most %d (too many layers)", m.Type, target, len(data), maxMountData-1)
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
