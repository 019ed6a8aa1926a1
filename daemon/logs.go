package daemon

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"strconv"
	"time"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/docker/go-units"
	api "github.com/moby/moby/api/types/container"
)

// LogsOptions are the query parameters of GET /containers/{id}/logs.
type LogsOptions struct {
	Stdout, Stderr bool
	Follow         bool
	Tail           int // -1 = all
	Since, Until   time.Time
	// Streaming, if set, is called once the request is known good, before the first record: where an
	// HTTP handler writes its response head, so that a refusal can still be an error status.
	Streaming func()
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

// logLimits are a json-file log's rotation options. MaxSize <= 0 means no limit (and MaxFiles is 1).
type logLimits struct {
	MaxSize  int64
	MaxFiles int
}

// parseLogOpts checks the --log-opt values of the json-file driver as dockerd does and returns the rotation
// limits. Only max-size and max-file are served: every other option dockerd knows (compress, labels, env, tag
// ...) is refused rather than accepted and ignored.
func parseLogOpts(opts map[string]string) (logLimits, error) {
	l := logLimits{MaxFiles: 1}
	for key := range opts {
		if key != "max-size" && key != "max-file" {
			return l, errdefs.InvalidArgument("unknown log opt '%s' for json-file log driver", key)
		}
	}
	if v, ok := opts["max-size"]; ok && v != "-1" { // -1 is docker's documented "unlimited"
		n, err := units.FromHumanSize(v)
		if err != nil {
			return l, errdefs.InvalidArgument("invalid max-size '%s' for json-file log driver: %v (want bytes or a size like 10k, 10m, 1g)", v, err)
		}
		if n <= 0 {
			return l, errdefs.InvalidArgument("invalid max-size '%s' for json-file log driver: max-size must be a positive number", v)
		}
		l.MaxSize = n
	}
	if v, ok := opts["max-file"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return l, errdefs.InvalidArgument("invalid max-file '%s' for json-file log driver: not a whole number", v)
		}
		if n < 1 {
			return l, errdefs.InvalidArgument("invalid max-file '%s' for json-file log driver: max-file cannot be less than 1", v)
		}
		if l.MaxSize <= 0 {
			return l, errdefs.InvalidArgument("max-file '%s' for json-file log driver needs max-size: without it the log is never rotated", v)
		}
		l.MaxFiles = n
	}
	return l, nil
}

// The log drivers berthd serves: json-file, written by the shim, and none, which stores nothing.
const (
	logDriverJSONFile = "json-file"
	logDriverNone     = "none"
)

// validateLogConfig checks a log driver and its options, a container's or the daemon's default, as dockerd
// (and, for none with options, docker's CLI) does.
func validateLogConfig(lc api.LogConfig) error {
	switch lc.Type {
	case "", logDriverJSONFile:
		_, err := parseLogOpts(lc.Config)
		return err
	case logDriverNone:
		if len(lc.Config) > 0 {
			return errdefs.InvalidArgument("invalid logging opts for driver none")
		}
		return nil
	}
	return errdefs.InvalidArgument("logging driver %q is not supported: berthd writes json-file logs (or none)", lc.Type)
}

// withDefaultLogConfig gives a container created without a log driver the daemon's, and one that names the
// daemon's driver the daemon's options it does not set itself, as dockerd merges them.
func withDefaultLogConfig(lc, def api.LogConfig) api.LogConfig {
	if lc.Type == "" {
		lc.Type = cmp.Or(def.Type, logDriverJSONFile)
	}
	if lc.Type != def.Type || len(def.Config) == 0 {
		return lc
	}
	merged := make(map[string]string, len(def.Config)+len(lc.Config))
	maps.Copy(merged, def.Config)
	maps.Copy(merged, lc.Config)
	lc.Config = merged
	return lc
}

// logNotStored reports whether c's driver keeps no log (none): there is no file and nothing to read.
func logNotStored(c *container.Container) bool {
	return c.HostConfig != nil && c.HostConfig.LogConfig.Type == logDriverNone
}

// containerLogPath is the file c's log is written to, or "" when its driver keeps none.
func (d *Daemon) containerLogPath(c *container.Container) string {
	if logNotStored(c) {
		return ""
	}
	return d.logPath(c.ID)
}

// containerLogLimits are the rotation limits of c's log. A record from before this was validated reads as
// unlimited.
func containerLogLimits(c *container.Container) logLimits {
	if c.HostConfig == nil {
		return logLimits{MaxFiles: 1}
	}
	l, err := parseLogOpts(c.HostConfig.LogConfig.Config)
	if err != nil {
		return logLimits{MaxFiles: 1}
	}
	return l
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

// followBurst is how much output one follow round must have read for the next round to start without the
// poll's wait.
const followBurst = 32 << 10

func (d *Daemon) readLogs(ctx context.Context, c *container.Container, o LogsOptions, fn func(LogMessage) error) error {
	if !o.Stdout && !o.Stderr {
		return errdefs.InvalidArgument("Bad parameters: you must choose at least one stream")
	}
	if logNotStored(c) {
		return errdefs.NotImplemented("configured logging driver does not support reading")
	}
	if o.Streaming != nil {
		o.Streaming()
	}
	// Like dockerd, follow only what runs: on a created or exited
	// container, follow returns once the log is read.
	if o.Follow && !d.stillRunning(c) {
		o.Follow = false
	}
	lim := containerLogLimits(c)
	r, err := openLogFollower(d.logPath(c.ID), lim.MaxFiles)
	if errors.Is(err, os.ErrNotExist) {
		if !o.Follow {
			return nil
		}
		// Started, but the shim has not created the file yet.
		for {
			r, err = openLogFollower(d.logPath(c.ID), lim.MaxFiles)
			if err == nil {
				break
			}
			if !errors.Is(err, os.ErrNotExist) {
				return errdefs.System("open log of %s: %w", c.ID, err)
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
	defer r.Close()
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
	if o.Tail >= 0 {
		// Keep the last Tail matching records of what is there now, in every file: a ring, oldest at next
		// once it is full.
		var ring []LogMessage
		next := 0
		err := r.scan(func(m LogMessage) error {
			if (m.Stream == "stdout" && !o.Stdout) || (m.Stream == "stderr" && !o.Stderr) || o.Tail == 0 {
				return nil
			}
			if len(ring) < o.Tail {
				ring = append(ring, m)
				return nil
			}
			ring[next] = m
			next = (next + 1) % o.Tail
			return nil
		}, o.Follow) // a record the shim is writing now is emitted by the follow loop
		if err != nil {
			return err
		}
		for i := range ring {
			if err := emit(ring[(next+i)%len(ring)]); err != nil {
				return err
			}
		}
	} else if err := r.scan(emit, o.Follow); err != nil {
		return err
	}
	if !o.Follow {
		return nil
	}
	var read int
	counted := func(m LogMessage) error { read += len(m.Line); return emit(m) }
	for {
		running := d.stillRunning(c)
		read = 0
		if err := r.scan(counted, true); err != nil {
			return err
		}
		if !running {
			// The shim has drained and closed the log by the time the exit is recorded.
			return r.scan(emit, false)
		}
		if !o.Until.IsZero() && time.Now().After(o.Until) {
			return nil
		}
		if read >= followBurst && ctx.Err() == nil {
			// A burst of output: read on at once, so that a fast log is not rotated away under a sleeping reader.
			continue
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

// logFollower reads a json-file log across its rotation: the rotated files oldest first (<path>.N ... <path>.1),
// then <path>, and on across later rotations, each record once. It holds one file at a time and finds the next
// by inode: a rotation renames every file one number up and starts <path> as a new file, so the file that came
// after the one just read is the one now a number below it. A reader that falls more than max-file rotations
// behind loses the files deleted meanwhile and goes on with the oldest left, as dockerd's does.
type logFollower struct {
	path     string
	maxFiles int
	f        *os.File
	fi       os.FileInfo
	r        *logReader
}

// openLogFollower opens the oldest file of the log at path. The error wraps os.ErrNotExist when there is no
// log yet.
func openLogFollower(path string, maxFiles int) (*logFollower, error) {
	if maxFiles < 1 {
		maxFiles = 1
	}
	lf := &logFollower{path: path, maxFiles: maxFiles}
	f, err := lf.openOldest()
	if err != nil {
		return nil, err
	}
	if err := lf.use(f); err != nil {
		f.Close()
		return nil, err
	}
	return lf, nil
}

func (lf *logFollower) Close() error { return lf.f.Close() }

func (lf *logFollower) use(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if lf.f != nil {
		lf.f.Close()
	}
	lf.f, lf.fi = f, fi
	if lf.r == nil {
		lf.r = newLogReader(f)
	} else {
		lf.r.r, lf.r.partial = f, lf.r.partial[:0]
	}
	return nil
}

// name is the log's i-th file: 0 is <path>, 1 the newest rotated one.
func (lf *logFollower) name(i int) string {
	if i == 0 {
		return lf.path
	}
	return lf.path + "." + strconv.Itoa(i)
}

// openOldest opens the highest-numbered file there is, or <path>. A rotation while it looks makes an older
// file appear behind the one it opened; it then looks again.
func (lf *logFollower) openOldest() (*os.File, error) {
	for attempt := 0; ; attempt++ {
		var f *os.File
		idx := -1
		for i := lf.maxFiles - 1; i >= 0; i-- {
			var err error
			f, err = os.Open(lf.name(i))
			if err == nil {
				idx = i
				break
			}
			if !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
		}
		if idx < 0 {
			return nil, &os.PathError{Op: "open", Path: lf.path, Err: os.ErrNotExist}
		}
		older := false
		for j := idx + 1; j < lf.maxFiles && !older; j++ {
			_, err := os.Lstat(lf.name(j))
			older = err == nil
		}
		if !older || attempt == 10 {
			return f, nil
		}
		f.Close()
	}
}

// scan emits every complete record available now, moving on from a rotated-away file to its successor.
// A partial last line of <path> is kept when partialOK, as in logReader.scan.
func (lf *logFollower) scan(fn func(LogMessage) error, partialOK bool) error {
	for {
		if err := lf.r.scan(fn, partialOK); err != nil {
			return err
		}
		cur, err := os.Stat(lf.path)
		if err == nil && os.SameFile(cur, lf.fi) {
			return nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return errdefs.System("read log %s: %w", lf.path, err)
		}
		// Rotated away. The shim wrote its last entry into it before renaming it, so all of it is there now.
		if err := lf.r.scan(fn, false); err != nil {
			return err
		}
		next, err := lf.next()
		if err != nil {
			return errdefs.System("read log %s after a rotation: %w", lf.path, err)
		}
		if next == nil {
			return nil // the shim has not started the new file yet: next round
		}
		if err := lf.use(next); err != nil {
			next.Close()
			return errdefs.System("read log %s after a rotation: %w", lf.path, err)
		}
	}
}

// gapWait bounds the wait for the new <path> between the shim's rename of the old one and its create.
const (
	gapPoll  = 2 * time.Millisecond
	gapPolls = 100
)

// next opens the file written after lf.f, or returns nil if it is not there yet.
func (lf *logFollower) next() (*os.File, error) {
	for attempt := 0; attempt < gapPolls; attempt++ {
		f, retry, err := lf.tryNext()
		if f != nil || err != nil || !retry {
			return f, err
		}
		time.Sleep(gapPoll)
	}
	return nil, nil
}

func (lf *logFollower) tryNext() (f *os.File, retry bool, err error) {
	// Files only move up. If lf.f is not found at i it is above i by then, so a scan upwards never misses it
	// while it exists.
	for i := 1; i < lf.maxFiles; i++ {
		st, err := os.Stat(lf.name(i))
		if err != nil || !os.SameFile(st, lf.fi) {
			continue
		}
		f, err := os.Open(lf.name(i - 1))
		if errors.Is(err, os.ErrNotExist) {
			return nil, true, nil // between the shim's rename and its create
		}
		if err != nil {
			return nil, false, err
		}
		// Still at i after the open: no rotation came between, so f is the successor.
		if st, err := os.Stat(lf.name(i)); err == nil && os.SameFile(st, lf.fi) {
			return f, false, nil
		}
		f.Close()
		return nil, true, nil
	}
	// Deleted: max-file is 1, or this reader fell max-file rotations behind.
	f, err = lf.openOldest()
	if errors.Is(err, os.ErrNotExist) {
		return nil, true, nil
	}
	return f, false, err
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
