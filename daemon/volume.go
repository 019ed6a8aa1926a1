package daemon

// Volumes: a container's mounts are planned once, at create (binds,
// --mount, --volumes-from, the image's and -v's anonymous volumes), kept in
// containers/<id>/mounts.json, and turned into bind mounts of volume
// directories before each start, so the runtime only ever sees binds and
// tmpfs.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/mount"
	volumetypes "github.com/moby/moby/api/types/volume"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/volume"
	volumemounts "github.com/berth-dev/berth/volume/mounts"
)

// mountPoint is one planned mount of a container (Docker's MountPoint).
type mountPoint struct {
	Type        mount.Type
	Name        string `json:",omitempty"` // volume
	Source      string `json:",omitempty"` // bind: host path
	Destination string
	RW          bool
	Mode        string `json:",omitempty"` // inspect's Mode: the -v options as given
	Propagation string `json:",omitempty"`
	NoCopy      bool   `json:",omitempty"`
	Subpath     string `json:",omitempty"`
	// Populated is set once a start considered copying the image's
	// content in: Docker copies for a container's first start only.
	Populated bool `json:",omitempty"`
	// Own is set for mounts the runtime already gets from the container's
	// own HostConfig (host-path Binds, bind and tmpfs Mounts).
	Own bool `json:",omitempty"`

	create *volume.CreateOptions // labels and options for a volume --mount or -v may create
}

func (d *Daemon) mountsFile(id string) string {
	return filepath.Join(d.containerDir(id), "mounts.json")
}

// prepareVolumes validates c's mounts and creates the volumes it needs
// (create time).
func (d *Daemon) prepareVolumes(ctx context.Context, c *container.Container) error {
	plan, err := d.planMounts(c)
	if err != nil {
		return err
	}
	var acquired, made []string
	undo := func() {
		ctx := context.WithoutCancel(ctx)
		for _, name := range acquired {
			d.Volumes.Release(ctx, name, c.ID)
		}
		for _, name := range made {
			if v, err := d.Volumes.Get(ctx, name); err == nil && v.Anonymous() {
				d.Volumes.Remove(ctx, name)
			}
		}
	}
	for _, mp := range plan {
		if mp.Type != mount.TypeVolume {
			continue
		}
		v, created, err := d.Volumes.Acquire(ctx, mp.Name, c.ID, mp.create)
		if err != nil {
			undo()
			if errdefs.IsNotFound(err) {
				return errdefs.NotFound("create %s: volume %s of %s: no such volume", c.DisplayName(), mp.Name, mp.Destination)
			}
			return err
		}
		acquired = append(acquired, mp.Name)
		if created {
			made = append(made, mp.Name)
			d.volumeEvent(v.Name, events.ActionCreate, nil)
		}
	}
	data, err := json.Marshal(plan)
	if err == nil {
		if err = os.MkdirAll(d.containerDir(c.ID), 0o710); err == nil {
			err = writeFileAtomic(d.mountsFile(c.ID), data, 0o600)
		}
	}
	if err != nil {
		undo()
		return errdefs.System("record mounts of %s: %w", c.ID, err)
	}
	return nil
}

// planMounts works out c's mounts in Docker's order of precedence: binds
// and --mount first, then --volumes-from where they leave a destination
// free, then --tmpfs, then anonymous volumes for Config.Volumes (the
// image's VOLUMEs and -v /path).
func (d *Daemon) planMounts(c *container.Container) ([]mountPoint, error) {
	hc := c.HostConfig
	var plan []mountPoint
	taken := map[string]bool{}
	add := func(mp mountPoint) error {
		if !filepath.IsAbs(mp.Destination) {
			return errdefs.InvalidArgument("invalid mount config: invalid mount path: '%s' mount path must be absolute", mp.Destination)
		}
		mp.Destination = filepath.Clean(mp.Destination)
		if mp.Destination == "/" {
			return errdefs.InvalidArgument("invalid mount config: destination can't be '/'")
		}
		if taken[mp.Destination] {
			return errdefs.InvalidArgument("Duplicate mount point: %s", mp.Destination)
		}
		taken[mp.Destination] = true
		plan = append(plan, mp)
		return nil
	}
	for _, b := range hc.Binds {
		mp, err := parseBindSpec(b)
		if err != nil {
			return nil, err
		}
		if err := add(mp); err != nil {
			return nil, err
		}
	}
	for _, m := range hc.Mounts {
		mp, err := parseMountSpec(m)
		if err != nil {
			return nil, err
		}
		if err := add(mp); err != nil {
			return nil, err
		}
	}
	for _, from := range hc.VolumesFrom {
		ref, mode, _ := strings.Cut(from, ":")
		if mode != "" && mode != "ro" && mode != "rw" {
			return nil, errdefs.InvalidArgument("invalid mode for volumes-from: %s", mode)
		}
		src, err := d.Containers.Get(ref)
		if err != nil {
			return nil, err
		}
		if src.ID == c.ID {
			return nil, errdefs.InvalidArgument("container %s cannot take volumes from itself", ref)
		}
		theirs, err := d.loadMounts(src.ID)
		if err != nil {
			return nil, err
		}
		for _, mp := range theirs {
			if mp.Type == mount.TypeTmpfs || taken[mp.Destination] {
				continue
			}
			mp.Own, mp.Populated = false, false
			if mode != "" {
				mp.RW = mode == "rw"
				mp.Mode = mode
			}
			taken[mp.Destination] = true
			plan = append(plan, mp)
		}
	}
	for dst := range hc.Tmpfs {
		taken[filepath.Clean(dst)] = true
	}
	dsts := make([]string, 0, len(c.Config.Volumes))
	for dst := range c.Config.Volumes {
		dsts = append(dsts, dst)
	}
	sort.Strings(dsts)
	for _, dst := range dsts {
		if !filepath.IsAbs(dst) {
			return nil, errdefs.InvalidArgument("invalid volume specification: '%s': mount path must be absolute", dst)
		}
		if taken[filepath.Clean(dst)] {
			continue
		}
		name := volume.RandomName()
		if err := add(mountPoint{Type: mount.TypeVolume, Name: name, Destination: dst, RW: true,
			create: &volume.CreateOptions{Labels: map[string]string{volume.AnonymousLabel: ""}}}); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// parseBindSpec plans a HostConfig.Binds entry (-v), parsed by the parser
// the runtime uses too.
func parseBindSpec(raw string) (mountPoint, error) {
	spec, err := volumemounts.ParseBind(raw)
	if err != nil {
		return mountPoint{}, err
	}
	mp, err := planMount(spec)
	if err != nil {
		return mountPoint{}, err
	}
	if mp.Type == mount.TypeVolume && spec.Source != "" && mp.Mode == "" {
		mp.Mode = "z" // what Docker shows for a -v volume without options
	}
	return mp, nil
}

// parseMountSpec plans a HostConfig.Mounts entry (--mount).
func parseMountSpec(m mount.Mount) (mountPoint, error) {
	spec, err := volumemounts.ParseMount(m)
	if err != nil {
		return mountPoint{}, err
	}
	mp, err := planMount(spec)
	if err != nil {
		return mountPoint{}, err
	}
	if mp.Type == mount.TypeVolume {
		mp.Mode = "z" // what Docker shows for every --mount volume
	}
	return mp, nil
}

// planMount turns a parsed mount into the container's record. Binds and
// tmpfs mounts stay the runtime's (Own); a volume gets its name, a random
// one when anonymous, and what to create it with. The volume's name and
// driver are checked here, as Docker's volume service (not its parser)
// checks them.
func planMount(s volumemounts.Spec) (mountPoint, error) {
	mp := mountPoint{Type: s.Type, Destination: s.Target, RW: !s.ReadOnly, Mode: s.Mode}
	switch s.Type {
	case mount.TypeBind:
		mp.Source, mp.Propagation, mp.Own = s.Source, string(s.Propagation), true
	case mount.TypeTmpfs:
		mp.Own = true
	case mount.TypeVolume:
		if s.Driver != "" && s.Driver != volume.DefaultDriver {
			return mountPoint{}, errdefs.InvalidArgument("invalid mount config for type \"volume\": volume driver %q is not supported: berthd has only %q", s.Driver, volume.DefaultDriver)
		}
		mp.NoCopy, mp.Subpath = s.NoCopy, s.Subpath
		create := &volume.CreateOptions{Labels: s.Labels, Options: s.DriverOptions}
		if s.Source == "" {
			mp.Name = volume.RandomName()
			labels := map[string]string{volume.AnonymousLabel: ""}
			for k, v := range s.Labels {
				labels[k] = v
			}
			create.Labels = labels
		} else {
			if !volume.ValidName(s.Source) {
				return mountPoint{}, errdefs.InvalidArgument("create %s: %q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path", s.Source, s.Source)
			}
			mp.Name = s.Source
		}
		mp.create = create
	default:
		return mountPoint{}, errdefs.InvalidArgument("invalid mount config: mount type %q is not supported", s.Type)
	}
	return mp, nil
}

// loadMounts reads the plan prepareVolumes recorded. A container made
// before volumes existed has none: its binds still reach the runtime.
func (d *Daemon) loadMounts(id string) ([]mountPoint, error) {
	data, err := os.ReadFile(d.mountsFile(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, errdefs.System("read mounts of %s: %w", id, err)
	}
	var plan []mountPoint
	if err := json.Unmarshal(data, &plan); err != nil {
		return nil, errdefs.System("decode mounts of %s: %w", id, err)
	}
	return plan, nil
}

// resolveMounts returns the HostConfig the runtime should see: volume
// mounts rewritten as binds of the volumes' directories. Call with c locked.
// At a container's first start an empty volume (even one mounted
// read-only) first receives the image's content at its destination (unless nocopy), as
// Docker does.
func (d *Daemon) resolveMounts(ctx context.Context, c *container.Container) (*api.HostConfig, error) {
	plan, err := d.loadMounts(c.ID)
	if err != nil {
		return nil, err
	}
	hc := *c.HostConfig
	hc.Binds = nil
	for _, b := range c.HostConfig.Binds {
		// Host paths stay binds; one that no longer parses goes on to fail
		// in the runtime with the parser's message.
		if spec, err := volumemounts.ParseBind(b); err != nil || spec.Type == mount.TypeBind {
			hc.Binds = append(hc.Binds, b)
		}
	}
	hc.Mounts = nil
	for _, m := range c.HostConfig.Mounts {
		if m.Type != mount.TypeVolume {
			hc.Mounts = append(hc.Mounts, m)
		}
	}
	rootfs := filepath.Join(d.bundleDir(c.ID), "rootfs")
	populated := false
	for i, mp := range plan {
		if mp.Own {
			continue
		}
		src := mp.Source
		prop := mp.Propagation
		if mp.Type == mount.TypeVolume {
			dataPath, err := d.Volumes.Mount(ctx, mp.Name)
			if err != nil {
				return nil, fmt.Errorf("start %s: %w", c.ID, err)
			}
			src = dataPath
			if mp.Subpath != "" {
				if src, err = securejoin.SecureJoin(dataPath, mp.Subpath); err != nil {
					return nil, errdefs.InvalidArgument("start %s: subpath %s of volume %s: %v", c.ID, mp.Subpath, mp.Name, err)
				}
				if _, err := os.Stat(src); err != nil {
					return nil, errdefs.InvalidArgument("start %s: subpath %s of volume %s does not exist", c.ID, mp.Subpath, mp.Name)
				}
			} else if !mp.NoCopy && !mp.Populated {
				// As Docker: also for a read-only mount, and only at the
				// container's first start.
				from, err := securejoin.SecureJoin(rootfs, mp.Destination)
				if err != nil {
					return nil, errdefs.System("start %s: resolve %s in the image: %w", c.ID, mp.Destination, err)
				}
				if _, err := d.Volumes.Populate(ctx, mp.Name, from); err != nil {
					return nil, fmt.Errorf("start %s: %w", c.ID, err)
				}
				plan[i].Populated, populated = true, true
			}
			prop = ""
		}
		bo := &mount.BindOptions{Propagation: mount.Propagation(prop), CreateMountpoint: true}
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: src, Target: mp.Destination, ReadOnly: !mp.RW, BindOptions: bo})
		if mp.Type == mount.TypeVolume {
			rw := "true"
			if !mp.RW {
				rw = "false"
			}
			d.volumeEvent(mp.Name, events.ActionMount, map[string]string{
				"container": c.ID, "destination": mp.Destination, "propagation": prop, "read/write": rw,
			})
		}
	}
	if populated {
		if data, err := json.Marshal(plan); err != nil {
			logErr("record mounts", err, "id", c.ID)
		} else {
			logErr("record mounts", writeFileAtomic(d.mountsFile(c.ID), data, 0o600), "id", c.ID)
		}
	}
	return &hc, nil
}

// releaseVolumes drops c's references to volumes at removal, deleting its
// anonymous volumes when removeAnonymous (rm -v). An anonymous volume
// another container still uses (--volumes-from) is kept, as Docker does.
func (d *Daemon) releaseVolumes(ctx context.Context, c *container.Container, removeAnonymous bool) error {
	plan, err := d.loadMounts(c.ID)
	if err != nil {
		return err
	}
	var errs []error
	for _, mp := range plan {
		if mp.Type != mount.TypeVolume {
			continue
		}
		if err := d.Volumes.Release(ctx, mp.Name, c.ID); err != nil {
			errs = append(errs, err)
		}
		if !removeAnonymous {
			continue
		}
		v, err := d.Volumes.Get(ctx, mp.Name)
		if err != nil || !v.Anonymous() {
			continue
		}
		if err := d.Volumes.Remove(ctx, mp.Name); err == nil {
			d.volumeEvent(mp.Name, events.ActionDestroy, nil)
		} else if !errdefs.IsConflict(err) && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// mountPoints is inspect's and ps's Mounts.
func (d *Daemon) mountPoints(c *container.Container) []api.MountPoint {
	out := []api.MountPoint{}
	plan, err := d.loadMounts(c.ID)
	if err != nil {
		logErr("read mounts", err, "id", c.ID)
		return out
	}
	for _, mp := range plan {
		m := api.MountPoint{Type: mp.Type, Destination: mp.Destination, Mode: mp.Mode, RW: mp.RW, Propagation: mount.Propagation(mp.Propagation)}
		switch mp.Type {
		case mount.TypeVolume:
			m.Name, m.Source, m.Driver = mp.Name, d.Volumes.DataPath(mp.Name), volume.DefaultDriver
			if mp.Subpath != "" {
				m.Source = filepath.Join(m.Source, mp.Subpath)
			}
		case mount.TypeBind:
			m.Source = mp.Source
		}
		out = append(out, m)
	}
	return out
}

// mountsVolume is ps's volume filter: c mounts a volume of that name, or
// anything at that destination.
func (d *Daemon) mountsVolume(c *container.Container, ref string) bool {
	for _, m := range d.mountPoints(c) {
		if (m.Type == mount.TypeVolume && m.Name == ref) || m.Destination == ref {
			return true
		}
	}
	return false
}

// restoreVolumes takes the references of every stored container again
// (they live in memory), after a daemon start.
func (d *Daemon) restoreVolumes(ctx context.Context) {
	for _, c := range d.Containers.List() {
		plan, err := d.loadMounts(c.ID)
		if err != nil {
			logErr("restore volume references", err, "id", c.ID)
			continue
		}
		for _, mp := range plan {
			if mp.Type != mount.TypeVolume {
				continue
			}
			if _, _, err := d.Volumes.Acquire(ctx, mp.Name, c.ID, nil); err != nil {
				logErr("restore volume reference", err, "id", c.ID, "volume", mp.Name)
			}
		}
	}
}

func (d *Daemon) volumeEvent(name string, action events.Action, extra map[string]string) {
	attrs := map[string]string{"driver": volume.DefaultDriver}
	for k, v := range extra {
		attrs[k] = v
	}
	d.Events.Publish(events.VolumeEventType, action, name, attrs)
}

// VolumeCreate answers POST /volumes/create.
func (d *Daemon) VolumeCreate(ctx context.Context, req volumetypes.CreateRequest) (volumetypes.Volume, error) {
	if req.ClusterVolumeSpec != nil {
		return volumetypes.Volume{}, errdefs.NotImplemented("create %s: cluster volumes need swarm, which berthd does not run", req.Name)
	}
	v, created, err := d.Volumes.Create(ctx, req.Name, volume.CreateOptions{Driver: req.Driver, Labels: req.Labels, Options: req.DriverOpts})
	if err != nil {
		return volumetypes.Volume{}, err
	}
	if created {
		d.volumeEvent(v.Name, events.ActionCreate, nil)
	}
	return d.volumeAPI(ctx, v, false), nil
}

// VolumeInspect answers GET /volumes/{name}.
func (d *Daemon) VolumeInspect(ctx context.Context, name string) (volumetypes.Volume, error) {
	v, err := d.Volumes.Get(ctx, name)
	if err != nil {
		return volumetypes.Volume{}, errdefs.NotFound("get %s: no such volume", name)
	}
	return d.volumeAPI(ctx, v, false), nil
}

// volumeAPI renders a record as the Engine API's Volume.
func (d *Daemon) volumeAPI(ctx context.Context, v *volume.Volume, usage bool) volumetypes.Volume {
	out := volumetypes.Volume{
		Name: v.Name, Driver: v.Driver, Mountpoint: d.Volumes.DataPath(v.Name),
		CreatedAt: v.CreatedAt.Format(time.RFC3339), Labels: v.Labels, Options: v.Options, Scope: "local",
	}
	if usage {
		out.UsageData = &volumetypes.UsageData{RefCount: int64(len(d.Volumes.Users(v.Name))), Size: d.Volumes.Size(ctx, v.Name)}
	}
	return out
}

// VolumeList answers GET /volumes with the filters dangling, name (a
// regular expression), label and driver.
func (d *Daemon) VolumeList(ctx context.Context, filters map[string][]string) (volumetypes.ListResponse, error) {
	match, err := volumeFilter(filters, "dangling", "name", "label", "driver")
	if err != nil {
		return volumetypes.ListResponse{}, err
	}
	resp := volumetypes.ListResponse{Volumes: []volumetypes.Volume{}, Warnings: []string{}}
	for _, v := range d.Volumes.List(ctx) {
		if match(v, len(d.Volumes.Users(v.Name)) > 0) {
			resp.Volumes = append(resp.Volumes, d.volumeAPI(ctx, v, false))
		}
	}
	return resp, nil
}

// volumeFilter checks the filter keys and returns the predicate.
func volumeFilter(filters map[string][]string, allowed ...string) (func(v *volume.Volume, inUse bool) bool, error) {
	for k, vals := range filters {
		if !slices.Contains(allowed, k) {
			return nil, errdefs.InvalidArgument("invalid filter '%s'", k)
		}
		if k == "dangling" || k == "all" {
			for _, val := range vals {
				switch strings.ToLower(val) {
				case "true", "1", "false", "0":
				default:
					return nil, errdefs.InvalidArgument("invalid filter '%s=%s'", k, val)
				}
			}
		}
	}
	isTrue := func(s string) bool { return s == "true" || s == "1" }
	return func(v *volume.Volume, inUse bool) bool {
		for _, val := range filters["dangling"] {
			if isTrue(strings.ToLower(val)) == inUse {
				return false
			}
		}
		if !matchAny(filters["name"], func(s string) bool {
			// A regular expression, as Docker's filters match; an invalid
			// one matches nothing.
			re, err := regexp.Compile(s)
			return err == nil && re.MatchString(v.Name)
		}) ||
			!matchAny(filters["driver"], func(s string) bool { return v.Driver == s }) {
			return false
		}
		for _, l := range filters["label"] {
			k, want, hasV := strings.Cut(l, "=")
			got, ok := v.Labels[k]
			if !ok || (hasV && got != want) {
				return false
			}
		}
		for _, l := range filters["label!"] {
			k, want, hasV := strings.Cut(l, "=")
			if got, ok := v.Labels[k]; ok && (!hasV || got == want) {
				return false
			}
		}
		return true
	}, nil
}

// VolumeRemove answers DELETE /volumes/{name}: a volume in use is a
// Conflict (409); with force a missing volume is not an error.
func (d *Daemon) VolumeRemove(ctx context.Context, name string, force bool) error {
	err := d.Volumes.Remove(ctx, name)
	switch {
	case err == nil:
		d.volumeEvent(name, events.ActionDestroy, nil)
		return nil
	case errdefs.IsNotFound(err):
		if force {
			return nil
		}
		return errdefs.NotFound("get %s: no such volume", name)
	}
	return err
}

// VolumePrune answers POST /volumes/prune: unused anonymous volumes, or
// every unused volume with the filter all=true (API 1.42+; older API
// versions always prune all). Filters label and label! narrow it.
func (d *Daemon) VolumePrune(ctx context.Context, filters map[string][]string, allByDefault bool) (volumetypes.PruneReport, error) {
	match, err := volumeFilter(filters, "label", "label!", "all")
	if err != nil {
		return volumetypes.PruneReport{}, err
	}
	all := allByDefault
	for _, v := range filters["all"] {
		all = v == "true" || v == "1"
	}
	report := volumetypes.PruneReport{VolumesDeleted: []string{}}
	for _, v := range d.Volumes.List(ctx) {
		if err := ctx.Err(); err != nil {
			return report, err
		}
		if !all && !v.Anonymous() {
			continue
		}
		if len(d.Volumes.Users(v.Name)) > 0 || !match(v, false) {
			continue
		}
		size := d.Volumes.Size(ctx, v.Name)
		if err := d.Volumes.Remove(ctx, v.Name); err != nil {
			if !errdefs.IsConflict(err) && !errdefs.IsNotFound(err) {
				logErr("prune volume", err, "volume", v.Name)
			}
			continue
		}
		d.volumeEvent(v.Name, events.ActionDestroy, nil)
		report.VolumesDeleted = append(report.VolumesDeleted, v.Name)
		if size > 0 {
			report.SpaceReclaimed += uint64(size)
		}
	}
	d.Events.Publish(events.VolumeEventType, events.ActionPrune, "", map[string]string{"reclaimed": fmt.Sprint(report.SpaceReclaimed)})
	return report, nil
}

// VolumesDiskUsage is system df's volume part: every volume with its size
// and the number of containers using it.
func (d *Daemon) VolumesDiskUsage(ctx context.Context) []volumetypes.Volume {
	out := []volumetypes.Volume{}
	for _, v := range d.Volumes.List(ctx) {
		out = append(out, d.volumeAPI(ctx, v, true))
	}
	return out
}
