package runtime

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

func i64(v int64) *int64 { return &v }

// defaultDeviceRules is Docker's device cgroup allow list: deny all, then
// null, zero, full, random, urandom, tty, console, ptmx; deny /dev/net/tun
// style misc devices (10:229 is fuse).
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	allow := func(major, minor int64) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(major), Minor: i64(minor), Access: "rwm"}
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		allow(1, 5), allow(1, 3), allow(1, 9), allow(1, 8), allow(5, 0), allow(5, 1),
		{Allow: false, Type: "c", Major: i64(10), Minor: i64(229), Access: "rwm"},
	}
}

// deviceFromPath describes the device node at path, or ok=false when path
// is not a device.
func deviceFromPath(path, dest string) (specs.LinuxDevice, bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return specs.LinuxDevice{}, false, err
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, false, nil
	}
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Path:     dest,
		Type:     typ,
		Major:    int64(unix.Major(st.Rdev)),
		Minor:    int64(unix.Minor(st.Rdev)),
		FileMode: &mode,
		UID:      &uid,
		GID:      &gid,
	}, true, nil
}

// hostDevices lists the device nodes under /dev for a privileged container,
// leaving out the ones the container gets its own of.
func hostDevices() ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	err := filepath.WalkDir("/dev", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a node vanishing while we walk is not an error
		}
		if d.IsDir() {
			switch d.Name() {
			case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
				return filepath.SkipDir
			}
			return nil
		}
		if p == "/dev/console" || p == "/dev/ptmx" || d.Type()&fs.ModeDevice == 0 {
			return nil
		}
		dev, ok, err := deviceFromPath(p, p)
		if err != nil || !ok {
			return nil
		}
		out = append(out, dev)
		return nil
	})
	if err != nil {
		return nil, errdefs.System("list host devices: %w", err)
	}
	return out, nil
}

// mappedDevices resolves HostConfig.Devices ("/dev/x:/dev/y:rwm"); a
// directory maps every device below it.
func mappedDevices(maps []container.DeviceMapping) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	var devs []specs.LinuxDevice
	var rules []specs.LinuxDeviceCgroup
	for _, dm := range maps {
		perms := dm.CgroupPermissions
		if perms == "" {
			perms = "rwm"
		}
		if strings.Trim(perms, "rwm") != "" {
			return nil, nil, errdefs.InvalidArgument("invalid device cgroup permissions %q for %s", perms, dm.PathOnHost)
		}
		dst := dm.PathInContainer
		if dst == "" {
			dst = dm.PathOnHost
		}
		addOne := func(host, dest string) (bool, error) {
			d, ok, err := deviceFromPath(host, dest)
			if err != nil || !ok {
				return ok, err
			}
			devs = append(devs, d)
			rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Major: i64(d.Major), Minor: i64(d.Minor), Access: perms})
			return true, nil
		}
		ok, err := addOne(dm.PathOnHost, dst)
		if err != nil {
			return nil, nil, errdefs.InvalidArgument("error gathering device information while adding custom device %q: %w", dm.PathOnHost, err)
		}
		if ok {
			continue
		}
		// Not a device: a directory of devices, as Docker allows.
		found := false
		_ = filepath.WalkDir(dm.PathOnHost, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(dm.PathOnHost, p)
			if ok, _ := addOne(p, filepath.Join(dst, rel)); ok {
				found = true
			}
			return nil
		})
		if !found {
			return nil, nil, errdefs.InvalidArgument("error gathering device information while adding custom device %q: not a device node", dm.PathOnHost)
		}
	}
	return devs, rules, nil
}

// parseDeviceRule parses a --device-cgroup-rule such as "c 1:3 mr" or
// "a *:* rwm".
func parseDeviceRule(rule string) (specs.LinuxDeviceCgroup, error) {
	bad := errdefs.InvalidArgument("invalid device cgroup rule format: '%s'", rule)
	f := strings.Fields(rule)
	if len(f) != 3 {
		return specs.LinuxDeviceCgroup{}, bad
	}
	typ, nums, access := f[0], f[1], f[2]
	if typ != "a" && typ != "b" && typ != "c" {
		return specs.LinuxDeviceCgroup{}, bad
	}
	if access == "" || strings.Trim(access, "rwm") != "" {
		return specs.LinuxDeviceCgroup{}, bad
	}
	maj, min, ok := strings.Cut(nums, ":")
	if !ok {
		return specs.LinuxDeviceCgroup{}, bad
	}
	num := func(s string) (*int64, error) {
		if s == "*" {
			return nil, nil
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return nil, bad
		}
		return &v, nil
	}
	r := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
	var err error
	if r.Major, err = num(maj); err != nil {
		return r, err
	}
	if r.Minor, err = num(min); err != nil {
		return r, err
	}
	return r, nil
}
