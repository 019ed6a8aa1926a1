package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/runtime"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Exec is one `docker exec` instance.
type Exec struct {
	ID        string
	Container *container.Container
	Config    api.ExecCreateRequest

	mu       sync.Mutex
	running  bool
	started  bool
	exitCode *int
	pid      int
	proc     *runtime.ExecProcess
	// resize holds a size asked for between start and the process being
	// there (the CLI resizes right after start); ExecStart applies it.
	resize *[2]uint16
}

// ExecCreate registers an exec in a running container.
func (d *Daemon) ExecCreate(ctx context.Context, ref string, cfg api.ExecCreateRequest) (string, error) {
	c, err := d.Containers.Get(ref)
	if err != nil {
		return "", err
	}
	c.Lock()
	defer c.Unlock()
	switch {
	case c.State.Status == api.StatePaused:
		return "", errdefs.Conflict("Container %s is paused, unpause the container before exec", c.ID)
	case c.State.Status != api.StateRunning:
		return "", errdefs.Conflict("container %s is not running", c.ID)
	}
	if len(cfg.Cmd) == 0 {
		return "", errdefs.InvalidArgument("No exec command specified")
	}
	e := &Exec{ID: container.NewID(), Container: c, Config: cfg}
	d.execs.Store(e.ID, e)
	d.containerEvent(c, events.Action(string(events.ActionExecCreate)+": "+strings.Join(cfg.Cmd, " ")), map[string]string{"execID": e.ID})
	return e.ID, nil
}

func (d *Daemon) getExec(id string) (*Exec, error) {
	v, ok := d.execs.Load(id)
	if !ok {
		return nil, errdefs.NotFound("No such exec instance: %s", id)
	}
	return v.(*Exec), nil
}

// ExecCheck validates an exec start before the server hijacks the connection.
func (d *Daemon) ExecCheck(id string) (*Exec, error) {
	e, err := d.getExec(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return nil, errdefs.Conflict("Error: Exec command %s has already run", id)
	}
	c := e.Container
	c.Lock()
	defer c.Unlock()
	if c.State.Status != api.StateRunning {
		return nil, errdefs.Conflict("container %s is not running", c.ID)
	}
	return e, nil
}

// ExecStartOptions carries the streams of POST /exec/{id}/start.
type ExecStartOptions struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Height, Width  uint16
	Detach         bool
}

// ExecStart runs the exec and, unless detached, returns after it exited and
// its output was copied; the exit code is recorded before returning.
func (d *Daemon) ExecStart(ctx context.Context, id string, o ExecStartOptions) error {
	e, err := d.getExec(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return errdefs.Conflict("Error: Exec command %s has already run", id)
	}
	e.started = true
	e.mu.Unlock()
	c := e.Container
	c.Lock()
	if c.State.Status != api.StateRunning {
		c.Unlock()
		return errdefs.Conflict("container %s is not running", c.ID)
	}
	rt, _, err := d.runtimeFor(c.HostConfig.Runtime)
	rootfs := filepath.Join(d.bundleDir(c.ID), "rootfs")
	c.Unlock()
	if err != nil {
		return err
	}
	base, err := readSpec(filepath.Join(d.bundleDir(c.ID), "config.json"))
	if err != nil {
		return err
	}
	proc, err := runtime.ExecProcessSpec(base, rootfs, e.Config)
	if err != nil {
		d.setExecExit(e, 126)
		return err
	}
	if !e.Config.AttachStdin {
		o.Stdin = nil
	}
	if !e.Config.AttachStdout {
		o.Stdout = nil
	}
	if !e.Config.AttachStderr {
		o.Stderr = nil
	}
	if o.Detach {
		o.Stdin, o.Stdout, o.Stderr = nil, io.Discard, io.Discard
	}
	if e.Config.ConsoleSize != nil && o.Height == 0 {
		o.Height, o.Width = uint16(e.Config.ConsoleSize[0]), uint16(e.Config.ConsoleSize[1])
	}
	p, err := rt.Exec(context.WithoutCancel(ctx), c.ID, proc, runtime.ExecIO{
		Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, Terminal: e.Config.Tty, Height: o.Height, Width: o.Width,
	})
	if err != nil {
		code := 126 // dockerd's code for an exec that could not start
		var se *runtime.StartError
		if errors.As(err, &se) {
			code = se.ExitCode()
		}
		d.setExecExit(e, code)
		return err
	}
	e.mu.Lock()
	e.running, e.pid, e.proc = true, p.Pid(), p
	pending := e.resize
	e.resize = nil
	e.mu.Unlock()
	if pending != nil {
		logErr("resize exec", p.Resize(pending[0], pending[1]), "exec", e.ID)
	}
	d.containerEvent(c, events.Action(string(events.ActionExecStart)+": "+strings.Join(e.Config.Cmd, " ")), map[string]string{"execID": e.ID})
	wait := func() {
		code, werr := p.Wait()
		if werr != nil {
			logErr("wait for exec", werr, "exec", e.ID)
		}
		d.setExecExit(e, code)
		d.containerEvent(c, events.ActionExecDie, map[string]string{"execID": e.ID, "exitCode": fmt.Sprint(code)})
	}
	if o.Detach {
		go wait()
		return nil
	}
	wait()
	return nil
}

func (d *Daemon) setExecExit(e *Exec, code int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.running = false
	e.exitCode = &code
}

// ExecResize sets an exec's TTY size.
func (d *Daemon) ExecResize(id string, height, width uint16) error {
	e, err := d.getExec(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	p := e.proc
	if p == nil && e.started && e.exitCode == nil {
		// Started, process not there yet: dockerd waits for it; keep the
		// size for ExecStart to apply.
		e.resize = &[2]uint16{height, width}
		e.mu.Unlock()
		return nil
	}
	e.mu.Unlock()
	if p == nil {
		return errdefs.Conflict("exec %s is not running", id)
	}
	return p.Resize(height, width)
}

// ExecInspect renders GET /exec/{id}/json.
func (d *Daemon) ExecInspect(id string) (api.ExecInspectResponse, error) {
	e, err := d.getExec(id)
	if err != nil {
		return api.ExecInspectResponse{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	priv := e.Config.Privileged
	r := api.ExecInspectResponse{
		ID: e.ID, Running: e.running, ExitCode: e.exitCode,
		ProcessConfig: &api.ExecProcessConfig{Tty: e.Config.Tty, Entrypoint: e.Config.Cmd[0], Arguments: e.Config.Cmd[1:], Privileged: &priv, User: e.Config.User},
		OpenStdin:     e.Config.AttachStdin, OpenStdout: e.Config.AttachStdout, OpenStderr: e.Config.AttachStderr,
		ContainerID: e.Container.ID, Pid: e.pid, CanRemove: !e.running && e.started,
	}
	return r, nil
}

func readSpec(path string) (*specs.Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, errdefs.Conflict("container bundle is missing: %v", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return &s, nil
}

// execIDs lists the exec ids of a container (for inspect).
func (d *Daemon) execIDs(c *container.Container) []string {
	var ids []string
	d.execs.Range(func(k, v any) bool {
		if v.(*Exec).Container == c {
			ids = append(ids, k.(string))
		}
		return true
	})
	return ids
}
