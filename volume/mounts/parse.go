package mounts

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/mount"

	"github.com/berth-dev/berth/errdefs"
)

// Spec is one mount a container asks for, checked: the common form of a
// HostConfig.Binds entry, a HostConfig.Mounts entry and a HostConfig.Tmpfs
// entry.
type Spec struct {
	Type     mount.Type // bind, volume or tmpfs
	Source   string     // bind: the cleaned absolute host path; volume: its name, "" for an anonymous one
	Target   string     // cleaned and absolute, never "/" for a bind or a volume
	ReadOnly bool
	Mode     string // a -v spec's options as given, inspect's Mode; "" for --mount

	// Bind only.
	Propagation  mount.Propagation // rprivate unless asked
	NonRecursive bool              // --mount bind-recursive=disabled: "bind" instead of "rbind"
	CreateSource bool              // make a missing host path: always for -v, bind-create-src for --mount

	// Volume only.
	NoCopy        bool
	Subpath       string            // cleaned, relative, inside the volume
	Driver        string            // "" unless --mount named one
	Labels        map[string]string // volume-label: for a volume --mount creates
	DriverOptions map[string]string // volume-opt: for a volume --mount creates

	// Tmpfs only: the mount options, Docker's defaults (noexec, nosuid,
	// nodev, rprivate) overridden by the user's.
	TmpfsOptions []string
}

// propagationModes are the bind propagation modes Linux has.
var propagationModes = []mount.Propagation{
	mount.PropagationPrivate, mount.PropagationRPrivate,
	mount.PropagationShared, mount.PropagationRShared,
	mount.PropagationSlave, mount.PropagationRSlave,
}

func isPropagation(s string) bool { return slices.Contains(propagationModes, mount.Propagation(s)) }

// ParseBind reads a HostConfig.Binds entry (-v): "src:dst[:opts]" or a bare
// "dst". An absolute src is a host path (created at start if missing, as
// Docker does); any other src names a volume; no src asks for an anonymous
// volume. opts is a comma list of at most one of ro|rw, one propagation
// mode, nocopy (volumes only), and the SELinux (z, Z) and macOS consistency
// (consistent, cached, delegated) words, which change nothing here.
func ParseBind(raw string) (Spec, error) {
	badSpec := func() (Spec, error) {
		return Spec{}, errdefs.InvalidArgument("invalid volume specification: '%s'", raw)
	}
	parts := strings.Split(raw, ":")
	var src, dst, mode string
	switch len(parts) {
	case 1:
		dst = parts[0]
	case 2:
		src, dst = parts[0], parts[1]
	case 3:
		src, dst, mode = parts[0], parts[1], parts[2]
	default:
		return badSpec()
	}
	if dst == "" || (len(parts) > 1 && src == "") {
		return badSpec()
	}
	s := Spec{Type: mount.TypeVolume, Source: src, Mode: mode}
	if filepath.IsAbs(src) {
		s.Type, s.Source = mount.TypeBind, filepath.Clean(src)
	}
	badConfig := func(format string, args ...any) (Spec, error) {
		return Spec{}, errdefs.InvalidArgument("invalid volume specification: '%s': invalid mount config for type %q: "+format,
			append([]any{raw, s.Type}, args...)...)
	}
	badMode := func() (Spec, error) { return Spec{}, errdefs.InvalidArgument("invalid mode: %s", mode) }
	if isRoot(dst) {
		return badConfig("invalid specification: destination can't be '/'")
	}
	if !filepath.IsAbs(dst) {
		return badConfig("invalid mount path: '%s' mount path must be absolute", dst)
	}
	s.Target = filepath.Clean(dst)
	rwSet := false
	for _, opt := range strings.Split(mode, ",") {
		switch {
		case opt == "":
		case opt == "ro" || opt == "rw":
			if rwSet {
				return badMode()
			}
			rwSet, s.ReadOnly = true, opt == "ro"
		case isPropagation(opt):
			if s.Type != mount.TypeBind {
				return badConfig("field BindOptions must not be specified")
			}
			if s.Propagation != "" {
				return badMode()
			}
			s.Propagation = mount.Propagation(opt)
		case opt == "nocopy":
			if s.Type != mount.TypeVolume {
				return badConfig("field VolumeOptions must not be specified")
			}
			if s.NoCopy {
				return badMode()
			}
			s.NoCopy = true
		case opt == "z" || opt == "Z" || opt == "consistent" || opt == "cached" || opt == "delegated":
		default:
			return badMode()
		}
	}
	if s.Type == mount.TypeBind {
		s.CreateSource = true
		if s.Propagation == "" {
			s.Propagation = mount.PropagationRPrivate
		}
	}
	return s, nil
}

// ParseMount reads a HostConfig.Mounts entry (--mount) of type bind, volume
// or tmpfs. A bind's host path is not looked at here: that is the runtime's
// business at start.
func ParseMount(m mount.Mount) (Spec, error) {
	bad := func(format string, args ...any) (Spec, error) {
		return Spec{}, errdefs.InvalidArgument("invalid mount config for type %q: "+format, append([]any{m.Type}, args...)...)
	}
	switch m.Type {
	case mount.TypeBind, mount.TypeVolume, mount.TypeTmpfs:
	case "":
		return Spec{}, errdefs.InvalidArgument("invalid mount config: mount type must be given")
	default:
		return Spec{}, errdefs.InvalidArgument("invalid mount config: mount type %q is not supported", m.Type)
	}
	if m.Target == "" {
		return bad("field Target must not be empty")
	}
	if isRoot(m.Target) {
		return bad("invalid specification: destination can't be '/'")
	}
	if !filepath.IsAbs(m.Target) {
		return bad("invalid mount path: '%s' mount path must be absolute", m.Target)
	}
	s := Spec{Type: m.Type, Target: filepath.Clean(m.Target), ReadOnly: m.ReadOnly}
	switch m.Type {
	case mount.TypeBind:
		if m.VolumeOptions != nil {
			return bad("field VolumeOptions must not be specified")
		}
		if m.TmpfsOptions != nil {
			return bad("field TmpfsOptions must not be specified")
		}
		if m.Source == "" {
			return bad("field Source must not be empty")
		}
		if !filepath.IsAbs(m.Source) {
			return bad("invalid mount path: '%s' mount path must be absolute", m.Source)
		}
		s.Source, s.Propagation = filepath.Clean(m.Source), mount.PropagationRPrivate
		if bo := m.BindOptions; bo != nil {
			if bo.Propagation != "" {
				if !isPropagation(string(bo.Propagation)) {
					return bad("invalid propagation mode: %s", bo.Propagation)
				}
				s.Propagation = bo.Propagation
			}
			s.NonRecursive, s.CreateSource = bo.NonRecursive, bo.CreateMountpoint
		}
	case mount.TypeVolume:
		if m.BindOptions != nil {
			return bad("field BindOptions must not be specified")
		}
		if m.TmpfsOptions != nil {
			return bad("field TmpfsOptions must not be specified")
		}
		s.Source = m.Source
		if vo := m.VolumeOptions; vo != nil {
			s.NoCopy, s.Labels = vo.NoCopy, vo.Labels
			if vo.Subpath != "" {
				if filepath.IsAbs(vo.Subpath) || slices.Contains(strings.Split(filepath.ToSlash(vo.Subpath), "/"), "..") {
					return bad("subpath must be a relative path within the volume: %s", vo.Subpath)
				}
				if m.Source == "" {
					return bad("subpath is not supported for anonymous volumes")
				}
				s.Subpath = filepath.Clean(vo.Subpath)
			}
			if dc := vo.DriverConfig; dc != nil {
				s.Driver, s.DriverOptions = dc.Name, dc.Options
			}
		}
	case mount.TypeTmpfs:
		if m.Source != "" {
			return bad("field Source must not be specified")
		}
		if m.BindOptions != nil {
			return bad("field BindOptions must not be specified")
		}
		if m.VolumeOptions != nil {
			return bad("field VolumeOptions must not be specified")
		}
		var data []string
		if m.ReadOnly {
			data = append(data, "ro")
		}
		if to := m.TmpfsOptions; to != nil {
			if to.SizeBytes < 0 {
				return bad("invalid tmpfs size %d", to.SizeBytes)
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
					return bad("invalid option %v", o)
				}
			}
		}
		opts, err := tmpfsOptions(s.Target, data)
		if err != nil {
			return Spec{}, err
		}
		s.TmpfsOptions = opts
	}
	return s, nil
}

// ParseTmpfs reads a HostConfig.Tmpfs entry (--tmpfs target:options).
func ParseTmpfs(target, options string) (Spec, error) {
	if !filepath.IsAbs(target) {
		return Spec{}, errdefs.InvalidArgument("invalid tmpfs mount %q: mount path must be absolute", target)
	}
	var data []string
	if options != "" {
		data = strings.Split(options, ",")
	}
	target = filepath.Clean(target)
	opts, err := tmpfsOptions(target, data)
	if err != nil {
		return Spec{}, err
	}
	return Spec{Type: mount.TypeTmpfs, Target: target, TmpfsOptions: opts}, nil
}

func isRoot(p string) bool { return filepath.Clean(p) == "/" }

// tmpfsOptions puts Docker's defaults for a tmpfs mount before the user's
// options and merges them.
func tmpfsOptions(target string, data []string) ([]string, error) {
	opts, err := mergeTmpfsOptions(append([]string{"noexec", "nosuid", "nodev", "rprivate"}, data...))
	if err != nil {
		return nil, errdefs.InvalidArgument("tmpfs mount %s: %w", target, err)
	}
	return opts, nil
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
