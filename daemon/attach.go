package daemon

import (
	"context"
	"io"
	"sync"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	api "github.com/moby/moby/api/types/container"
)

// AttachOptions selects the streams of POST /containers/{id}/attach.
type AttachOptions struct {
	Stdin          io.Reader // nil unless stdin=1 and the container has OpenStdin
	Stdout, Stderr io.Writer // nil when not requested
	Logs           bool      // replay the log first
	Stream         bool      // then follow live output
	// Ticket is the place ContainerAttachCheck reserved, if any.
	Ticket *AttachTicket
}

// AttachTicket is a place among a not yet running container's attachers,
// taken before the client is told its stream is open: the client sends
// start as soon as it reads the 101, and start must wait for this attach
// or the first output is lost. Release it when the attach does not happen.
type AttachTicket struct {
	l                *live
	created, removed chan struct{}
	once             sync.Once
}

// Release gives the place up; safe to call more than once and on nil.
func (t *AttachTicket) Release() {
	if t != nil {
		t.once.Do(t.l.pending.Done)
	}
}

// ContainerAttachCheck resolves ref and reports whether it uses a TTY; the
// server calls it before hijacking so errors are plain JSON. With stream
// set and the container not running, it also reserves the attach's place
// (see AttachTicket).
func (d *Daemon) ContainerAttachCheck(ref string, stream bool) (tty, openStdin bool, ticket *AttachTicket, err error) {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return false, false, nil, err
	}
	c.Lock()
	defer c.Unlock()
	if c.State.Status == api.StatePaused {
		return false, false, nil, errdefs.Conflict("You cannot attach to a paused container, unpause it first")
	}
	if l := d.liveOf(c); stream && l.shim == nil && waitsForStart(c) {
		l.pending.Add(1)
		ticket = &AttachTicket{l: l, created: l.created, removed: l.removed}
	}
	return c.Config.Tty, c.Config.OpenStdin, ticket, nil
}

// waitsForStart reports whether an attach to c waits for its next start.
// Call with c locked.
func waitsForStart(c *container.Container) bool {
	switch c.State.Status {
	case api.StateCreated, api.StateExited, api.StateRestarting:
		return true
	}
	return false
}

// ContainerAttach connects the given streams to the container. A client
// attaching to a created container waits for start and is connected before
// the process runs. It returns when the output ends.
func (d *Daemon) ContainerAttach(ctx context.Context, ref string, o AttachOptions) error {
	defer o.Ticket.Release()
	c, err := d.Containers.Get(ref)
	if err != nil {
		return err
	}
	if o.Logs {
		err := d.readLogs(ctx, c, LogsOptions{Stdout: o.Stdout != nil, Stderr: o.Stderr != nil, Tail: -1}, func(m LogMessage) error {
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
	t := o.Ticket
	if t == nil {
		c.Lock()
		l := d.liveOf(c)
		if client := l.shim; client != nil {
			c.Unlock()
			return client.Attach(ctx, o.Stdin, o.Stdout, o.Stderr)
		}
		if !waitsForStart(c) {
			c.Unlock()
			return nil
		}
		// Not started yet: register, wait for the process to be created,
		// connect, then let start proceed.
		l.pending.Add(1)
		t = &AttachTicket{l: l, created: l.created, removed: l.removed}
		c.Unlock()
	}
	defer t.Release()
	select {
	case <-t.created:
	case <-t.removed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	// start holds the container's lock while it waits for us; l.shim was
	// set before created was closed, so reading it here is safe.
	client := t.l.shim
	if client == nil {
		return nil
	}
	wait, err := client.OpenAttach(ctx, o.Stdin, o.Stdout, o.Stderr)
	t.Release()
	if err != nil {
		return err
	}
	return wait()
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
