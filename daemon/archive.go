package daemon

// Container filesystem operations: commit, diff, export and cp. They work on
// a running container's mounted root and mount a stopped one's layers for
// the duration of the call.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/snapshot"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// withRootfs calls fn with the container's root filesystem mounted.
func (d *Daemon) withRootfs(ctx context.Context, c *container.Container, fn func(root string) error) error {
	c.Lock()
	running := c.State.Running()
	c.Unlock()
	if running {
		return fn(filepath.Join(d.bundleDir(c.ID), "rootfs"))
	}
	mounts, err := d.Snapshots.Mounts(ctx, c.ID)
	if err != nil {
		return err
	}
	tmpRoot := filepath.Join(d.cfg.ExecRoot, "tmp")
	if err := os.MkdirAll(tmpRoot, 0o700); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(tmpRoot, c.ID[:12]+"-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	if err := snapshot.MountAll(mounts, dir); err != nil {
		return fmt.Errorf("mount filesystem of %s: %w", c.ID, err)
	}
	defer snapshot.Unmount(dir)
	return fn(dir)
}

// CommitOptions are POST /commit's parameters.
type CommitOptions struct {
	Ref, Comment, Author string
	Changes              []string
	Pause                bool
	Config               *api.Config // optional overrides from the body
}

// ContainerCommit makes an image from a container's changes.
func (d *Daemon) ContainerCommit(ctx context.Context, ref string, o CommitOptions) (digest.Digest, error) {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return "", err
	}
	c.Lock()
	paused := false
	if o.Pause && c.State.Status == api.StateRunning {
		if rt, _, err := d.runtimeFor(c.HostConfig.Runtime); err == nil && rt.Pause(ctx, c.ID) == nil {
			paused = true
			defer rt.Resume(context.WithoutCancel(ctx), c.ID)
		}
	}
	cfg := c.Config
	if o.Config != nil {
		merged := *cfg
		if o.Config.Cmd != nil {
			merged.Cmd = o.Config.Cmd
		}
		if o.Config.Entrypoint != nil {
			merged.Entrypoint = o.Config.Entrypoint
		}
		if o.Config.Env != nil {
			merged.Env = mergeEnv(merged.Env, o.Config.Env)
		}
		if o.Config.Labels != nil {
			merged.Labels = o.Config.Labels
		}
		cfg = &merged
	}
	imgCfg := imageConfigOf(cfg)
	createdBy := strings.Join(append([]string{c.Path}, c.Args...), " ")
	imageID := c.ImageID
	c.Unlock()
	_ = paused
	img, err := d.Images.Commit(ctx, image.CommitOptions{
		Snapshot: c.ID, Image: imageID, Config: imgCfg, Changes: o.Changes,
		Author: o.Author, Comment: o.Comment, CreatedBy: createdBy, Ref: o.Ref,
	})
	if err != nil {
		return "", err
	}
	d.containerEvent(c, events.ActionCommit, map[string]string{"comment": o.Comment, "imageID": img.ID.String()})
	return img.ID, nil
}

// imageConfigOf turns a container config into an image config, keeping only
// what images carry (no hostname, no attach flags).
func imageConfigOf(c *api.Config) *dockerspec.DockerOCIImageConfig {
	out := &dockerspec.DockerOCIImageConfig{
		ImageConfig: ocispec.ImageConfig{
			User: c.User, Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd,
			WorkingDir: c.WorkingDir, Labels: c.Labels, StopSignal: c.StopSignal,
		},
	}
	if len(c.ExposedPorts) > 0 {
		out.ExposedPorts = map[string]struct{}{}
		for p := range c.ExposedPorts {
			out.ExposedPorts[p.String()] = struct{}{}
		}
	}
	if len(c.Volumes) > 0 {
		out.Volumes = c.Volumes
	}
	out.Healthcheck = c.Healthcheck
	out.OnBuild = c.OnBuild
	out.Shell = c.Shell
	return out
}

// ContainerChanges lists what the container changed compared with its
// image: 0 modified, 1 added, 2 deleted (docker diff).
func (d *Daemon) ContainerChanges(ctx context.Context, ref string) ([]api.FilesystemChange, error) {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return nil, err
	}
	upper, err := d.Snapshots.UpperDir(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	lowers, err := d.Snapshots.LowerDirs(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	inLower := func(rel string) bool {
		for _, l := range lowers {
			if _, err := os.Lstat(filepath.Join(l, rel)); err == nil {
				return true
			}
		}
		return false
	}
	changes := []api.FilesystemChange{}
	err = filepath.WalkDir(upper, func(p string, de fs.DirEntry, err error) error {
		if err != nil || p == upper {
			return err
		}
		rel := strings.TrimPrefix(p, upper)
		info, err := de.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && info.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0 {
			changes = append(changes, api.FilesystemChange{Path: rel, Kind: api.ChangeDelete})
			return nil
		}
		kind := api.ChangeAdd
		if inLower(rel) {
			kind = api.ChangeModify
		}
		changes = append(changes, api.FilesystemChange{Path: rel, Kind: kind})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("diff container %s: %w", c.ID, err)
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Path < changes[j].Path })
	return dropRuntimeMountpoints(changes), nil
}

// runtimeMountpoints are created in the writable layer by the runtime when
// the image lacks them; Docker hides them (its "init layer"), so do we.
var runtimeMountpoints = map[string]bool{
	"/dev": true, "/proc": true, "/sys": true, "/etc/hostname": true, "/etc/hosts": true,
	"/etc/resolv.conf": true, "/dev/shm": true, "/dev/pts": true, "/dev/mqueue": true, "/sbin/docker-init": true,
}

// dropRuntimeMountpoints removes those entries and the parent directories
// that are listed as modified only because of them. changes is sorted.
func dropRuntimeMountpoints(changes []api.FilesystemChange) []api.FilesystemChange {
	kept := changes[:0]
	for _, ch := range changes {
		if ch.Kind == api.ChangeAdd && runtimeMountpoints[ch.Path] {
			continue
		}
		if strings.HasPrefix(ch.Path, "/dev/") || strings.HasPrefix(ch.Path, "/proc/") || strings.HasPrefix(ch.Path, "/sys/") {
			if ch.Kind == api.ChangeAdd {
				continue
			}
		}
		kept = append(kept, ch)
	}
	out := []api.FilesystemChange{}
	for i, ch := range kept {
		if ch.Kind == api.ChangeModify {
			hasChild := false
			for _, other := range kept[i+1:] {
				if strings.HasPrefix(other.Path, ch.Path+"/") {
					hasChild = true
					break
				}
			}
			if !hasChild && runtimeMountpointParent(ch.Path) {
				continue
			}
		}
		out = append(out, ch)
	}
	return out
}

func runtimeMountpointParent(dir string) bool {
	for p := range runtimeMountpoints {
		if filepath.Dir(p) == dir {
			return true
		}
	}
	return false
}

// ContainerExport writes the container's whole filesystem as a tar.
func (d *Daemon) ContainerExport(ctx context.Context, ref string, w io.Writer) error {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return err
	}
	err = d.withRootfs(ctx, c, func(root string) error { return snapshot.WriteTar(ctx, root, w) })
	if err == nil {
		d.containerEvent(c, events.ActionExport, nil)
	}
	return err
}

// ContainerStatPath describes path inside the container (cp's stat header).
func (d *Daemon) ContainerStatPath(ctx context.Context, ref, path string) (snapshot.PathStat, error) {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return snapshot.PathStat{}, err
	}
	var st snapshot.PathStat
	err = d.withRootfs(ctx, c, func(root string) error {
		st, err = snapshot.StatInRoot(root, path)
		return err
	})
	return st, err
}

// ContainerArchivePath streams path as a tar (cp out); stat is called
// before the first byte so the header can be sent.
func (d *Daemon) ContainerArchivePath(ctx context.Context, ref, path string, stat func(snapshot.PathStat), w io.Writer) error {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return err
	}
	return d.withRootfs(ctx, c, func(root string) error {
		st, err := snapshot.StatInRoot(root, path)
		if err != nil {
			return err
		}
		stat(st)
		return snapshot.CopyOut(ctx, root, path, w)
	})
}

// ContainerExtractToDir unpacks a tar into dir inside the container (cp in).
func (d *Daemon) ContainerExtractToDir(ctx context.Context, ref, dir string, r io.Reader, noOverwriteDirNonDir, copyUIDGID bool) error {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return err
	}
	c.Lock()
	readOnly := c.HostConfig.ReadonlyRootfs
	c.Unlock()
	if readOnly {
		return errdefs.Forbidden("container rootfs is marked read-only")
	}
	return d.withRootfs(ctx, c, func(root string) error {
		return snapshot.CopyIn(ctx, root, dir, r, snapshot.CopyInOptions{NoOverwriteDirNonDir: noOverwriteDirNonDir, KeepOwner: copyUIDGID})
	})
}

// ContainersPrune removes every stopped container.
func (d *Daemon) ContainersPrune(ctx context.Context, labels []string) (api.PruneReport, error) {
	report := api.PruneReport{ContainersDeleted: []string{}}
	for _, c := range d.Containers.List() {
		c.Lock()
		stopped := c.State.Status == api.StateExited || c.State.Status == api.StateCreated || c.State.Status == api.StateDead
		match := true
		for _, l := range labels {
			k, v, hasV := strings.Cut(l, "=")
			got, ok := c.Config.Labels[k]
			if !ok || (hasV && got != v) {
				match = false
			}
		}
		c.Unlock()
		if !stopped || !match {
			continue
		}
		size, _ := d.Snapshots.Usage(ctx, c.ID)
		if err := d.ContainerRemove(ctx, c.ID, RemoveOptions{}); err != nil {
			if errors.Is(err, errdefs.ErrConflict) {
				continue
			}
			return report, err
		}
		report.ContainersDeleted = append(report.ContainersDeleted, c.ID)
		report.SpaceReclaimed += uint64(size)
	}
	return report, nil
}

// ContainerStats samples the container's cgroup counters. The caller keeps
// the previous sample for precpu_stats.
func (d *Daemon) ContainerStats(ctx context.Context, ref string) (*api.StatsResponse, error) {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return nil, err
	}
	c.Lock()
	running := c.State.Running()
	parent := c.HostConfig.CgroupParent
	name := c.Name
	rt, _, rerr := d.runtimeFor(c.HostConfig.Runtime)
	c.Unlock()
	if rerr != nil {
		return nil, rerr
	}
	if parent == "" {
		parent = d.cfg.CgroupParent
	}
	if !running {
		// Docker answers a stopped container with zeroed stats.
		return &api.StatsResponse{ID: c.ID, Name: name}, nil
	}
	s, err := rt.Stats(ctx, c.ID, filepath.Join("/", parent, c.ID))
	if err != nil {
		return nil, err
	}
	s.ID, s.Name = c.ID, name
	return s, nil
}
