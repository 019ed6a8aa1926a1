package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"time"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
)

// LogsOptions are the query parameters of GET /containers/{id}/logs.
type LogsOptions struct {
	Stdout, Stderr bool
	Follow         bool
	Tail           int // -1 = all
	Since, Until   time.Time
}

// LogMessage is one json-file log record.
type LogMessage struct {
	Line   []byte
	Stream string
	Time   time.Time
}

type jsonLogLine struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// ContainerLogs streams the container's log records to fn. With Follow it
// keeps going until the container stops (at once if it already has).
func (d *Daemon) ContainerLogs(ctx context.Context, ref string, o LogsOptions, fn func(LogMessage) error) error {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return err
	}
	return d.readLogs(ctx, c, o, fn)
}

const logPoll = 50 * time.Millisecond

func (d *Daemon) readLogs(ctx context.Context, c *container.Container, o LogsOptions, fn func(LogMessage) error) error {
	if !o.Stdout && !o.Stderr {
		return errdefs.InvalidArgument("Bad parameters: you must choose at least one stream")
	}
	// Like dockerd, follow only what runs: on a created or exited
	// container, follow returns once the log is read.
	if o.Follow && !d.stillRunning(c) {
		o.Follow = false
	}
	f, err := os.Open(d.logPath(c.ID))
	if errors.Is(err, os.ErrNotExist) {
		if !o.Follow {
			return nil
		}
		// Started, but the shim has not created the file yet.
		for {
			f, err = os.Open(d.logPath(c.ID))
			if err == nil {
				break
			}
			if !d.stillRunning(c) {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(logPoll):
			}
		}
	} else if err != nil {
		return errdefs.System("open log of %s: %w", c.ID, err)
	}
	defer f.Close()
	emit := func(m LogMessage) error {
		if (m.Stream == "stdout" && !o.Stdout) || (m.Stream == "stderr" && !o.Stderr) {
			return nil
		}
		if !o.Since.IsZero() && m.Time.Before(o.Since) {
			return nil
		}
		if !o.Until.IsZero() && m.Time.After(o.Until) {
			return nil
		}
		return fn(m)
	}
	r := newLogReader(f)
	if o.Tail >= 0 {
		// Keep the last Tail matching records of what is there now.
		var ring []LogMessage
		if o.Tail > 0 {
			ring = make([]LogMessage, 0, o.Tail)
		}
		err := r.scan(func(m LogMessage) error {
			if (m.Stream == "stdout" && !o.Stdout) || (m.Stream == "stderr" && !o.Stderr) {
				return nil
			}
			if o.Tail == 0 {
				return nil
			}
			if len(ring) == o.Tail {
				copy(ring, ring[1:])
				ring = ring[:len(ring)-1]
			}
			ring = append(ring, m)
			return nil
		}, false)
		if err != nil {
			return err
		}
		for _, m := range ring {
			if err := emit(m); err != nil {
				return err
			}
		}
	} else if err := r.scan(emit, false); err != nil {
		return err
	}
	if !o.Follow {
		return nil
	}
	for {
		running := d.stillRunning(c)
		if err := r.scan(emit, true); err != nil {
			return err
		}
		if !running {
			// The shim has drained and closed the log by the time the exit is recorded.
			return r.scan(emit, false)
		}
		if !o.Until.IsZero() && time.Now().After(o.Until) {
			return nil
		}
		c.Lock()
		changed := c.Changed()
		c.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-time.After(logPoll):
		}
	}
}

func (d *Daemon) stillRunning(c *container.Container) bool {
	c.Lock()
	defer c.Unlock()
	return c.State.Running() || c.State.Status == "restarting"
}

// logReader decodes json-file records, keeping an incomplete trailing line
// (the shim is mid-write) for the next round.
type logReader struct {
	r       io.Reader
	partial []byte
	buf     []byte
}

func newLogReader(r io.Reader) *logReader { return &logReader{r: r, buf: make([]byte, 64*1024)} }

// scan decodes every complete record available now. At EOF a partial line
// is kept when partialOK, or decoded as a last record otherwise.
func (lr *logReader) scan(fn func(LogMessage) error, partialOK bool) error {
	for {
		n, err := lr.r.Read(lr.buf)
		data := lr.buf[:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				lr.partial = append(lr.partial, data...)
				break
			}
			line := data[:i]
			if len(lr.partial) > 0 {
				line = append(lr.partial, line...)
				lr.partial = lr.partial[:0]
			}
			data = data[i+1:]
			if err := decodeRecord(line, fn); err != nil {
				return err
			}
		}
		if err == io.EOF || (err == nil && n == 0) {
			if !partialOK && len(lr.partial) > 0 {
				line := lr.partial
				lr.partial = nil
				return decodeRecord(line, fn)
			}
			return nil
		}
		if err != nil {
			return errdefs.System("read log: %w", err)
		}
	}
}

func decodeRecord(line []byte, fn func(LogMessage) error) error {
	var rec jsonLogLine
	if json.Unmarshal(line, &rec) != nil {
		return nil // a torn record from a crash; skip it
	}
	return fn(LogMessage{Line: []byte(rec.Log), Stream: rec.Stream, Time: rec.Time})
}
