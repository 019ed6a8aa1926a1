package daemon

import (
	"context"
	"io"

	"github.com/berth-dev/berth/errdefs"
	api "github.com/moby/moby/api/types/container"
)

// AttachOptions selects the streams of POST /containers/{id}/attach.
type AttachOptions struct {
	Stdin          io.Reader // nil unless stdin=1 and the container has OpenStdin
	Stdout, Stderr io.Writer // nil when not requested
	Logs           bool      // replay the log first
	Stream         bool      // then follow live output
}

// ContainerAttachCheck resolves ref and reports whether it uses a TTY; the
// server calls it before hijacking so errors are plain JSON.
func (d *Daemon) ContainerAttachCheck(ref string) (tty, openStdin bool, err error) {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return false, false, err
	}
	c.Lock()
	defer c.Unlock()
	if c.State.Status == api.StatePaused {
		return false, false, errdefs.Conflict("You cannot attach to a paused container, unpause it first")
	}
	return c.Config.Tty, c.Config.OpenStdin, nil
}

// ContainerAttach connects the given streams to the container. A client
// attaching to a created container waits for start and is connected before
// the process runs. It returns when the output ends.
func (d *Daemon) ContainerAttach(ctx context.Context, ref string, o AttachOptions) error {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return err
	}
	if o.Logs {
		err := d.readLogs(ctx, c, LogsOptions{Stdout: o.Stdout != nil, Stderr: o.Stderr != nil}, func(m LogMessage) error {
			w := o.Stdout
			if m.Stream == "stderr" {
				w = o.Stderr
			}
			if w == nil {
				return nil
			}
			_, err := w.Write(m.Line)
			return err
		})
		if err != nil {
			return err
		}
	}
	if !o.Stream {
		return nil
	}
	if !c.Config.OpenStdin {
		o.Stdin = nil
	}
	c.Lock()
	l := d.liveOf(c)
	client := l.shim
	if client == nil {
		if c.State.Status != api.StateCreated && c.State.Status != api.StateExited && c.State.Status != api.StateRestarting {
			c.Unlock()
			return nil
		}
		// Not started yet: register, wait for the process to be created,
		// connect, then let start proceed.
		l.pending.Add(1)
		created := l.created
		removed := l.removed
		c.Unlock()
		registered := false
		defer func() {
			if !registered {
				l.pending.Done()
			}
		}()
		select {
		case <-created:
		case <-removed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
		// start holds the container's lock while it waits for us; l.shim was
		// set before created was closed, so reading it here is safe.
		client = l.shim
		if client == nil {
			return nil
		}
		wait, err := client.OpenAttach(ctx, o.Stdin, o.Stdout, o.Stderr)
		registered = true
		l.pending.Done()
		if err != nil {
			return err
		}
		return wait()
	}
	c.Unlock()
	return client.Attach(ctx, o.Stdin, o.Stdout, o.Stderr)
}

// ContainerResize sets the TTY size of the container's process.
func (d *Daemon) ContainerResize(ctx context.Context, ref string, height, width uint16) error {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return err
	}
	c.Lock()
	client := d.liveOf(c).shim
	running := c.State.Running()
	c.Unlock()
	if !running || client == nil {
		return errdefs.Conflict("Container %s is not running", c.ID)
	}
	return client.Resize(ctx, height, width)
}
