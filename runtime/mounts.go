package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/errdefs"
)

// defaultShmSize is Docker's default size of /dev/shm (64 MiB).
const defaultShmSize = 64 << 20

// defaultMounts are the file systems every container gets (Docker's list).
func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777"}},
	}
}

var propagationModes = []string{"private", "rprivate", "shared", "rshared", "slave", "rslave"}

// userMounts collects the mounts asked for by Binds, Mounts, Tmpfs, the
// host's hostname/hosts/resolv.conf files and a host IPC namespace, in
// Docker's order (sorted by depth of the destination).
func userMounts(o SpecOptions) ([]specs.Mount, error) {
	hc := o.HostConfig
	var ms []specs.Mount
	seen := map[string]bool{}
	add := func(m specs.Mount) error {
		m.Destination = filepath.Clean(m.Destination)
		if seen[m.Destination] {
			return errdefs.InvalidArgument("Duplicate mount point: %s", m.Destination)
		}
		seen[m.Destination] = true
		ms = append(ms, m)
		return nil
	}
	for _, b := range hc.Binds {
		m, err := parseBind(b)
		if err != nil {
			return nil, err
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	for _, mt := range hc.Mounts {
		m, err := convertMount(mt)
		if err != nil {
			return nil, err
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	tmpfsDst := make([]string, 0, len(hc.Tmpfs))
	for dst := range hc.Tmpfs {
		tmpfsDst = append(tmpfsDst, dst)
	}
	sort.Strings(tmpfsDst)
	for _, dst := range tmpfsDst {
		if !filepath.IsAbs(dst) {
			return nil, errdefs.InvalidArgument("invalid tmpfs mount %q: mount path must be absolute", dst)
		}
		var data []string
		if opts := hc.Tmpfs[dst]; opts != "" {
			data = strings.Split(opts, ",")
		}
		m, err := tmpfsMount(dst, data)
		if err != nil {
			return nil, err
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct{ src, dst string }{
		{o.HostnamePath, "/etc/hostname"},
		{o.HostsPath, "/etc/hosts"},
		{o.ResolvConfPath, "/etc/resolv.conf"},
	} {
		if f.src == "" || seen[f.dst] {
			continue
		}
		opts := []string{"rbind"}
		if hc.ReadonlyRootfs {
			opts = append(opts, "ro")
		}
		opts = append(opts, "rprivate")
		_ = add(specs.Mount{Destination: f.dst, Type: "bind", Source: f.src, Options: opts})
	}
	if hc.IpcMode.IsHost() && !seen["/dev/shm"] {
		_ = add(specs.Mount{Destination: "/dev/shm", Type: "bind", Source: "/dev/shm", Options: []string{"rbind", "rprivate"}})
	}
	sort.SliceStable(ms, func(i, j int) bool { return depth(ms[i].Destination) < depth(ms[j].Destination) })
	return ms, nil
}

func depth(p string) int { return len(strings.Split(filepath.Clean(p), "/")) }

// parseBind parses a -v bind "src:dst[:opts]" (opts: ro|rw, a propagation
// mode, z|Z, nocopy, consistency words). A missing host directory is created
// as Docker does.
func parseBind(raw string) (specs.Mount, error) {
	var m specs.Mount
	parts := strings.Split(raw, ":")
	var src, dst, mode string
	switch len(parts) {
	case 2:
		src, dst = parts[0], parts[1]
	case 3:
		src, dst, mode = parts[0], parts[1], parts[2]
	case 1:
		return m, errdefs.NotImplemented("anonymous volumes are not supported yet: %q", raw)
	default:
		return m, errdefs.InvalidArgument("invalid volume specification: '%s'", raw)
	}
	if src == "" || dst == "" {
		return m, errdefs.InvalidArgument("invalid volume specification: '%s'", raw)
	}
	if !filepath.IsAbs(dst) {
		return m, errdefs.InvalidArgument("invalid volume specification: '%s': invalid mount config for type \"bind\": invalid mount path: '%s' mount path must be absolute", raw, dst)
	}
	if filepath.Clean(dst) == "/" {
		return m, errdefs.InvalidArgument("invalid volume specification: '%s': destination can't be '/'", raw)
	}
	if !filepath.IsAbs(src) {
		return m, errdefs.NotImplemented("named volumes are not supported yet: %q in %q", src, raw)
	}
	ro, prop := false, ""
	rwSet := false
	for _, opt := range strings.Split(mode, ",") {
		switch {
		case opt == "":
		case opt == "ro" || opt == "rw":
			if rwSet {
				return m, errdefs.InvalidArgument("invalid mode: %s", mode)
			}
			rwSet, ro = true, opt == "ro"
		case slices.Contains(propagationModes, opt):
			if prop != "" {
				return m, errdefs.InvalidArgument("invalid mode: %s", mode)
			}
			prop = opt
		case opt == "z" || opt == "Z" || opt == "consistent" || opt == "cached" || opt == "delegated":
			// SELinux relabelling and macOS consistency hints: no effect here.
		case opt == "nocopy":
			return m, errdefs.InvalidArgument("invalid mode: %s: nocopy applies to volumes only", mode)
		default:
			return m, errdefs.InvalidArgument("invalid mode: %s", mode)
		}
	}
	if _, err := os.Stat(src); os.IsNotExist(err) {
		if err := os.MkdirAll(src, 0o755); err != nil {
			return m, errdefs.System("create bind source %s: %w", src, err)
		}
	} else if err != nil {
		return m, errdefs.InvalidArgument("bind source %s: %w", src, err)
	}
	if prop == "" {
		prop = "rprivate"
	}
	opts := []string{"rbind"}
	if ro {
		opts = append(opts, "ro")
	}
	opts = append(opts, prop)
	return specs.Mount{Destination: dst, Type: "bind", Source: filepath.Clean(src), Options: opts}, nil
}

// convertMount turns a --mount entry into a runtime mount.
func convertMount(mt mount.Mount) (specs.Mount, error) {
	var m specs.Mount
	if mt.Target == "" {
		return m, errdefs.InvalidArgument("invalid mount config for type %q: field Target must not be empty", mt.Type)
	}
	if !filepath.IsAbs(mt.Target) {
		return m, errdefs.InvalidArgument("invalid mount config for type %q: invalid mount path: '%s' mount path must be absolute", mt.Type, mt.Target)
	}
	switch mt.Type {
	case mount.TypeBind:
		if mt.Source == "" {
			return m, errdefs.InvalidArgument("invalid mount config for type \"bind\": field Source must not be empty")
		}
		if !filepath.IsAbs(mt.Source) {
			return m, errdefs.InvalidArgument("invalid mount config for type \"bind\": invalid mount path: '%s' mount path must be absolute", mt.Source)
		}
		if filepath.Clean(mt.Target) == "/" {
			return m, errdefs.InvalidArgument("invalid mount config for type \"bind\": destination can't be '/'")
		}
		bo := mt.BindOptions
		if bo == nil {
			bo = &mount.BindOptions{}
		}
		if _, err := os.Stat(mt.Source); os.IsNotExist(err) {
			if !bo.CreateMountpoint {
				return m, errdefs.InvalidArgument("invalid mount config for type \"bind\": bind source path does not exist: %s", mt.Source)
			}
			if err := os.MkdirAll(mt.Source, 0o755); err != nil {
				return m, errdefs.System("create bind source %s: %w", mt.Source, err)
			}
		} else if err != nil {
			return m, errdefs.InvalidArgument("bind source %s: %w", mt.Source, err)
		}
		opts := []string{"rbind"}
		if bo.NonRecursive {
			opts[0] = "bind"
		}
		if mt.ReadOnly {
			opts = append(opts, "ro")
		}
		prop := string(bo.Propagation)
		if prop == "" {
			prop = "rprivate"
		}
		if !slices.Contains(propagationModes, prop) {
			return m, errdefs.InvalidArgument("invalid mount config for type \"bind\": invalid propagation mode: %s", prop)
		}
		opts = append(opts, prop)
		return specs.Mount{Destination: mt.Target, Type: "bind", Source: filepath.Clean(mt.Source), Options: opts}, nil
	case mount.TypeTmpfs:
		if mt.Source != "" {
			return m, errdefs.InvalidArgument("invalid mount config for type \"tmpfs\": field Source must not be specified")
		}
		var data []string
		if mt.ReadOnly {
			data = append(data, "ro")
		}
		if to := mt.TmpfsOptions; to != nil {
			if to.SizeBytes < 0 {
				return m, errdefs.InvalidArgument("invalid mount config for type \"tmpfs\": invalid tmpfs size %d", to.SizeBytes)
			}
			if to.Mode != 0 {
				data = append(data, fmt.Sprintf("mode=%o", unixPerm(to.Mode)))
			}
			if to.SizeBytes > 0 {
				data = append(data, "size="+tmpfsSize(to.SizeBytes))
			}
			for _, o := range to.Options {
				switch len(o) {
				case 1:
					data = append(data, o[0])
				case 2:
					data = append(data, o[0]+"="+o[1])
				default:
					return m, errdefs.InvalidArgument("invalid mount config for type \"tmpfs\": invalid option %v", o)
				}
			}
		}
		return tmpfsMount(mt.Target, data)
	case mount.TypeVolume:
		return m, errdefs.NotImplemented("mounts of type volume are not supported yet (target %s)", mt.Target)
	default:
		return m, errdefs.InvalidArgument("invalid mount config: mount type %q is not supported", mt.Type)
	}
}

// tmpfsMount builds a tmpfs mount with Docker's defaults (noexec, nosuid,
// nodev, rprivate) overridden by the user's options.
func tmpfsMount(dst string, data []string) (specs.Mount, error) {
	opts, err := mergeTmpfsOptions(append([]string{"noexec", "nosuid", "nodev", "rprivate"}, data...))
	if err != nil {
		return specs.Mount{}, errdefs.InvalidArgument("tmpfs mount %s: %w", dst, err)
	}
	return specs.Mount{Destination: dst, Type: "tmpfs", Source: "tmpfs", Options: opts}, nil
}

// tmpfsFlagKeys groups each mount flag with the flags it cancels.
var tmpfsFlagKeys = map[string]string{
	"ro": "rdonly", "rw": "rdonly",
	"exec": "noexec", "noexec": "noexec",
	"suid": "nosuid", "nosuid": "nosuid",
	"dev": "nodev", "nodev": "nodev",
	"sync": "sync", "async": "sync",
	"dirsync": "dirsync",
	"mand":    "mand", "nomand": "mand",
	"atime": "noatime", "noatime": "noatime",
	"diratime": "nodiratime", "nodiratime": "nodiratime",
	"relatime": "relatime", "norelatime": "relatime",
	"strictatime": "strictatime", "nostrictatime": "strictatime",
	"private": "propagation", "rprivate": "propagation", "shared": "propagation", "rshared": "propagation",
	"slave": "propagation", "rslave": "propagation",
}

// tmpfsDataKeys are the key=value options tmpfs takes.
var tmpfsDataKeys = map[string]bool{"size": true, "mode": true, "uid": true, "gid": true, "nr_inodes": true, "nr_blocks": true, "mpol": true}

// mergeTmpfsOptions keeps the last of each group of flags and of each
// key=value, where it stands, as Docker's MergeTmpfsOptions does; unknown
// options are refused.
func mergeTmpfsOptions(in []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for i := len(in) - 1; i >= 0; i-- {
		o := strings.TrimSpace(in[i])
		if o == "" || o == "defaults" {
			continue
		}
		key, ok := tmpfsFlagKeys[o]
		if ok {
			key = "flag:" + key
		} else {
			k, _, isData := strings.Cut(o, "=")
			if !isData || !tmpfsDataKeys[k] {
				return nil, fmt.Errorf("invalid tmpfs option %q", o)
			}
			key = "data:" + k
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, o)
	}
	slices.Reverse(out)
	return out, nil
}

// mergeMounts puts the defaults and the user's mounts together as Docker
// does: a user mount replaces the default at the same place, a user /dev
// replaces everything under /dev, /dev/shm follows IpcMode and ShmSize, a
// read-only rootfs makes the defaults read-only, privileged makes /sys and
// the cgroup mount writable.
func mergeMounts(hc *container.HostConfig, defaults, extra, user []specs.Mount) []specs.Mount {
	userDst := map[string]bool{}
	for _, m := range user {
		userDst[m.Destination] = true
	}
	shm := hc.ShmSize
	if shm <= 0 {
		shm = defaultShmSize
	}
	var out []specs.Mount
	for _, m := range defaults {
		if userDst[m.Destination] || (userDst["/dev"] && strings.HasPrefix(m.Destination, "/dev/")) {
			continue
		}
		if m.Destination == "/dev/shm" {
			if hc.IpcMode.IsNone() {
				continue
			}
			m.Options = append(m.Options, "size="+strconv.FormatInt(shm, 10))
		}
		if hc.ReadonlyRootfs {
			switch m.Destination {
			case "/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev":
			default:
				if !slices.Contains(m.Options, "ro") {
					m.Options = append(m.Options, "ro")
				}
			}
		}
		if hc.Privileged && (m.Destination == "/sys" || m.Type == "cgroup") {
			m.Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
		}
		out = append(out, m)
	}
	out = append(out, extra...)
	return append(out, user...)
}

// rootPropagation returns the rootfs propagation a shared or slave bind
// needs, or "" for runc's default.
func rootPropagation(ms []specs.Mount) string {
	prop := ""
	for _, m := range ms {
		if m.Type != "bind" {
			continue
		}
		for _, o := range m.Options {
			switch o {
			case "shared", "rshared":
				prop = "shared"
			case "slave", "rslave":
				if prop == "" {
					prop = "rslave"
				}
			}
		}
	}
	return prop
}

// tmpfsSize writes a size the way dockerd does: in g, m or k when it
// divides evenly.
func tmpfsSize(n int64) string {
	for _, u := range []struct {
		suffix string
		div    int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n%u.div == 0 {
			return strconv.FormatInt(n/u.div, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// unixPerm converts a mode to the octal the kernel takes: the permission
// bits, Go's setuid/setgid/sticky flags, and the raw 07000 bits clients
// such as the docker CLI send (tmpfs-mode=1770).
func unixPerm(m os.FileMode) uint32 {
	p := uint32(m.Perm()) | uint32(m)&0o7000
	if m&os.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}
