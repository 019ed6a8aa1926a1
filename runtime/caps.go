package runtime

import (
	"slices"
	"strings"

	"github.com/berth-dev/berth/errdefs"
)

// DefaultCapabilities is Docker's default capability set for containers.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN",
		"CAP_DAC_OVERRIDE",
		"CAP_FSETID",
		"CAP_FOWNER",
		"CAP_MKNOD",
		"CAP_NET_RAW",
		"CAP_SETGID",
		"CAP_SETUID",
		"CAP_SETFCAP",
		"CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT",
		"CAP_KILL",
		"CAP_AUDIT_WRITE",
	}
}

// normalizeCaps upper-cases names, adds the CAP_ prefix and checks each name
// against the capabilities the kernel knows. "ALL" stays "ALL".
func normalizeCaps(in []string, known []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, c := range in {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c == "" {
			continue
		}
		if c == "ALL" {
			out = append(out, c)
			continue
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !slices.Contains(known, c) {
			return nil, errdefs.InvalidArgument("unknown capability: %q", c)
		}
		out = append(out, c)
	}
	return out, nil
}

// tweakCapabilities applies CapAdd and CapDrop to the default set the way
// Docker does: "ALL" in adds means every capability minus the drops, "ALL"
// in drops means only the adds; privileged means every capability. all is
// every capability the kernel knows, avail those the daemon itself holds:
// "every" means every available one (dockerd asks for all and runc fails
// where the daemon lacks some), and adding one that is not available is
// refused here rather than by runc.
func tweakCapabilities(adds, drops []string, privileged bool, all, avail []string) ([]string, error) {
	if privileged {
		return slices.Clone(avail), nil
	}
	add, err := normalizeCaps(adds, all)
	if err != nil {
		return nil, err
	}
	drop, err := normalizeCaps(drops, all)
	if err != nil {
		return nil, err
	}
	var caps []string
	switch {
	case slices.Contains(add, "ALL"):
		for _, c := range avail {
			if !slices.Contains(drop, c) {
				caps = append(caps, c)
			}
		}
	case slices.Contains(drop, "ALL"):
		caps = append(caps, add...)
	default:
		for _, c := range DefaultCapabilities() {
			if !slices.Contains(drop, c) {
				caps = append(caps, c)
			}
		}
		caps = append(caps, add...)
	}
	for _, c := range add {
		if c != "ALL" && !slices.Contains(avail, c) {
			return nil, errdefs.InvalidArgument("capability %s is not in the daemon's bounding set: no container can get it on this host", c)
		}
	}
	// De-duplicate, keeping first occurrence order.
	seen := map[string]bool{}
	out := caps[:0]
	for _, c := range caps {
		if c == "ALL" || seen[c] {
			continue
		}
		seen[c] = true
		out = append(out, c)
	}
	return out, nil
}
