package runtime

import (
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/errdefs"
)

// ResolveUser turns a Docker user string ("", "name", "uid", "uid:gid",
// "name:group") into the uid, gid and supplementary groups of the process,
// reading the container's /etc/passwd and /etc/group inside rootfs (symlinks
// cannot leave it). Numeric ids work without those files. groupAdd are extra
// groups by name or number (HostConfig.GroupAdd).
func ResolveUser(rootfs, userSpec string, groupAdd []string) (specs.User, error) {
	var u specs.User
	passwdPath, groupPath := "", ""
	if rootfs != "" {
		var err error
		if passwdPath, err = securejoin.SecureJoin(rootfs, "/etc/passwd"); err != nil {
			return u, errdefs.System("resolve /etc/passwd in %s: %w", rootfs, err)
		}
		if groupPath, err = securejoin.SecureJoin(rootfs, "/etc/group"); err != nil {
			return u, errdefs.System("resolve /etc/group in %s: %w", rootfs, err)
		}
	}
	eu, err := user.GetExecUserPath(userSpec, nil, passwdPath, groupPath)
	if err != nil {
		return u, userError(err)
	}
	u.UID = uint32(eu.Uid)
	u.GID = uint32(eu.Gid)
	u.AdditionalGids = []uint32{u.GID}
	// One group at a time: the library returns a set in random order, the
	// process should get the groups in the order they were asked for.
	var extra []int
	for _, g := range groupAdd {
		gids, err := user.GetAdditionalGroupsPath([]string{g}, groupPath)
		if err != nil {
			return u, userError(err)
		}
		extra = append(extra, gids...)
	}
	for _, g := range append(eu.Sgids, extra...) {
		gid := uint32(g)
		dup := false
		for _, have := range u.AdditionalGids {
			if have == gid {
				dup = true
				break
			}
		}
		if !dup {
			u.AdditionalGids = append(u.AdditionalGids, gid)
		}
	}
	return u, nil
}

// userError classes the errors of moby/sys/user as the caller's fault, keeping
// their text ("unable to find user x: no matching entries in passwd file").
func userError(err error) error {
	return errdefs.InvalidArgument("%w", err)
}
