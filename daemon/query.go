package daemon

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/docker/go-units"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/storage"
)

// ContainerInspect renders GET /containers/{id}/json.
func (d *Daemon) ContainerInspect(ctx context.Context, ref string, size bool) (*api.InspectResponse, error) {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return nil, err
	}
	c.Lock()
	defer c.Unlock()
	r := &api.InspectResponse{
		ID: c.ID, Created: c.Created.Format(time.RFC3339Nano), Path: c.Path, Args: nonNil(c.Args),
		State: c.State.API(), Image: c.ImageID.String(),
		ResolvConfPath: d.containerDir(c.ID) + "/resolv.conf",
		HostnamePath:   d.containerDir(c.ID) + "/hostname",
		HostsPath:      d.containerDir(c.ID) + "/hosts",
		LogPath:        d.containerLogPath(c),
		Name:           c.Name, RestartCount: c.State.RestartCount, Driver: c.Driver, Platform: "linux",
		ExecIDs:    d.execIDs(c),
		HostConfig: c.HostConfig, Config: c.Config,
		Mounts:          d.mountPoints(c),
		NetworkSettings: d.networkSettings(c),
		GraphDriver:     &storage.DriverData{Name: "overlay2", Data: map[string]string{}},
	}
	if size {
		rw, _ := d.Snapshots.Usage(ctx, c.ID)
		r.SizeRw = &rw
	}
	return r, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ListOptions are GET /containers/json's parameters.
type ListOptions struct {
	All     bool
	Limit   int
	Size    bool
	Filters map[string][]string
}

// ContainerList renders `ps`.
func (d *Daemon) ContainerList(ctx context.Context, o ListOptions) ([]api.Summary, error) {
	for k := range o.Filters {
		switch k {
		case "id", "name", "label", "status", "exited", "ancestor", "before", "since", "is-task", "health", "network", "volume", "expose", "publish":
		default:
			return nil, errdefs.InvalidArgument("invalid filter '%s'", k)
		}
	}
	out := []api.Summary{}
	var before, since *container.Container
	if v := o.Filters["before"]; len(v) > 0 {
		b, err := d.Containers.Get(v[0])
		if err != nil {
			return nil, err
		}
		before = b
	}
	if v := o.Filters["since"]; len(v) > 0 {
		s, err := d.Containers.Get(v[0])
		if err != nil {
			return nil, err
		}
		since = s
	}
	for _, c := range d.Containers.List() {
		c.Lock()
		s, ok := d.summary(ctx, c, o, before, since)
		c.Unlock()
		if !ok {
			continue
		}
		out = append(out, s)
		if o.Limit > 0 && len(out) >= o.Limit {
			break
		}
	}
	return out, nil
}

func (d *Daemon) summary(ctx context.Context, c *container.Container, o ListOptions, before, since *container.Container) (api.Summary, bool) {
	st := c.State.API()
	running := c.State.Running() || c.State.Status == api.StateRestarting
	if !o.All && !running && len(o.Filters) == 0 && o.Limit <= 0 {
		return api.Summary{}, false
	}
	if !o.All && !running && o.Limit <= 0 && len(o.Filters["status"]) == 0 && len(o.Filters["exited"]) == 0 {
		return api.Summary{}, false
	}
	if before != nil && !c.Created.Before(before.Created) {
		return api.Summary{}, false
	}
	if since != nil && !c.Created.After(since.Created) {
		return api.Summary{}, false
	}
	if !matchAny(o.Filters["id"], func(v string) bool { return strings.HasPrefix(c.ID, v) }) ||
		!matchAny(o.Filters["name"], func(v string) bool { return strings.Contains(c.Name, strings.TrimPrefix(v, "/")) }) ||
		!matchAny(o.Filters["status"], func(v string) bool { return string(st.Status) == v }) ||
		!matchAny(o.Filters["exited"], func(v string) bool { return !running && fmt.Sprint(c.State.ExitCode) == v }) ||
		!matchAny(o.Filters["volume"], func(v string) bool { return d.mountsVolume(c, v) }) ||
		!matchAny(o.Filters["ancestor"], func(v string) bool {
			return c.Image == v || strings.HasPrefix(c.ImageID.Encoded(), strings.TrimPrefix(v, "sha256:"))
		}) {
		return api.Summary{}, false
	}
	for _, l := range o.Filters["label"] {
		k, v, hasV := strings.Cut(l, "=")
		got, ok := c.Config.Labels[k]
		if !ok || (hasV && got != v) {
			return api.Summary{}, false
		}
	}
	cmd := append(append([]string{}, c.Path), c.Args...)
	s := api.Summary{
		ID: c.ID, Names: []string{c.Name}, Image: c.Image, ImageID: c.ImageID.String(),
		Command: strings.Join(cmd, " "), Created: c.Created.Unix(),
		Ports: d.portSummaries(c), Labels: c.Config.Labels, State: st.Status, Status: statusString(c),
		Mounts: d.mountPoints(c), NetworkSettings: &api.NetworkSettingsSummary{Networks: d.networkSettings(c).Networks},
	}
	s.HostConfig.NetworkMode = string(c.HostConfig.NetworkMode)
	if o.Size {
		s.SizeRw, _ = d.Snapshots.Usage(ctx, c.ID)
	}
	return s, true
}

func matchAny(values []string, f func(string) bool) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		if f(v) {
			return true
		}
	}
	return false
}

// statusString is ps's STATUS column: "Up 3 seconds", "Exited (0) 2 minutes ago".
func statusString(c *container.Container) string {
	now := time.Now()
	switch c.State.Status {
	case api.StateRunning:
		return "Up " + units.HumanDuration(now.Sub(c.State.StartedAt))
	case api.StatePaused:
		return "Up " + units.HumanDuration(now.Sub(c.State.StartedAt)) + " (Paused)"
	case api.StateRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", c.State.ExitCode, units.HumanDuration(now.Sub(c.State.FinishedAt)))
	case api.StateExited:
		if c.State.FinishedAt.IsZero() {
			return "Created"
		}
		return fmt.Sprintf("Exited (%d) %s ago", c.State.ExitCode, units.HumanDuration(now.Sub(c.State.FinishedAt)))
	case api.StateDead:
		return "Dead"
	}
	if c.State.Removing {
		return "Removal In Progress"
	}
	return "Created"
}

// ContainerTop lists the container's processes.
func (d *Daemon) ContainerTop(ctx context.Context, ref, psArgs string) (api.TopResponse, error) {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return api.TopResponse{}, err
	}
	c.Lock()
	if !c.State.Running() {
		c.Unlock()
		return api.TopResponse{}, errdefs.Conflict("container %s is not running", c.ID)
	}
	rt, _, err := d.runtimeFor(c.HostConfig.Runtime)
	c.Unlock()
	if err != nil {
		return api.TopResponse{}, err
	}
	if psArgs == "" {
		psArgs = "-ef"
	}
	top, err := rt.Top(ctx, c.ID, psArgs)
	if err != nil {
		return api.TopResponse{}, err
	}
	d.containerEvent(c, events.ActionTop, nil)
	return top, nil
}

// ContainerRename renames a container; 409 if the name is taken.
func (d *Daemon) ContainerRename(ctx context.Context, ref, newName string) error {
	if newName == "" || !container.ValidName(newName) {
		return errdefs.InvalidArgument("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", newName)
	}
	c, err := d.Containers.Get(ref)
	if err != nil {
		return err
	}
	c.Lock()
	defer c.Unlock()
	if !strings.HasPrefix(newName, "/") {
		newName = "/" + newName
	}
	if newName == c.Name {
		return errdefs.InvalidArgument("Renaming a container with the same name as its current name")
	}
	old := c.Name
	if err := d.Containers.Rename(c, newName); err != nil {
		return err
	}
	d.containerEvent(c, events.ActionRename, map[string]string{"oldName": old})
	return nil
}

// Counts returns total, running, paused and stopped containers.
func (d *Daemon) Counts() (total, running, paused, stopped int) {
	list := d.Containers.List()
	for _, c := range list {
		c.Lock()
		switch c.State.Status {
		case api.StateRunning, api.StateRestarting:
			running++
		case api.StatePaused:
			paused++
		default:
			stopped++
		}
		c.Unlock()
	}
	return len(list), running, paused, stopped
}
