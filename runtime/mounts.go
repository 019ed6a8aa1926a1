package runtime

import (
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
	volumemounts "github.com/berth-dev/berth/volume/mounts"
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
	addSpec := func(spec volumemounts.Spec) error {
		m, err := ociMount(spec)
		if err != nil {
			return err
		}
		return add(m)
	}
	for _, b := range hc.Binds {
		spec, err := volumemounts.ParseBind(b)
		if err != nil {
			return nil, err
		}
		if err := addSpec(spec); err != nil {
			return nil, err
		}
	}
	for _, mt := range hc.Mounts {
		spec, err := volumemounts.ParseMount(mt)
		if err != nil {
			return nil, err
		}
		if err := addSpec(spec); err != nil {
			return nil, err
		}
	}
	tmpfsDst := make([]string, 0, len(hc.Tmpfs))
	for dst := range hc.Tmpfs {
		tmpfsDst = append(tmpfsDst, dst)
	}
	sort.Strings(tmpfsDst)
	for _, dst := range tmpfsDst {
		spec, err := volumemounts.ParseTmpfs(dst, hc.Tmpfs[dst])
		if err != nil {
			return nil, err
		}
		if err := addSpec(spec); err != nil {
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

// ociMount turns a parsed Binds, Mounts or Tmpfs entry into a runtime
// mount. A missing bind source is made when the spec allows it (-v always,
// --mount with bind-create-src), as Docker does at start. Volumes reach the
// runtime only as binds of their directories, resolved by the daemon.
func ociMount(s volumemounts.Spec) (specs.Mount, error) {
	switch s.Type {
	case mount.TypeBind:
		if _, err := os.Stat(s.Source); os.IsNotExist(err) {
			if !s.CreateSource {
				return specs.Mount{}, errdefs.InvalidArgument("invalid mount config for type \"bind\": bind source path does not exist: %s", s.Source)
			}
			if err := os.MkdirAll(s.Source, 0o755); err != nil {
				return specs.Mount{}, errdefs.System("create bind source %s: %w", s.Source, err)
			}
		} else if err != nil {
			return specs.Mount{}, errdefs.InvalidArgument("bind source %s: %w", s.Source, err)
		}
		opts := []string{"rbind"}
		if s.NonRecursive {
			opts[0] = "bind"
		}
		if s.ReadOnly {
			opts = append(opts, "ro")
		}
		opts = append(opts, string(s.Propagation))
		return specs.Mount{Destination: s.Target, Type: "bind", Source: s.Source, Options: opts}, nil
	case mount.TypeTmpfs:
		return specs.Mount{Destination: s.Target, Type: "tmpfs", Source: "tmpfs", Options: s.TmpfsOptions}, nil
	default:
		name := s.Source
		if name == "" {
			name = "an anonymous volume"
		}
		return specs.Mount{}, errdefs.NotImplemented("mount %s at %s: the runtime mounts volumes only as binds of their directories, resolved by the daemon", name, s.Target)
	}
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
