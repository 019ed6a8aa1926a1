package container

import (
	"time"

	"github.com/berth-dev/berth/errdefs"
	api "github.com/moby/moby/api/types/container"
)

// Status is a container's lifecycle state, with Docker's names.
type Status = api.ContainerState

// State is the persisted lifecycle state of a container. Every change goes
// through a transition method so that an illegal move is an error with
// Docker's answer (304 or 409) rather than a silent corruption.
type State struct {
	Status     Status
	Pid        int
	ExitCode   int
	Error      string
	OOMKilled  bool
	StartedAt  time.Time
	FinishedAt time.Time
	// ManuallyStopped is set by stop/kill through the API so that
	// unless-stopped and always policies do not bring the container back
	// until it is started again.
	ManuallyStopped bool
	RestartCount    int
	Removing        bool
}

// Running reports whether the container has a live process (running or paused).
func (s *State) Running() bool {
	return s.Status == api.StateRunning || s.Status == api.StatePaused
}

// CanStart checks that start is legal: 304 if it already runs.
func (s *State) CanStart(id string) error {
	switch s.Status {
	case api.StateRunning:
		return errdefs.NotModified("container %s is already running", id)
	case api.StatePaused:
		return errdefs.Conflict("cannot start a paused container, try unpause instead")
	case api.StateDead:
		return errdefs.Conflict("container %s is marked for removal and cannot be started", id)
	}
	if s.Removing {
		return errdefs.Conflict("container %s is marked for removal and cannot be started", id)
	}
	return nil
}

// SetRunning records a started process.
func (s *State) SetRunning(pid int, now time.Time) {
	s.Status = api.StateRunning
	s.Pid = pid
	s.ExitCode = 0
	s.Error = ""
	s.OOMKilled = false
	s.StartedAt = now
	s.ManuallyStopped = false
}

// SetExited records the end of the process.
func (s *State) SetExited(code int, at time.Time, errMsg string) {
	s.Status = api.StateExited
	s.Pid = 0
	s.ExitCode = code
	s.FinishedAt = at
	s.Error = errMsg
}

// SetStartFailed records a start that never produced a running process;
// Docker reports these as exited with code 128 (or 127/126 by cause).
func (s *State) SetStartFailed(code int, msg string, at time.Time) {
	if s.Status != api.StateCreated {
		s.Status = api.StateExited
	}
	s.ExitCode = code
	s.Error = msg
	s.FinishedAt = at
	s.Pid = 0
}

// SetRestarting marks the container as waiting for its restart policy.
func (s *State) SetRestarting() {
	s.Status = api.StateRestarting
	s.Pid = 0
}

// CanPause checks pause is legal.
func (s *State) CanPause(id string) error {
	switch s.Status {
	case api.StateRunning:
		return nil
	case api.StatePaused:
		return errdefs.Conflict("container %s is already paused", id)
	default:
		return errdefs.Conflict("container %s is not running", id)
	}
}

// CanUnpause checks unpause is legal.
func (s *State) CanUnpause(id string) error {
	if s.Status != api.StatePaused {
		return errdefs.Conflict("container %s is not paused", id)
	}
	return nil
}

// CanKill checks kill is legal: Docker answers 409 for a stopped container.
func (s *State) CanKill(id string) error {
	if !s.Running() {
		return errdefs.Conflict("cannot kill container: %s: container %s is not running", id, id)
	}
	return nil
}

// CanRemove checks rm without force.
func (s *State) CanRemove(id string, force bool) error {
	if s.Removing {
		return errdefs.Conflict("removal of container %s is already in progress", id)
	}
	if force {
		return nil
	}
	switch s.Status {
	case api.StatePaused:
		return errdefs.Conflict("cannot remove container %q: container is paused and must be unpaused first: stop the container before removing or force remove", id)
	case api.StateRunning, api.StateRestarting:
		return errdefs.Conflict("cannot remove container %q: container is %s: stop the container before removing or force remove", id, s.Status)
	}
	return nil
}

// API renders the state as the Engine API's State object.
func (s *State) API() *api.State {
	st := &api.State{
		Status:     s.Status,
		Running:    s.Status == api.StateRunning || s.Status == api.StatePaused,
		Paused:     s.Status == api.StatePaused,
		Restarting: s.Status == api.StateRestarting,
		OOMKilled:  s.OOMKilled,
		Dead:       s.Status == api.StateDead,
		Pid:        s.Pid,
		ExitCode:   s.ExitCode,
		Error:      s.Error,
		StartedAt:  apiTime(s.StartedAt),
		FinishedAt: apiTime(s.FinishedAt),
	}
	if s.Removing {
		st.Status = api.StateRemoving
	}
	return st
}

func apiTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}
