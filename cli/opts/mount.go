package opts

import (
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/mount"
)

// ParseMount parses one --mount value, a CSV list of key=value fields
// (type, source|src, target|destination|dst, readonly|ro, bind-propagation, volume-nocopy, volume-opt, tmpfs-size, tmpfs-mode ...).
func ParseMount(value string) (mount.Mount, error) {
	r := csv.NewReader(strings.NewReader(value))
	fields, err := r.Read()
	if err != nil {
		return mount.Mount{}, err
	}
	m := mount.Mount{Type: mount.TypeVolume}
	// type first: the other keys depend on it
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		if strings.ToLower(strings.TrimSpace(k)) == "type" {
			m.Type = mount.Type(strings.ToLower(v))
		}
	}
	volOpts := func() *mount.VolumeOptions {
		if m.VolumeOptions == nil {
			m.VolumeOptions = &mount.VolumeOptions{}
		}
		return m.VolumeOptions
	}
	bindOpts := func() *mount.BindOptions {
		if m.BindOptions == nil {
			m.BindOptions = &mount.BindOptions{}
		}
		return m.BindOptions
	}
	tmpfsOpts := func() *mount.TmpfsOptions {
		if m.TmpfsOptions == nil {
			m.TmpfsOptions = &mount.TmpfsOptions{}
		}
		return m.TmpfsOptions
	}
	for _, f := range fields {
		k, v, hasValue := strings.Cut(f, "=")
		key := strings.ToLower(strings.TrimSpace(k))
		if !hasValue {
			switch key {
			case "readonly", "ro", "volume-nocopy", "bind-nonrecursive":
				v = "true"
			default:
				return mount.Mount{}, fmt.Errorf("invalid field '%s' must be a key=value pair", f)
			}
		}
		switch key {
		case "type":
		case "source", "src":
			m.Source = v
		case "target", "dst", "destination":
			m.Target = v
		case "readonly", "ro":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return mount.Mount{}, fmt.Errorf("invalid value for %s: %s", key, v)
			}
			m.ReadOnly = b
		case "consistency":
			m.Consistency = mount.Consistency(strings.ToLower(v))
		case "bind-propagation":
			bindOpts().Propagation = mount.Propagation(strings.ToLower(v))
		case "bind-nonrecursive":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return mount.Mount{}, fmt.Errorf("invalid value for %s: %s", key, v)
			}
			bindOpts().NonRecursive = b
		case "bind-create-src":
			bindOpts().CreateMountpoint = true
		case "volume-nocopy":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return mount.Mount{}, fmt.Errorf("invalid value for volume-nocopy: %s", v)
			}
			volOpts().NoCopy = b
		case "volume-subpath":
			volOpts().Subpath = v
		case "volume-label":
			vo := volOpts()
			if vo.Labels == nil {
				vo.Labels = map[string]string{}
			}
			lk, lv, _ := strings.Cut(v, "=")
			vo.Labels[lk] = lv
		case "volume-driver":
			vo := volOpts()
			if vo.DriverConfig == nil {
				vo.DriverConfig = &mount.Driver{}
			}
			vo.DriverConfig.Name = v
		case "volume-opt":
			vo := volOpts()
			if vo.DriverConfig == nil {
				vo.DriverConfig = &mount.Driver{}
			}
			if vo.DriverConfig.Options == nil {
				vo.DriverConfig.Options = map[string]string{}
			}
			ok, ov, _ := strings.Cut(v, "=")
			vo.DriverConfig.Options[ok] = ov
		case "tmpfs-size":
			n, err := units.RAMInBytes(v)
			if err != nil {
				return mount.Mount{}, fmt.Errorf("invalid value for %s: %s", key, v)
			}
			tmpfsOpts().SizeBytes = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return mount.Mount{}, fmt.Errorf("invalid value for %s: %s", key, v)
			}
			tmpfsOpts().Mode = os.FileMode(n)
		default:
			return mount.Mount{}, fmt.Errorf("unexpected key '%s' in '%s'", key, f)
		}
	}
	if m.Target == "" {
		return mount.Mount{}, fmt.Errorf("target is required")
	}
	switch m.Type {
	case mount.TypeBind:
		if m.Source == "" {
			return mount.Mount{}, fmt.Errorf("source is required when specifying bind mount")
		}
		if m.VolumeOptions != nil {
			return mount.Mount{}, fmt.Errorf("cannot mix 'volume-*' options with mount type '%s'", m.Type)
		}
	case mount.TypeVolume:
		if m.BindOptions != nil {
			return mount.Mount{}, fmt.Errorf("cannot mix 'bind-*' options with mount type '%s'", m.Type)
		}
	case mount.TypeTmpfs:
		if m.Source != "" {
			return mount.Mount{}, fmt.Errorf("source is not supported for tmpfs mounts")
		}
	default:
		return mount.Mount{}, fmt.Errorf("invalid mount type: %s", m.Type)
	}
	if m.Type != mount.TypeTmpfs && m.TmpfsOptions != nil {
		return mount.Mount{}, fmt.Errorf("cannot mix 'tmpfs-*' options with mount type '%s'", m.Type)
	}
	return m, nil
}
