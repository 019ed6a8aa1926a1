package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
)

// CreateOptions is the body of POST /containers/create plus its name.
type CreateOptions struct {
	Name             string
	Config           *api.Config
	HostConfig       *api.HostConfig
	NetworkingConfig *network.NetworkingConfig
}

// ContainerCreate makes a container record and its writable layer.
// A missing image is a NotFound so that clients pull and retry.
func (d *Daemon) ContainerCreate(ctx context.Context, o CreateOptions) (api.CreateResponse, error) {
	cfg, hc := o.Config, o.HostConfig
	if cfg == nil {
		return api.CreateResponse{}, errdefs.InvalidArgument("config cannot be empty in order to create a container")
	}
	if hc == nil {
		hc = &api.HostConfig{}
	}
	if cfg.Image == "" {
		return api.CreateResponse{}, errdefs.InvalidArgument("no image specified")
	}
	hc.LogConfig = withDefaultLogConfig(hc.LogConfig, d.cfg.LogConfig)
	if err := validateHostConfig(hc); err != nil {
		return api.CreateResponse{}, err
	}
	if _, _, err := d.runtimeFor(hc.Runtime); err != nil {
		return api.CreateResponse{}, err
	}
	img, err := d.Images.Get(ctx, cfg.Image)
	if err != nil {
		return api.CreateResponse{}, err
	}
	name := o.Name
	if name != "" {
		if !container.ValidName(name) {
			return api.CreateResponse{}, errdefs.InvalidArgument("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
		}
		if !strings.HasPrefix(name, "/") {
			name = "/" + name
		}
	} else {
		name = container.GenerateName(d.Containers.NameInUse)
	}
	id := container.NewID()
	merged := mergeImageConfig(cfg, img)
	if merged.Hostname == "" {
		merged.Hostname = id[:12]
	}
	if len(merged.Entrypoint) == 0 && len(merged.Cmd) == 0 {
		return api.CreateResponse{}, errdefs.InvalidArgument("no command specified")
	}
	if hc.NetworkMode == "" || hc.NetworkMode == "default" {
		hc.NetworkMode = "bridge"
	}
	if hc.Runtime == "" {
		hc.Runtime = d.cfg.DefaultRuntime
	}
	args := append(append([]string{}, merged.Entrypoint...), merged.Cmd...)
	c := &container.Container{
		ID: id, Name: name, Created: time.Now().UTC(),
		Image: cfg.Image, ImageID: img.ID,
		Config: merged, HostConfig: hc,
		State: container.State{Status: api.StateCreated},
		Path:  args[0], Args: args[1:],
		Driver: "overlay2",
	}
	if err := d.prepareNetworking(ctx, c, o.NetworkingConfig); err != nil {
		return api.CreateResponse{}, err
	}
	if err := d.prepareVolumes(ctx, c); err != nil {
		return api.CreateResponse{}, err
	}
	if err := os.MkdirAll(d.containerDir(id), 0o710); err != nil {
		return api.CreateResponse{}, fmt.Errorf("create container directory: %w", err)
	}
	if _, err := d.Snapshots.Prepare(ctx, id, img.ChainID); err != nil {
		logErr("release volumes", d.releaseVolumes(context.WithoutCancel(ctx), c, true), "id", id)
		os.RemoveAll(d.containerDir(id))
		return api.CreateResponse{}, fmt.Errorf("prepare writable layer for %s: %w", id, err)
	}
	err = d.Containers.Add(c)
	for tries := 0; o.Name == "" && errdefs.IsConflict(err) && tries < 20; tries++ {
		// A concurrent create took the generated name: draw another.
		c.Name = container.GenerateName(d.Containers.NameInUse)
		err = d.Containers.Add(c)
	}
	if err != nil {
		d.Snapshots.Remove(context.WithoutCancel(ctx), id)
		logErr("release volumes", d.releaseVolumes(context.WithoutCancel(ctx), c, true), "id", id)
		os.RemoveAll(d.containerDir(id))
		return api.CreateResponse{}, err
	}
	d.containerEvent(c, events.ActionCreate, nil)
	return api.CreateResponse{ID: id, Warnings: []string{}}, nil
}

func validateHostConfig(hc *api.HostConfig) error {
	if err := api.ValidateRestartPolicy(hc.RestartPolicy); err != nil {
		return errdefs.InvalidArgument("%s", err.Error())
	}
	if hc.AutoRemove && !hc.RestartPolicy.IsNone() {
		return errdefs.InvalidArgument("can't create 'AutoRemove' container with restart policy")
	}
	return validateLogConfig(hc.LogConfig)
}

// mergeImageConfig applies the image's defaults under the request, as
// Docker's daemon does at create time.
func mergeImageConfig(req *api.Config, img *image.Image) *api.Config {
	c := *req
	ic := img.Config.Config
	c.Env = mergeEnv(ic.Env, req.Env)
	if c.Entrypoint == nil {
		c.Entrypoint = ic.Entrypoint
		if len(c.Cmd) == 0 {
			c.Cmd = ic.Cmd
		}
	} else if len(c.Entrypoint) == 1 && c.Entrypoint[0] == "" {
		// --entrypoint "" clears the image's entrypoint.
		c.Entrypoint = nil
	}
	if c.WorkingDir == "" {
		c.WorkingDir = ic.WorkingDir
	}
	if c.User == "" {
		c.User = ic.User
	}
	if c.StopSignal == "" {
		c.StopSignal = ic.StopSignal
	}
	if len(ic.ExposedPorts) > 0 {
		ports := network.PortSet{}
		for p := range ic.ExposedPorts {
			if port, err := network.ParsePort(p); err == nil {
				ports[port] = struct{}{}
			}
		}
		for p := range req.ExposedPorts {
			ports[p] = struct{}{}
		}
		c.ExposedPorts = ports
	}
	if len(ic.Volumes) > 0 {
		vols := map[string]struct{}{}
		for v := range ic.Volumes {
			vols[v] = struct{}{}
		}
		for v := range req.Volumes {
			vols[v] = struct{}{}
		}
		c.Volumes = vols
	}
	if len(ic.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range ic.Labels {
			labels[k] = v
		}
		for k, v := range req.Labels {
			labels[k] = v
		}
		c.Labels = labels
	}
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	if c.Healthcheck == nil && img.Config.Config.Healthcheck != nil {
		c.Healthcheck = img.Config.Config.Healthcheck
	}
	return &c
}

// mergeEnv overlays env on base by variable name, keeping base's order.
func mergeEnv(base, env []string) []string {
	out := append([]string{}, base...)
	idx := map[string]int{}
	for i, kv := range out {
		idx[envKey(kv)] = i
	}
	for _, kv := range env {
		if i, ok := idx[envKey(kv)]; ok {
			out[i] = kv
			continue
		}
		idx[envKey(kv)] = len(out)
		out = append(out, kv)
	}
	return out
}

func envKey(kv string) string {
	k, _, _ := strings.Cut(kv, "=")
	return k
}

func (d *Daemon) containerDir(id string) string {
	return filepath.Join(d.cfg.DataRoot, "containers", id)
}

func (d *Daemon) bundleDir(id string) string {
	return filepath.Join(d.cfg.ExecRoot, "containers", id)
}

// stateDir holds the shim's socket and exit record. It is kept short
// (exec-root/s/<20 hex>) because a unix socket path must fit in 108 bytes.
func (d *Daemon) stateDir(id string) string {
	return filepath.Join(d.cfg.ExecRoot, "s", id[:20])
}

func (d *Daemon) logPath(id string) string {
	return filepath.Join(d.containerDir(id), id+"-json.log")
}

// containerEvent publishes a container event with Docker's attributes:
// every label, name and image.
func (d *Daemon) containerEvent(c *container.Container, action events.Action, extra map[string]string) {
	attrs := map[string]string{}
	if c.Config != nil {
		for k, v := range c.Config.Labels {
			attrs[k] = v
		}
	}
	attrs["name"] = c.DisplayName()
	attrs["image"] = c.Image
	for k, v := range extra {
		attrs[k] = v
	}
	d.Events.Publish(events.ContainerEventType, action, c.ID, attrs)
}
