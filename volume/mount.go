package volume

import (
	"path/filepath"
	"sort"
	"strings"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/snapshot"
)

// Options the local driver takes (docker volume create -o): the file
// system type, the device and mount(8)'s option list.
var driverOptionKeys = map[string]bool{"type": true, "device": true, "o": true}

// parseDriverOptions checks local driver options and returns the mount
// they describe (zero Type when there is none).
func parseDriverOptions(opts map[string]string) (snapshot.Mount, error) {
	var m snapshot.Mount
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !driverOptionKeys[k] {
			return m, errdefs.InvalidArgument("invalid option: %q", k)
		}
	}
	if len(opts) == 0 {
		return m, nil
	}
	typ, device, o := opts["type"], opts["device"], opts["o"]
	if typ == "" {
		return m, errdefs.InvalidArgument("missing required option: \"type\"")
	}
	if device == "" {
		return m, errdefs.InvalidArgument("missing required option: \"device\"")
	}
	m.Type, m.Source = typ, device
	if o != "" {
		m.Options = strings.Split(o, ",")
	}
	bind := false
	for _, opt := range m.Options {
		if opt == "bind" || opt == "rbind" {
			bind = true
		}
	}
	if bind && !filepath.IsAbs(device) {
		return m, errdefs.InvalidArgument("invalid device %q: a bind device must be an absolute host path", device)
	}
	return m, nil
}

// isMountpoint reports whether path is a mount point in this mount namespace.
func isMountpoint(path string) (bool, error) {
	mounted, err := snapshot.MountPoints()
	if err != nil {
		return false, err
	}
	return mounted[filepath.Clean(path)], nil
}

// unmountData unmounts whatever is mounted at a volume's _data and makes
// sure nothing is left there.
func unmountData(path string) error {
	mounted, err := isMountpoint(path)
	if err != nil || !mounted {
		return err
	}
	if err := snapshot.Unmount(path); err != nil {
		return err
	}
	if still, err := isMountpoint(path); err != nil {
		return err
	} else if still {
		return errdefs.System("unmount %s: still mounted", path)
	}
	return nil
}
