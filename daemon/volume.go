package daemon

// Volume hooks: named and anonymous volumes come with the volumes issue;
// binds, tmpfs and --mount type=bind|tmpfs already work through the
// runtime's spec generation.

import (
	"context"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
)

// prepareVolumes validates c's mounts and creates the volumes it needs
// (create time).
func (d *Daemon) prepareVolumes(ctx context.Context, c *container.Container) error {
	for _, m := range c.HostConfig.Mounts {
		if m.Type == mount.TypeVolume {
			return errdefs.NotImplemented("volume mounts are not supported yet")
		}
	}
	return nil
}

// resolveMounts returns the HostConfig the runtime should see: volume
// mounts rewritten as binds of the volumes' directories. Call with c locked.
func (d *Daemon) resolveMounts(ctx context.Context, c *container.Container) (*api.HostConfig, error) {
	return c.HostConfig, nil
}

// releaseVolumes drops c's references to volumes at removal, deleting its
// anonymous volumes when removeAnonymous (rm -v).
func (d *Daemon) releaseVolumes(ctx context.Context, c *container.Container, removeAnonymous bool) error {
	return nil
}

// mountPoints is inspect's and ps's Mounts.
func (d *Daemon) mountPoints(c *container.Container) []api.MountPoint {
	return []api.MountPoint{}
}
