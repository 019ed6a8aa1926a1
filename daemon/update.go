package daemon

import (
	"context"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/runtime"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
)

// ContainerUpdate is docker update: it merges the resources and restart
// policy of upd into the container's HostConfig (a zero field keeps the
// current value), applies the merged resources to a live container through
// the runtime, and stores them, so inspect and the next start see them. A
// stopped container only has its configuration changed. Errors read as
// dockerd's: 404 for an unknown container, 400 for an invalid value, 409
// for an update that conflicts with what is already set.
func (d *Daemon) ContainerUpdate(ctx context.Context, ref string, upd api.UpdateConfig) (api.UpdateResponse, error) {
	resp := api.UpdateResponse{Warnings: []string{}}
	if upd.RestartPolicy.Name != "" {
		if err := api.ValidateRestartPolicy(upd.RestartPolicy); err != nil {
			return resp, errdefs.InvalidArgument("%s", err.Error())
		}
	}
	// dockerd checks the request's own values first (400), then merges
	// (409 on a conflict); a swap limit alone is fine in an update, as the
	// memory limit it goes with may already be set.
	alone := upd.Resources
	if alone.Memory == 0 {
		alone.MemorySwap = 0
	}
	if _, err := runtime.Resources(alone); err != nil {
		return resp, err
	}
	c, err := d.Containers.Get(ref)
	if err != nil {
		return resp, err
	}
	c.Lock()
	defer c.Unlock()
	if c.State.Removing || c.State.Status == api.StateDead {
		// dockerd's words and class (an unclassified error, 500).
		return resp, errdefs.System(`Cannot update container %s: container is marked for removal and cannot be "update"`, c.ID)
	}
	hc := *c.HostConfig
	if err := mergeUpdate(&hc, upd); err != nil {
		return resp, errdefs.Conflict("Cannot update container %s: %s", c.ID, err.Error())
	}
	res, err := runtime.Resources(hc.Resources)
	if err != nil {
		return resp, err
	}
	// A container waiting for its restart policy has no process: the next
	// start applies the new values.
	if c.State.Running() && d.liveOf(c).shim != nil {
		rt, _, err := d.runtimeFor(hc.Runtime)
		if err != nil {
			return resp, err
		}
		if err := rt.Update(ctx, c.ID, res); err != nil {
			return resp, errdefs.System("Cannot update container %s: %s", c.ID, err.Error())
		}
	}
	old := c.HostConfig
	c.HostConfig = &hc
	if err := d.Containers.Save(c); err != nil {
		c.HostConfig = old
		return resp, errdefs.System("Cannot update container %s: save its configuration: %s", c.ID, err.Error())
	}
	d.containerEvent(c, events.ActionUpdate, nil)
	return resp, nil
}

// updateConflict is one of dockerd's refusals of an update that contradicts
// the container's current configuration.
type updateConflict string

func (e updateConflict) Error() string { return string(e) }

// mergeUpdate folds upd into hc the way dockerd's Container.UpdateContainer
// does: a zero value leaves the current one, NanoCPUs and an explicit CFS
// period or quota exclude each other across updates, a memory limit above
// the swap limit already set needs a new swap limit, and an auto-removed
// container keeps "no" as its restart policy. Values it cannot set at create
// either (kernel memory, realtime CPU) are ignored.
func mergeUpdate(hc *api.HostConfig, upd api.UpdateConfig) error {
	res, cur := upd.Resources, &hc.Resources
	switch {
	case res.NanoCPUs > 0 && cur.CPUPeriod > 0:
		return updateConflict("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set")
	case res.NanoCPUs > 0 && cur.CPUQuota > 0:
		return updateConflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
	case res.CPUPeriod > 0 && cur.NanoCPUs > 0:
		return updateConflict("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set")
	case res.CPUQuota > 0 && cur.NanoCPUs > 0:
		return updateConflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
	}
	if upd.RestartPolicy.Name != "" && hc.AutoRemove && !upd.RestartPolicy.IsNone() {
		return updateConflict("Restart policy cannot be updated because AutoRemove is enabled for the container")
	}
	if res.Memory != 0 {
		// dockerd stores twice the memory limit as the swap limit when
		// none was given at create; berth leaves that default implicit, so
		// make it explicit before comparing, as the value now must be kept.
		if cur.MemorySwap == 0 && cur.Memory > 0 {
			cur.MemorySwap = 2 * cur.Memory
		}
		if res.Memory > cur.MemorySwap && res.MemorySwap == 0 {
			return updateConflict("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time")
		}
		cur.Memory = res.Memory
	}
	if res.MemorySwap != 0 {
		cur.MemorySwap = res.MemorySwap
	}
	if res.MemoryReservation != 0 {
		cur.MemoryReservation = res.MemoryReservation
	}
	if res.BlkioWeight != 0 {
		cur.BlkioWeight = res.BlkioWeight
	}
	if res.CPUShares != 0 {
		cur.CPUShares = res.CPUShares
	}
	if res.NanoCPUs != 0 {
		cur.NanoCPUs = res.NanoCPUs
	}
	if res.CPUPeriod != 0 {
		cur.CPUPeriod = res.CPUPeriod
	}
	if res.CPUQuota != 0 {
		cur.CPUQuota = res.CPUQuota
	}
	if res.CpusetCpus != "" {
		cur.CpusetCpus = res.CpusetCpus
	}
	if res.CpusetMems != "" {
		cur.CpusetMems = res.CpusetMems
	}
	if res.PidsLimit != nil {
		v := *res.PidsLimit
		cur.PidsLimit = &v
	}
	if upd.RestartPolicy.Name != "" {
		hc.RestartPolicy = upd.RestartPolicy
	}
	return nil
}
