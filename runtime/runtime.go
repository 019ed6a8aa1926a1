package runtime

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	runc "github.com/containerd/go-runc"
	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/errdefs"
)

// Runtime drives one OCI runtime binary (runc) with its own state directory.
type Runtime struct {
	binary string
	root   string
	runc   *runc.Runc
}

// New returns a driver for binary ("" = "runc" on PATH) keeping its state
// under root (runc --root, e.g. <exec-root>/runtime/runc).
func New(binary, root string) *Runtime {
	if binary == "" {
		binary = "runc"
	}
	return &Runtime{
		binary: binary,
		root:   root,
		runc:   &runc.Runc{Command: binary, Root: root},
	}
}

// Binary is the runtime executable this driver calls.
func (r *Runtime) Binary() string { return r.binary }

// Root is the runtime's state directory (its --root).
func (r *Runtime) Root() string { return r.root }

// Kill sends sig to the container's init process. A paused container
// is thawed after SIGKILL, which a frozen process would otherwise never
// receive.
func (r *Runtime) Kill(ctx context.Context, id string, sig syscall.Signal) error {
	if err := r.runc.Kill(ctx, id, int(sig), nil); err != nil {
		return classify(err, id, "kill")
	}
	if sig == syscall.SIGKILL {
		if status, _, err := r.State(ctx, id); err == nil && status == "paused" {
			if err := r.Resume(ctx, id); err != nil && !errdefs.IsConflict(err) && !errdefs.IsNotFound(err) {
				return err
			}
		}
	}
	return nil
}

// KillAll sends sig to every process of the container (runc kill --all).
func (r *Runtime) KillAll(ctx context.Context, id string, sig syscall.Signal) error {
	if err := r.runc.Kill(ctx, id, int(sig), &runc.KillOpts{All: true}); err != nil {
		return classify(err, id, "kill")
	}
	return nil
}

// Pause freezes every process of the container.
func (r *Runtime) Pause(ctx context.Context, id string) error {
	if err := r.runc.Pause(ctx, id); err != nil {
		return classify(err, id, "pause")
	}
	return nil
}

// Resume thaws a paused container.
func (r *Runtime) Resume(ctx context.Context, id string) error {
	if err := r.runc.Resume(ctx, id); err != nil {
		return classify(err, id, "unpause")
	}
	return nil
}

// Delete removes the runtime's record of the container; with force a
// running container is killed first. A container the runtime does not know
// is not an error.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	if r.root != "" {
		// runc keeps a directory per container under its root: without it
		// there is nothing to delete, and no process needs to be spawned.
		if _, err := os.Stat(filepath.Join(r.root, id)); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
	}
	if err := r.runc.Delete(ctx, id, &runc.DeleteOpts{Force: force}); err != nil {
		err = classify(err, id, "delete")
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	return nil
}

// State returns the runtime's status of the container ("created",
// "running", "paused", "stopped") and its init's host pid.
func (r *Runtime) State(ctx context.Context, id string) (string, int, error) {
	c, err := r.runc.State(ctx, id)
	if err != nil {
		return "", 0, classify(err, id, "state")
	}
	return c.Status, c.Pid, nil
}

// Pids lists the host pids of every process in the container.
func (r *Runtime) Pids(ctx context.Context, id string) ([]int, error) {
	pids, err := r.runc.Ps(ctx, id)
	if err != nil {
		return nil, classify(err, id, "list processes of")
	}
	return pids, nil
}

// classify gives a runtime failure its class from runc's own words, keeping
// them in the message.
func classify(err error, id, verb string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return errdefs.Unavailable("%s container %s: %w", verb, id, err)
	}
	var ee *exec.Error
	if errors.As(err, &ee) || errors.Is(err, os.ErrNotExist) {
		return errdefs.System("%s container %s: runtime not available: %w", verb, id, err)
	}
	msg := runcMessage(err.Error())
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "container does not exist"):
		return errdefs.NotFound("No such container: %s", id)
	case strings.Contains(low, "not running") || strings.Contains(low, "container is stopped") ||
		strings.Contains(low, "process already finished"):
		return errdefs.Conflict("container %s is not running", id)
	case strings.Contains(low, "not paused"):
		return errdefs.Conflict("container %s is not paused", id)
	case strings.Contains(low, "already paused"):
		return errdefs.Conflict("container %s is already paused", id)
	case strings.Contains(low, "cannot delete container that is not stopped") ||
		strings.Contains(low, "is not stopped"):
		return errdefs.Conflict("container %s is running: stop it before removing it", id)
	}
	return errdefs.System("%s container %s: %s", verb, id, msg)
}

// runcMessage strips go-runc's "exit status N: " prefix and runc's logrus
// decoration (time="..." level=error msg="...") down to the message.
func runcMessage(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "msg=\""); i >= 0 {
		rest := s[i+5:]
		if j := strings.LastIndex(rest, "\""); j >= 0 {
			rest = rest[:j]
		}
		return strings.ReplaceAll(rest, `\"`, `"`)
	}
	if strings.HasPrefix(s, "exit status ") {
		if _, after, ok := strings.Cut(s, ": "); ok {
			return strings.TrimSpace(after)
		}
	}
	return s
}

// Update changes the resource limits of a running container (docker
// update); build res with Resources.
func (r *Runtime) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	if res == nil {
		return errdefs.InvalidArgument("update container %s: no resources", id)
	}
	if err := r.runc.Update(ctx, id, res); err != nil {
		return classify(err, id, "update")
	}
	return nil
}

// Resources converts HostConfig resources to the spec's, with the same
// validation GenerateSpec applies.
func Resources(res container.Resources) (*specs.LinuxResources, error) {
	return linuxResources(res, currentHost())
}
