package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/shim"
	"github.com/berth-dev/berth/snapshot"
	api "github.com/moby/moby/api/types/container"
)

// restore re-adopts containers after a daemon restart: a live shim is
// reconnected; an exit recorded while no daemon listened is applied now;
// a container whose shim vanished without a record (a reboot) is marked
// exited and brought back if its restart policy says so.
func (d *Daemon) restore(ctx context.Context) {
	d.removeOrphanLayers(ctx)
	for _, c := range d.Containers.List() {
		c.Lock()
		st := c.State.Status
		if c.State.Removing {
			c.State.Removing = false
			logErr("save container", d.Containers.Save(c), "id", c.ID)
		}
		c.Unlock()
		switch st {
		case api.StateRunning, api.StatePaused, api.StateRestarting:
		case api.StateExited:
			// Like dockerd at start: always (even if stopped by hand),
			// unless-stopped and on-failure (after a failure) come back.
			c.Lock()
			if container.RestartOnBoot(c.HostConfig.RestartPolicy, &c.State) {
				logErr("restart container on daemon start", d.start(ctx, c), "id", c.ID)
			}
			c.Unlock()
			continue
		default:
			continue
		}
		stateDir := d.stateDir(c.ID)
		if client, err := shim.Connect(ctx, stateDir); err == nil {
			rt, _, rerr := d.runtimeFor(c.HostConfig.Runtime)
			if rerr != nil {
				client.Close()
				continue
			}
			c.Lock()
			l := d.liveOf(c)
			l.shim, l.rt = client, rt
			if c.State.Status == api.StateRunning {
				// Only a commit freezes a container without recording it
				// as paused; a daemon killed mid-commit left it frozen.
				if status, _, err := rt.State(ctx, c.ID); err == nil && status == "paused" {
					logErr("thaw a container frozen by an interrupted commit", rt.Resume(ctx, c.ID), "id", c.ID)
				}
			}
			c.Unlock()
			slog.Info("adopted running container", "id", c.ID[:12])
			go d.monitor(c, l, client)
			continue
		}
		if exit, err := shim.ReadExit(stateDir); err == nil {
			slog.Info("container exited while berthd was down", "id", c.ID[:12], "code", exit.Code)
			d.handleExit(c, exit, false)
			continue
		} else if !errdefs.IsNotFound(err) {
			logErr("read exit record", err, "id", c.ID)
		}
		// No shim and no exit record: the host rebooted or the shim was killed.
		c.Lock()
		snapshot.Unmount(filepath.Join(d.bundleDir(c.ID), "rootfs"))
		if rt, _, err := d.runtimeFor(c.HostConfig.Runtime); err == nil {
			rt.Delete(ctx, c.ID, true)
		}
		c.State.SetExited(255, time.Now().UTC(), "")
		restart := container.RestartOnBoot(c.HostConfig.RestartPolicy, &c.State)
		logErr("save container", d.Containers.Save(c), "id", c.ID)
		if restart {
			if err := d.start(ctx, c); err != nil {
				logErr("restart container on boot", err, "id", c.ID)
			}
		}
		c.Unlock()
	}
}

// removeOrphanLayers deletes writable layers left by a crash between
// preparing a container's layer and recording the container.
func (d *Daemon) removeOrphanLayers(ctx context.Context) {
	var orphans []string
	err := d.Snapshots.Walk(ctx, func(in snapshot.Info) error {
		if in.Kind == snapshot.KindActive && isContainerID(in.Key) {
			if _, err := d.Containers.Get(in.Key); errdefs.IsNotFound(err) {
				orphans = append(orphans, in.Key)
			}
		}
		return nil
	})
	logErr("walk snapshots", err)
	for _, key := range orphans {
		slog.Info("removing the writable layer of a container that was never recorded", "key", key[:12])
		logErr("remove orphan layer", d.Snapshots.Remove(ctx, key), "key", key)
	}
}

func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}
