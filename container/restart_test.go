package container

import (
	"testing"
	"time"

	api "github.com/moby/moby/api/types/container"
)

func TestShouldRestart(t *testing.T) {
	cases := []struct {
		name    string
		policy  api.RestartPolicy
		state   State
		code    int
		restart bool
	}{
		{"no", api.RestartPolicy{Name: "no"}, State{}, 1, false},
		{"empty", api.RestartPolicy{}, State{}, 1, false},
		{"always on success", api.RestartPolicy{Name: "always"}, State{}, 0, true},
		{"always manually stopped", api.RestartPolicy{Name: "always"}, State{ManuallyStopped: true}, 137, false},
		{"unless-stopped", api.RestartPolicy{Name: "unless-stopped"}, State{}, 0, true},
		{"on-failure success", api.RestartPolicy{Name: "on-failure"}, State{}, 0, false},
		{"on-failure failure", api.RestartPolicy{Name: "on-failure"}, State{}, 2, true},
		{"on-failure max reached", api.RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}, State{RestartCount: 2}, 2, false},
		{"on-failure under max", api.RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}, State{RestartCount: 1}, 2, true},
	}
	for _, c := range cases {
		s := c.state
		if got := ShouldRestart(c.policy, &s, c.code); got != c.restart {
			t.Errorf("%s: got %v want %v", c.name, got, c.restart)
		}
	}
}

func TestBackoff(t *testing.T) {
	if d := Backoff(1, 0); d != 100*time.Millisecond {
		t.Fatal(d)
	}
	if d := Backoff(3, time.Second); d != 400*time.Millisecond {
		t.Fatal(d)
	}
	if d := Backoff(30, 0); d != time.Minute {
		t.Fatal(d)
	}
	if d := Backoff(5, time.Minute); d != 100*time.Millisecond {
		t.Fatal(d)
	}
}

func TestTransitions(t *testing.T) {
	var s State
	s.Status = api.StateCreated
	if err := s.CanStart("c"); err != nil {
		t.Fatal(err)
	}
	s.SetRunning(42, time.Now())
	if err := s.CanStart("c"); err == nil {
		t.Fatal("start on running must fail")
	}
	if err := s.CanRemove("c", false); err == nil {
		t.Fatal("rm of running must fail")
	}
	if err := s.CanPause("c"); err != nil {
		t.Fatal(err)
	}
	s.Status = api.StatePaused
	if err := s.CanStart("c"); err == nil {
		t.Fatal("start on paused must fail")
	}
	s.SetExited(3, time.Now(), "")
	if err := s.CanKill("c"); err == nil {
		t.Fatal("kill of exited must fail")
	}
	if s.API().ExitCode != 3 || s.API().Running {
		t.Fatal("api state wrong")
	}
}

func TestRestartOnBoot(t *testing.T) {
	cases := []struct {
		policy api.RestartPolicy
		state  State
		want   bool
	}{
		{api.RestartPolicy{Name: "always"}, State{ManuallyStopped: true}, true},
		{api.RestartPolicy{Name: "unless-stopped"}, State{ManuallyStopped: true}, false},
		{api.RestartPolicy{Name: "unless-stopped"}, State{}, true},
		{api.RestartPolicy{Name: "on-failure"}, State{ExitCode: 0}, false},
		{api.RestartPolicy{Name: "on-failure"}, State{ExitCode: 1}, true},
		{api.RestartPolicy{Name: "on-failure", MaximumRetryCount: 1}, State{ExitCode: 1, RestartCount: 1}, false},
		{api.RestartPolicy{Name: "no"}, State{ExitCode: 1}, false},
	}
	for _, c := range cases {
		s := c.state
		if got := RestartOnBoot(c.policy, &s); got != c.want {
			t.Errorf("%+v %+v: got %v", c.policy, c.state, got)
		}
	}
}
