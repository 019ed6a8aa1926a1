package container

import (
	"time"

	api "github.com/moby/moby/api/types/container"
)

// Restart back-off follows Docker: 100 ms doubling per consecutive failure,
// capped at one minute, reset when a run lasted at least 10 seconds.
const (
	backoffStart = 100 * time.Millisecond
	backoffMax   = time.Minute
	backoffReset = 10 * time.Second
)

// ShouldRestart decides whether an exit triggers the restart policy.
// daemonShutdown is true when the exit was caused by berthd itself.
func ShouldRestart(p api.RestartPolicy, s *State, exitCode int) bool {
	if s.ManuallyStopped {
		return false
	}
	switch p.Name {
	case api.RestartPolicyAlways, api.RestartPolicyUnlessStopped:
		return true
	case api.RestartPolicyOnFailure:
		if exitCode == 0 {
			return false
		}
		return p.MaximumRetryCount == 0 || s.RestartCount < p.MaximumRetryCount
	}
	return false
}

// RestartOnBoot decides whether a stopped container comes back when berthd
// starts (after a reboot, or when its process vanished without an exit), as
// dockerd does: always even after a manual stop, unless-stopped unless
// stopped by hand, on-failure after a failure with retries left.
func RestartOnBoot(p api.RestartPolicy, s *State) bool {
	switch p.Name {
	case api.RestartPolicyAlways:
		return true
	case api.RestartPolicyUnlessStopped:
		return !s.ManuallyStopped
	case api.RestartPolicyOnFailure:
		return !s.ManuallyStopped && s.ExitCode != 0 &&
			(p.MaximumRetryCount == 0 || s.RestartCount < p.MaximumRetryCount)
	}
	return false
}

// Backoff returns how long to wait before restart number n (1-based) given
// how long the last run lasted.
func Backoff(n int, lastRun time.Duration) time.Duration {
	if lastRun >= backoffReset || n <= 1 {
		return backoffStart
	}
	d := backoffStart
	for i := 1; i < n && d < backoffMax; i++ {
		d *= 2
	}
	if d > backoffMax {
		d = backoffMax
	}
	return d
}
