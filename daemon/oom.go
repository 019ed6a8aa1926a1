package daemon

import (
	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/shim"
	"github.com/moby/moby/api/types/events"
)

// recordOOM carries the shim's word on the OOM killer into the state
// (inspect's State.OOMKilled) and fires Docker's oom event, which comes
// before die. The shim reads the memory cgroup's oom_kill count itself:
// by the time the daemon hears of the exit the shim may already have
// deleted the cgroup. Call with c locked, after SetExited.
func (d *Daemon) recordOOM(c *container.Container, exit *shim.Exit) {
	c.State.OOMKilled = exit.OOMKilled
	if exit.OOMKilled {
		d.containerEvent(c, events.ActionOOM, nil)
	}
}
