package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/shim"
	"github.com/berth-dev/berth/snapshot"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
)

// live is the runtime-only side of a container: its shim connection and the
// rendezvous that lets attach connect before start. Guarded by the
// container's lock.
type live struct {
	shim    *shim.Client
	rt      *runtime.Runtime
	exits   uint64        // number of exits handled since the daemon started
	created chan struct{} // closed once the shim has created the process, before it runs
	pending sync.WaitGroup
	removed chan struct{}
	restart *time.Timer
}

func (d *Daemon) liveOf(c *container.Container) *live {
	if v, ok := d.live.Load(c.ID); ok {
		return v.(*live)
	}
	l := &live{created: make(chan struct{}), removed: make(chan struct{})}
	v, _ := d.live.LoadOrStore(c.ID, l)
	return v.(*live)
}

// ContainerStart starts a created or exited container; 304 if it runs.
func (d *Daemon) ContainerStart(ctx context.Context, ref string) error {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return err
	}
	c.Lock()
	defer c.Unlock()
	if err := c.State.CanStart(c.ID); err != nil {
		return err
	}
	l := d.liveOf(c)
	if l.restart != nil {
		l.restart.Stop()
		l.restart = nil
	}
	c.State.ManuallyStopped = false
	return d.start(ctx, c)
}

// start runs c's process. Call with c locked.
func (d *Daemon) start(ctx context.Context, c *container.Container) (retErr error) {
	ctx = context.WithoutCancel(ctx) // a client hanging up must not leave a half-started container
	l := d.liveOf(c)
	rt, bin, err := d.runtimeFor(c.HostConfig.Runtime)
	if err != nil {
		return err
	}
	t0 := time.Now()
	bundle := d.bundleDir(c.ID)
	rootfs := filepath.Join(bundle, "rootfs")
	defer func() {
		if retErr != nil {
			snapshot.Unmount(rootfs)
			msg := retErr.Error()
			// The runtime's classification of runc's message, as for exec;
			// anything else that stopped the start is Docker's 128.
			code := 128
			if se := runtime.NewStartError("", msg); errors.Is(se, runtime.ErrCommandNotFound) || errors.Is(se, runtime.ErrCommandNotExecutable) {
				code = se.ExitCode()
			}
			c.State.SetStartFailed(code, msg, time.Now().UTC())
			logErr("save container", d.Containers.Save(c), "id", c.ID)
			c.Notify()
			if c.HostConfig.AutoRemove {
				// Like dockerd: a --rm container that cannot start is removed,
				// which also releases clients waiting for condition=removed.
				go func() {
					logErr("auto-remove container", d.ContainerRemove(context.Background(), c.ID, RemoveOptions{Force: true, Volumes: true}), "id", c.ID)
				}()
			}
		}
	}()
	if err := os.MkdirAll(rootfs, 0o711); err != nil {
		return fmt.Errorf("create bundle for %s: %w", c.ID, err)
	}
	mounts, err := d.Snapshots.Mounts(ctx, c.ID)
	if err != nil {
		return fmt.Errorf("writable layer of %s: %w", c.ID, err)
	}
	snapshot.Unmount(rootfs) // a mount left by a crash
	if err := snapshot.MountAll(mounts, rootfs); err != nil {
		return fmt.Errorf("mount rootfs of %s: %w", c.ID, err)
	}
	netnsPath, err := d.attachNetwork(ctx, c)
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			d.detachNetwork(ctx, c)
		}
	}()
	files, err := d.writeEtcFiles(c)
	if err != nil {
		return err
	}
	hc, err := d.resolveMounts(ctx, c)
	if err != nil {
		return err
	}
	spec, err := runtime.GenerateSpec(runtime.SpecOptions{
		ID: c.ID, Config: d.linkEnvConfig(c), HostConfig: hc, Rootfs: rootfs,
		HostnamePath: files.hostname, HostsPath: files.hosts, ResolvConfPath: files.resolv,
		InitPath: d.cfg.InitPath, CgroupParent: d.cfg.CgroupParent, NetNSPath: netnsPath,
	})
	if err != nil {
		return err
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encode OCI spec of %s: %w", c.ID, err)
	}
	if err := writeFileAtomic(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		return err
	}
	// The state dir is reused across restarts: shim.Start takes its lock,
	// waits for a previous shim that is still finishing, and clears its old
	// exit record. Removing the directory here would let that old shim
	// delete the new one's socket on its way out.
	tPrep := time.Now()
	logLim := containerLogLimits(c)
	client, err := shim.Start(ctx, shim.Options{
		ID: c.ID, Bundle: bundle, StateDir: d.stateDir(c.ID), LogPath: d.containerLogPath(c),
		LogMaxSize: logLim.MaxSize, LogMaxFiles: logLim.MaxFiles,
		Runtime: bin, RuntimeRoot: d.runtimeRoot(c.HostConfig.Runtime), ShimBinary: d.cfg.ShimBinary,
		Terminal: c.Config.Tty, Stdin: c.Config.OpenStdin, StdinOnce: c.Config.StdinOnce,
	})
	if err != nil {
		return errdefs.InvalidArgument("failed to create task for container: %s", err.Error())
	}
	tCreate := time.Now()
	l.shim, l.rt = client, rt
	// Let clients that attached before start connect their streams first,
	// so not one byte of output is missed.
	close(l.created)
	// The bound only guards against an attacher that never proceeds; an
	// attach normally connects within milliseconds, even on a loaded host.
	if !waitTimeout(&l.pending, 30*time.Second) {
		slog.Warn("starting before every attached client connected; they may miss early output", "id", c.ID[:12])
	}
	if err := client.Start(ctx); err != nil {
		rt.Delete(ctx, c.ID, true)
		client.Close()
		l.shim = nil
		l.created = make(chan struct{})
		return errdefs.InvalidArgument("failed to start container: %s", err.Error())
	}
	slog.Debug("container started", "id", c.ID[:12], "prepare", tPrep.Sub(t0), "create", tCreate.Sub(tPrep), "start", time.Since(tCreate))
	c.State.SetRunning(client.Pid(), time.Now().UTC())
	if err := d.Containers.Save(c); err != nil {
		logErr("save container", err, "id", c.ID)
	}
	c.Notify()
	d.containerEvent(c, events.ActionStart, nil)
	go d.monitor(c, l, client)
	return nil
}

// waitTimeout waits for wg; false if d passed first.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

// monitor waits for the process to exit and records it.
func (d *Daemon) monitor(c *container.Container, l *live, client *shim.Client) {
	exit, err := client.Wait(context.Background())
	select {
	case <-d.shutdown:
		return // the next daemon adopts the container
	default:
	}
	if err != nil {
		logErr("wait for container", err, "id", c.ID)
		exit = &shim.Exit{Code: 255, ExitedAt: time.Now().UTC(), Error: err.Error()}
	}
	client.Close()
	// A shim that reported the exit deletes the runtime's state itself.
	d.handleExit(c, exit, err == nil)
}

// handleExit records an exit, cleans the bundle and applies the restart
// policy. shimDeletes says the shim will delete the runtime's state (it does
// so right after reporting the exit), which keeps a runc invocation off the
// path of `run --rm`.
func (d *Daemon) handleExit(c *container.Container, exit *shim.Exit, shimDeletes bool) {
	ctx := context.Background()
	c.Lock()
	l := d.liveOf(c)
	l.shim = nil
	l.created = make(chan struct{})
	l.exits++
	if l.rt != nil && !shimDeletes {
		logErr("delete runtime state", l.rt.Delete(ctx, c.ID, true), "id", c.ID)
	}
	logErr("unmount rootfs", snapshot.Unmount(filepath.Join(d.bundleDir(c.ID), "rootfs")), "id", c.ID)
	d.detachNetwork(ctx, c)
	lastRun := exit.ExitedAt.Sub(c.State.StartedAt)
	c.State.SetExited(exit.Code, exit.ExitedAt.UTC(), exit.Error)
	d.recordOOM(c, exit)
	restart := !c.State.Removing && container.ShouldRestart(c.HostConfig.RestartPolicy, &c.State, exit.Code)
	if restart {
		c.State.SetRestarting()
	}
	logErr("save container", d.Containers.Save(c), "id", c.ID)
	d.containerEvent(c, events.ActionDie, map[string]string{"exitCode": fmt.Sprint(exit.Code)})
	c.Notify()
	autoRemove := c.HostConfig.AutoRemove && !c.State.Removing
	if restart {
		c.State.RestartCount++
		delay := container.Backoff(c.State.RestartCount, lastRun)
		l.restart = time.AfterFunc(delay, func() { d.restartByPolicy(c) })
	}
	c.Unlock()
	if autoRemove {
		logErr("auto-remove container", d.ContainerRemove(ctx, c.ID, RemoveOptions{Force: true, Volumes: true}), "id", c.ID)
	}
}

func (d *Daemon) restartByPolicy(c *container.Container) {
	c.Lock()
	defer c.Unlock()
	l := d.liveOf(c)
	l.restart = nil
	if c.State.Status != api.StateRestarting || c.State.Removing {
		return
	}
	c.State.Status = api.StateExited
	if err := d.start(context.Background(), c); err != nil {
		logErr("restart container", err, "id", c.ID)
		return
	}
	d.containerEvent(c, events.ActionRestart, nil)
}

// writeFileAtomic writes data to path via temp file, fsync and rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
