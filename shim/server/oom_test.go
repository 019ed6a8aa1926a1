package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestOOMFiles(t *testing.T) {
	for _, tt := range []struct {
		name, cgroup string
		want         []string
	}{
		{"v1 with hybrid", "9:name=systemd:/\n4:memory:/berth/c1\n1:cpu,cpuacct:/berth/c1\n0::/\n", []string{
			"/r/memory/berth/c1/memory.oom_control",
		}},
		{"root cgroup only", "4:memory:/\n0::/\n", nil},
		{"pure v2", "0::/berth/c1\n", []string{"/r/berth/c1/memory.events", "/r/unified/berth/c1/memory.events"}},
		{"memory co-mounted", "3:cpu,memory:/x/\n", []string{"/r/cpu,memory/x/memory.oom_control", "/r/memory/x/memory.oom_control"}},
		{"garbage", "nonsense\n5:memory:relative\n6:memory:/a/../b\n", nil},
		{"empty", "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := oomFiles([]byte(tt.cgroup), "/r"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("oomFiles = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseOOMKills(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		n        uint64
		ok       bool
	}{
		{"v1 oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", 3, true},
		{"v2 memory.events", "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n", 1, true},
		{"old v1 kernel", "oom_kill_disable 0\nunder_oom 0\n", 0, false},
		{"oom_kill_disable alone", "oom_kill_disable 1\n", 0, false},
		{"bad number", "oom_kill x\n", 0, false},
		{"empty", "", 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n, ok := parseOOMKills([]byte(tt.in))
			if n != tt.n || ok != tt.ok {
				t.Errorf("parseOOMKills = %d, %v; want %d, %v", n, ok, tt.n, tt.ok)
			}
		})
	}
}

func TestOOMCounterKilled(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "memory.events")
	write := func(s string) {
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("oom 0\noom_kill 2\n")
	c := oomCounter{file: f, start: 2}
	if c.killed() {
		t.Error("killed with an unchanged count")
	}
	write("oom 1\noom_kill 3\n")
	if !c.killed() {
		t.Error("not killed after the count rose")
	}
	os.Remove(f)
	if c.killed() {
		t.Error("killed with the cgroup gone")
	}
	if (oomCounter{}).killed() {
		t.Error("killed without a cgroup")
	}
}

func TestWithOOMKilled(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, tt := range []struct {
		killed bool
		msg    string
	}{{false, ""}, {true, ""}, {true, "boom"}} {
		var e struct {
			Code      int       `json:"code"`
			ExitedAt  time.Time `json:"exited_at"`
			Error     string    `json:"error"`
			OOMKilled bool      `json:"oom_killed"`
		}
		b := withOOMKilled(exitJSON(137, at, tt.msg), tt.killed)
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if e.Code != 137 || !e.ExitedAt.Equal(at) || e.Error != tt.msg || e.OOMKilled != tt.killed {
			t.Errorf("%s decodes to %+v", b, e)
		}
	}
}
