package daemon

import (
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseSignal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want syscall.Signal
		ok   bool
	}{
		{"", syscall.SIGKILL, true},
		{"KILL", syscall.SIGKILL, true},
		{"SIGKILL", syscall.SIGKILL, true},
		{"kill", syscall.SIGKILL, true},
		{"sigterm", syscall.SIGTERM, true},
		{"9", syscall.SIGKILL, true},
		{"15", syscall.SIGTERM, true},
		{"64", syscall.Signal(64), true},
		{"WINCH", syscall.SIGWINCH, true},
		{"0", 0, false},
		{"65", 0, false},
		{"-1", 0, false},
		{"SIG", 0, false},
		{"NOPE", 0, false},
		{"SIGKILL\x00", 0, false},
		{"1e3", 0, false},
	} {
		got, err := ParseSignal(tc.in)
		if tc.ok != (err == nil) || (tc.ok && got != tc.want) {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d ok=%t", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseSignal(%q): error %v is not InvalidArgument", tc.in, err)
		}
	}
}

func TestValidateHostConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		hc   api.HostConfig
		ok   bool
	}{
		{"empty", api.HostConfig{}, true},
		{"json-file", api.HostConfig{LogConfig: api.LogConfig{Type: "json-file"}}, true},
		{"syslog", api.HostConfig{LogConfig: api.LogConfig{Type: "syslog"}}, false},
		{"none", api.HostConfig{LogConfig: api.LogConfig{Type: "none"}}, true},
		{"none with options", api.HostConfig{LogConfig: api.LogConfig{Type: "none", Config: map[string]string{"max-size": "1m"}}}, false},
		{"bad restart", api.HostConfig{RestartPolicy: api.RestartPolicy{Name: "sometimes"}}, false},
		{"negative retries", api.HostConfig{RestartPolicy: api.RestartPolicy{Name: "on-failure", MaximumRetryCount: -1}}, false},
		{"retries without on-failure", api.HostConfig{RestartPolicy: api.RestartPolicy{Name: "always", MaximumRetryCount: 3}}, false},
		{"autoremove with restart", api.HostConfig{AutoRemove: true, RestartPolicy: api.RestartPolicy{Name: "always"}}, false},
		{"autoremove", api.HostConfig{AutoRemove: true}, true},
	} {
		err := validateHostConfig(&tc.hc)
		if tc.ok != (err == nil) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if err != nil && !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v is not InvalidArgument", tc.name, err)
		}
	}
}

func TestMergeImageConfig(t *testing.T) {
	img := &image.Image{Config: dockerspec.DockerOCIImage{Config: dockerspec.DockerOCIImageConfig{ImageConfig: ocispec.ImageConfig{
		Env: []string{"PATH=/bin", "A=1"}, Entrypoint: []string{"/entry"}, Cmd: []string{"default"},
		WorkingDir: "/w", User: "u", StopSignal: "SIGINT",
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "bogus/port/spec": {}},
		Labels:       map[string]string{"from": "image", "both": "image"},
	}}}}
	for _, tc := range []struct {
		name       string
		req        api.Config
		entrypoint []string
		cmd        []string
		env        []string
	}{
		{"image defaults", api.Config{}, []string{"/entry"}, []string{"default"}, []string{"PATH=/bin", "A=1"}},
		{"cmd overrides", api.Config{Cmd: []string{"x"}}, []string{"/entry"}, []string{"x"}, []string{"PATH=/bin", "A=1"}},
		{"entrypoint drops image cmd", api.Config{Entrypoint: []string{"/other"}}, []string{"/other"}, nil, []string{"PATH=/bin", "A=1"}},
		{"empty entrypoint clears", api.Config{Entrypoint: []string{""}, Cmd: []string{"sh"}}, nil, []string{"sh"}, []string{"PATH=/bin", "A=1"}},
		{"env by name", api.Config{Env: []string{"A=2", "B=3"}}, []string{"/entry"}, []string{"default"}, []string{"PATH=/bin", "A=2", "B=3"}},
	} {
		req := tc.req
		req.Labels = map[string]string{"both": "request"}
		got := mergeImageConfig(&req, img)
		if !equal(got.Entrypoint, tc.entrypoint) || !equal(got.Cmd, tc.cmd) || !equal(got.Env, tc.env) {
			t.Errorf("%s: entrypoint %q cmd %q env %q", tc.name, got.Entrypoint, got.Cmd, got.Env)
		}
		if got.WorkingDir != "/w" || got.User != "u" || got.StopSignal != "SIGINT" {
			t.Errorf("%s: image defaults not applied: %+v", tc.name, got)
		}
		if got.Labels["from"] != "image" || got.Labels["both"] != "request" {
			t.Errorf("%s: labels %v", tc.name, got.Labels)
		}
		if _, ok := got.ExposedPorts[network.MustParsePort("80/tcp")]; !ok || len(got.ExposedPorts) != 1 {
			t.Errorf("%s: exposed ports %v (a bad spec in the image is dropped)", tc.name, got.ExposedPorts)
		}
	}
	// Labels are never nil: ps and inspect print {} rather than null.
	if got := mergeImageConfig(&api.Config{}, &image.Image{}); got.Labels == nil {
		t.Errorf("labels of a container from an unlabelled image are nil")
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEventsSubscribe(t *testing.T) {
	e := NewEvents()
	e.Publish(events.ContainerEventType, events.ActionCreate, "c1", map[string]string{"image": "busybox", "name": "x"})
	mid := time.Now()
	time.Sleep(time.Millisecond) // distinct timestamps on coarse clocks
	e.Publish(events.ImageEventType, events.ActionTag, "sha256:1", map[string]string{"name": "busybox:latest"})
	e.Publish(events.NetworkEventType, events.ActionCreate, "n1", map[string]string{"name": "net"})

	past, ch, cancel := e.Subscribe(mid)
	if len(past) != 2 || past[0].Type != events.ImageEventType {
		t.Fatalf("replay since mid: %+v", past)
	}
	if past[0].Status != string(events.ActionTag) || past[0].ID != "sha256:1" || past[0].From != "" {
		t.Errorf("image event legacy fields: %+v", past[0])
	}
	if past[1].Status != "" || past[1].ID != "" {
		t.Errorf("network events carry no legacy fields: %+v", past[1])
	}
	if none, _, c := e.Subscribe(time.Time{}); len(none) != 0 {
		t.Errorf("a zero since replays nothing, got %d", len(none))
	} else {
		c()
	}
	if e.Listeners() != 1 {
		t.Errorf("listeners: %d", e.Listeners())
	}
	e.Publish(events.ContainerEventType, events.ActionDie, "c1", map[string]string{"image": "busybox", "exitCode": "3"})
	ev := <-ch
	if ev.Action != events.ActionDie || ev.From != "busybox" || ev.Scope != "local" || ev.Time != ev.TimeNano/1e9 {
		t.Errorf("live event: %+v", ev)
	}
	cancel()
	if e.Listeners() != 0 {
		t.Errorf("listeners after cancel: %d", e.Listeners())
	}
	// History is bounded; a slow subscriber misses events instead of blocking.
	_, slow, cancel := e.Subscribe(time.Time{})
	defer cancel()
	for i := 0; i < eventHistory+300; i++ {
		e.Publish(events.ContainerEventType, events.ActionStart, "c", nil)
	}
	if past, _, c := e.Subscribe(time.Unix(0, 1)); len(past) != eventHistory {
		t.Errorf("history holds %d events, want %d", len(past), eventHistory)
	} else {
		c()
	}
	if len(slow) != cap(slow) {
		t.Errorf("slow subscriber buffer: %d of %d", len(slow), cap(slow))
	}
}

func TestStatusString(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		st   container.State
		want string
	}{
		{container.State{Status: api.StateCreated}, "Created"},
		{container.State{Status: api.StateRunning, StartedAt: now.Add(-3 * time.Second)}, "Up 3 seconds"},
		{container.State{Status: api.StatePaused, StartedAt: now.Add(-3 * time.Second)}, "Up 3 seconds (Paused)"},
		{container.State{Status: api.StateExited, ExitCode: 2, FinishedAt: now.Add(-2 * time.Minute)}, "Exited (2) 2 minutes ago"},
		{container.State{Status: api.StateExited}, "Created"},
		{container.State{Status: api.StateDead}, "Dead"},
		{container.State{Status: api.StateRestarting, ExitCode: 1, FinishedAt: now.Add(-time.Second)}, "Restarting (1) 1 second ago"},
	} {
		c := &container.Container{State: tc.st}
		if got := statusString(c); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.st, got, tc.want)
		}
	}
}

func TestAttachTicketRelease(t *testing.T) {
	l := &live{created: make(chan struct{}), removed: make(chan struct{})}
	l.pending.Add(1)
	tk := &AttachTicket{l: l, created: l.created, removed: l.removed}
	tk.Release()
	tk.Release() // a second release must not drive the counter negative
	var nilTicket *AttachTicket
	nilTicket.Release()
	done := make(chan struct{})
	go func() { l.pending.Wait(); close(done) }()
	<-done
	for _, tc := range []struct {
		status api.ContainerState
		want   bool
	}{
		{api.StateCreated, true}, {api.StateExited, true}, {api.StateRestarting, true},
		{api.StateRunning, false}, {api.StatePaused, false}, {api.StateDead, false},
	} {
		if got := waitsForStart(&container.Container{State: container.State{Status: tc.status}}); got != tc.want {
			t.Errorf("waitsForStart(%s) = %t", tc.status, got)
		}
	}
}

func TestVersionFields(t *testing.T) {
	d := &Daemon{}
	v := d.Version()
	if v.APIVersion != APIVersion || v.MinAPIVersion != MinAPIVersion || v.Version != EngineVersion || v.Os != "linux" {
		t.Errorf("version: %+v", v)
	}
	if len(v.Components) != 1 || v.Components[0].Name != "Engine" || v.Components[0].Details["ApiVersion"] != APIVersion {
		t.Errorf("components: %+v", v.Components)
	}
}

func TestExecResizeBeforeProcess(t *testing.T) {
	d := &Daemon{}
	code := 0
	for _, tc := range []struct {
		name    string
		e       *Exec
		ok      bool
		pending bool
	}{
		{"created, not started", &Exec{ID: "a"}, false, false},
		{"started, process not there yet", &Exec{ID: "b", started: true}, true, true},
		{"finished", &Exec{ID: "c", started: true, exitCode: &code}, false, false},
	} {
		d.execs.Store(tc.e.ID, tc.e)
		err := d.ExecResize(tc.e.ID, 12, 34)
		if tc.ok != (err == nil) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if err != nil && !errdefs.IsConflict(err) {
			t.Errorf("%s: %v is not a conflict", tc.name, err)
		}
		if got := tc.e.resize != nil && *tc.e.resize == [2]uint16{12, 34}; got != tc.pending {
			t.Errorf("%s: pending size %v", tc.name, tc.e.resize)
		}
	}
	if err := d.ExecResize("nope", 1, 1); !errdefs.IsNotFound(err) {
		t.Errorf("missing exec: %v", err)
	}
}

// FuzzCreateValidation feeds decoded create bodies through the checks and
// the image merge that run before any state changes: no panic, and every
// refusal is an InvalidArgument.
func FuzzCreateValidation(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"Image":"busybox","Entrypoint":[""],"Cmd":null}`, `{"HostConfig":{"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":-1}}}`,
		`{"HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"unless-stopped"}}}`, `{"HostConfig":{"LogConfig":{"Type":"none"}}}`,
		`{"Env":["=","A","A=1","A=2"],"ExposedPorts":{"1/tcp":{}},"Labels":{"":""},"Volumes":{"":{}}}`,
		`{"Entrypoint":[],"Cmd":[]}`, `{"Healthcheck":{"Test":["NONE"]}}`,
	} {
		f.Add(s)
	}
	img := &image.Image{Config: dockerspec.DockerOCIImage{Config: dockerspec.DockerOCIImageConfig{ImageConfig: ocispec.ImageConfig{
		Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}, ExposedPorts: map[string]struct{}{"80/tcp": {}, "x": {}},
		Volumes: map[string]struct{}{"/data": {}}, Labels: map[string]string{"a": "b"},
	}}}}
	f.Fuzz(func(t *testing.T, body string) {
		var req api.CreateRequest
		if json.Unmarshal([]byte(body), &req) != nil {
			return
		}
		hc := req.HostConfig
		if hc == nil {
			hc = &api.HostConfig{}
		}
		if err := validateHostConfig(hc); err != nil && !errdefs.IsInvalidArgument(err) {
			t.Fatalf("validate %s: %v is not InvalidArgument", body, err)
		}
		cfg := req.Config
		if cfg == nil {
			cfg = &api.Config{}
		}
		merged := mergeImageConfig(cfg, img)
		if merged.Labels == nil {
			t.Fatalf("merge %s: nil labels", body)
		}
	})
}
