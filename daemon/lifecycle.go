package daemon

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/snapshot"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"golang.org/x/sys/unix"
)

// ParseSignal accepts "KILL", "SIGKILL", "kill" or "9".
func ParseSignal(s string) (syscall.Signal, error) {
	if s == "" {
		return syscall.SIGKILL, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, errdefs.InvalidArgument("Invalid signal: %s", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, errdefs.InvalidArgument("Invalid signal: %s", s)
	}
	return sig, nil
}

func (d *Daemon) stopSignal(c *container.Container) syscall.Signal {
	if c.Config.StopSignal != "" {
		if sig, err := ParseSignal(c.Config.StopSignal); err == nil {
			return sig
		}
	}
	return syscall.SIGTERM
}

// ContainerKill sends sig to the container's init; 409 if it is not running.
func (d *Daemon) ContainerKill(ctx context.Context, ref, signal string) error {
	sig, err := ParseSignal(signal)
	if err != nil {
		return err
	}
	c, err := d.Containers.Get(ref)
	if err != nil {
		return err
	}
	c.Lock()
	defer c.Unlock()
	if err := c.State.CanKill(c.ID); err != nil {
		return err
	}
	return d.kill(ctx, c, sig)
}

// kill signals c; call with c locked. A paused container is thawed after a
// SIGKILL is queued so that it can die.
func (d *Daemon) kill(ctx context.Context, c *container.Container, sig syscall.Signal) error {
	l := d.liveOf(c)
	rt, _, err := d.runtimeFor(c.HostConfig.Runtime)
	if err != nil {
		return err
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM || sig == syscall.SIGINT {
		c.State.ManuallyStopped = true
	}
	if err := rt.Kill(ctx, c.ID, sig); err != nil {
		if c.State.Pid > 0 {
			// The runtime lost track (e.g. its state dir is gone) but the pid is ours.
			if kerr := syscall.Kill(c.State.Pid, sig); kerr == nil {
				err = nil
			}
		}
		if err != nil {
			return fmt.Errorf("cannot kill container %s: %w", c.ID, err)
		}
	}
	if c.State.Status == api.StatePaused && sig == syscall.SIGKILL {
		logErr("resume paused container", rt.Resume(ctx, c.ID), "id", c.ID)
	}
	_ = l
	d.containerEvent(c, events.ActionKill, map[string]string{"signal": strconv.Itoa(int(sig))})
	return nil
}

// ContainerStop stops a container: the stop signal, then SIGKILL after the
// timeout. 304 if it is not running.
func (d *Daemon) ContainerStop(ctx context.Context, ref, signal string, timeout *int) error {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return err
	}
	c.Lock()
	if c.State.Status == api.StateRestarting {
		l := d.liveOf(c)
		if l.restart != nil {
			l.restart.Stop()
			l.restart = nil
		}
		c.State.Status = api.StateExited
		c.State.ManuallyStopped = true
		logErr("save container", d.Containers.Save(c), "id", c.ID)
		c.Notify()
		c.Unlock()
		return nil
	}
	if !c.State.Running() {
		c.Unlock()
		return errdefs.NotModified("container %s is already stopped", c.ID)
	}
	c.Unlock()
	if err := d.stop(ctx, c, signal, timeout); err != nil {
		return err
	}
	c.Lock()
	d.containerEvent(c, events.ActionStop, nil)
	c.Unlock()
	return nil
}

// stop signals c and waits for its exit (taking and releasing the lock).
func (d *Daemon) stop(ctx context.Context, c *container.Container, signal string, timeout *int) error {
	c.Lock()
	sig := d.stopSignal(c)
	if signal != "" {
		s, err := ParseSignal(signal)
		if err != nil {
			c.Unlock()
			return err
		}
		sig = s
	}
	wait := 10 * time.Second
	if c.Config.StopTimeout != nil {
		wait = time.Duration(*c.Config.StopTimeout) * time.Second
	}
	if timeout != nil {
		wait = time.Duration(*timeout) * time.Second
	}
	if !c.State.Running() {
		c.Unlock()
		return nil
	}
	l := d.liveOf(c)
	exits := l.exits
	c.State.ManuallyStopped = true
	changed := c.Changed()
	if wait != 0 || sig == syscall.SIGKILL {
		if c.State.Status == api.StatePaused {
			if rt, _, err := d.runtimeFor(c.HostConfig.Runtime); err == nil {
				logErr("resume paused container", rt.Resume(ctx, c.ID), "id", c.ID)
			}
		}
		if err := d.kill(ctx, c, sig); err != nil {
			logErr("send stop signal", err, "id", c.ID)
		}
	}
	c.Unlock()
	if wait < 0 {
		// t=-1: wait for as long as it takes, like dockerd, even if the
		// client goes away; never escalate to SIGKILL.
		d.waitExit(context.WithoutCancel(ctx), c, exits, changed, time.Duration(math.MaxInt64))
		return nil
	}
	if d.waitExit(ctx, c, exits, changed, wait) {
		return nil
	}
	c.Lock()
	if c.State.Running() && d.liveOf(c).exits == exits {
		if err := d.kill(ctx, c, syscall.SIGKILL); err != nil {
			logErr("kill container", err, "id", c.ID)
		}
	}
	changed = c.Changed()
	c.Unlock()
	if !d.waitExit(ctx, c, exits, changed, 30*time.Second) {
		return errdefs.System("container %s did not exit after SIGKILL", c.ID)
	}
	return nil
}

// waitExit waits until c has had an exit after the one numbered exits.
func (d *Daemon) waitExit(ctx context.Context, c *container.Container, exits uint64, changed <-chan struct{}, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.Lock()
		done := d.liveOf(c).exits != exits || !c.State.Running()
		if !done {
			changed = c.Changed()
		}
		c.Unlock()
		if done {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// ContainerRestart stops (if running) and starts the container.
func (d *Daemon) ContainerRestart(ctx context.Context, ref, signal string, timeout *int) error {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return err
	}
	if err := d.stop(ctx, c, signal, timeout); err != nil {
		return err
	}
	c.Lock()
	defer c.Unlock()
	if c.State.Status == api.StateRestarting {
		if l := d.liveOf(c); l.restart != nil {
			l.restart.Stop()
			l.restart = nil
		}
		c.State.Status = api.StateExited
	}
	if c.State.Running() {
		return nil
	}
	c.State.ManuallyStopped = false
	if err := d.start(ctx, c); err != nil {
		return err
	}
	d.containerEvent(c, events.ActionRestart, nil)
	return nil
}

// ContainerPause freezes every process of the container.
func (d *Daemon) ContainerPause(ctx context.Context, ref string) error {
	return d.pauseOrResume(ctx, ref, true)
}

// ContainerUnpause thaws it.
func (d *Daemon) ContainerUnpause(ctx context.Context, ref string) error {
	return d.pauseOrResume(ctx, ref, false)
}

func (d *Daemon) pauseOrResume(ctx context.Context, ref string, pause bool) error {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return err
	}
	c.Lock()
	defer c.Unlock()
	rt, _, err := d.runtimeFor(c.HostConfig.Runtime)
	if err != nil {
		return err
	}
	if pause {
		if err := c.State.CanPause(c.ID); err != nil {
			return err
		}
		if err := rt.Pause(ctx, c.ID); err != nil {
			return fmt.Errorf("cannot pause container %s: %w", c.ID, err)
		}
		c.State.Status = api.StatePaused
		d.containerEvent(c, events.ActionPause, nil)
	} else {
		if err := c.State.CanUnpause(c.ID); err != nil {
			return err
		}
		if err := rt.Resume(ctx, c.ID); err != nil {
			return fmt.Errorf("cannot unpause container %s: %w", c.ID, err)
		}
		c.State.Status = api.StateRunning
		d.containerEvent(c, events.ActionUnPause, nil)
	}
	c.Notify()
	return d.Containers.Save(c)
}

// RemoveOptions are rm's flags.
type RemoveOptions struct {
	Force   bool
	Volumes bool
}

// ContainerRemove deletes a container, its writable layer and its files.
func (d *Daemon) ContainerRemove(ctx context.Context, ref string, o RemoveOptions) error {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return err
	}
	ctx = context.WithoutCancel(ctx)
	c.Lock()
	if err := c.State.CanRemove(c.ID, o.Force); err != nil {
		c.Unlock()
		return err
	}
	c.State.Removing = true
	l := d.liveOf(c)
	if l.restart != nil {
		l.restart.Stop()
		l.restart = nil
	}
	running := c.State.Running()
	c.Unlock()
	if running {
		zero := 0
		if err := d.stop(ctx, c, "KILL", &zero); err != nil {
			c.Lock()
			c.State.Removing = false
			c.Unlock()
			return fmt.Errorf("could not kill container %s: %w", c.ID, err)
		}
	}
	c.Lock()
	defer c.Unlock()
	if rt, _, err := d.runtimeFor(c.HostConfig.Runtime); err == nil {
		logErr("delete runtime state", rt.Delete(ctx, c.ID, true), "id", c.ID)
	}
	snapshot.Unmount(filepath.Join(d.bundleDir(c.ID), "rootfs"))
	if err := d.Snapshots.Remove(ctx, c.ID); err != nil && !errdefs.IsNotFound(err) {
		c.State.Status = api.StateDead
		c.State.Removing = false
		logErr("save container", d.Containers.Save(c), "id", c.ID)
		return fmt.Errorf("remove writable layer of %s: %w", c.ID, err)
	}
	d.releaseNetworking(ctx, c)
	logErr("release volumes", d.releaseVolumes(ctx, c, o.Volumes), "id", c.ID)
	os.RemoveAll(d.bundleDir(c.ID))
	os.RemoveAll(d.stateDir(c.ID))
	os.RemoveAll(d.containerDir(c.ID))
	if err := d.Containers.Delete(c); err != nil {
		return err
	}
	d.live.Delete(c.ID)
	close(l.removed)
	c.Notify()
	d.containerEvent(c, events.ActionDestroy, nil)
	if _, err := d.Images.Get(ctx, c.ImageID.String()); errdefs.IsNotFound(err) {
		// The image was force-removed while this container used it: its
		// layers are garbage now.
		go func() {
			_, err := d.Images.GC(context.Background())
			logErr("collect layers of a removed image", err)
		}()
	}
	return nil
}

// WaitCondition is wait's condition parameter.
type WaitCondition string

const (
	WaitNotRunning WaitCondition = "not-running"
	WaitNextExit   WaitCondition = "next-exit"
	WaitRemoved    WaitCondition = "removed"
)

// ContainerWait validates the request at once and returns a channel that
// delivers the exit status when the condition is met.
func (d *Daemon) ContainerWait(ctx context.Context, ref string, cond WaitCondition) (<-chan api.WaitResponse, error) {
	switch cond {
	case "":
		cond = WaitNotRunning
	case WaitNotRunning, WaitNextExit, WaitRemoved:
	default:
		return nil, errdefs.InvalidArgument("invalid condition: %q", cond)
	}
	c, err := d.Containers.Get(ref)
	if err != nil {
		return nil, err
	}
	c.Lock()
	l := d.liveOf(c)
	exits := l.exits
	c.Unlock()
	out := make(chan api.WaitResponse, 1)
	go func() {
		defer close(out)
		for {
			c.Lock()
			changed := c.Changed()
			st := c.State
			nowExits := l.exits
			c.Unlock()
			var done bool
			switch cond {
			case WaitNotRunning:
				done = !st.Running() && st.Status != api.StateRestarting
			case WaitNextExit:
				done = nowExits != exits
			}
			if done {
				out <- waitResponse(st)
				return
			}
			select {
			case <-changed:
			case <-l.removed:
				c.Lock()
				st = c.State
				c.Unlock()
				out <- waitResponse(st)
				return
			case <-ctx.Done():
				return
			}
			if cond == WaitNextExit && nowExits == exits {
				c.Lock()
				now := l.exits
				st = c.State
				c.Unlock()
				if now != exits {
					out <- waitResponse(st)
					return
				}
			}
		}
	}()
	return out, nil
}

func waitResponse(st container.State) api.WaitResponse {
	// Start failures already reached the client as the start error;
	// repeating them here makes the CLI print them twice.
	return api.WaitResponse{StatusCode: int64(st.ExitCode)}
}
