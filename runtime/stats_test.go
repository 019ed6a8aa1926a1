package runtime

import (
	"slices"
	"testing"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestFillV1(t *testing.T) {
	var s container.StatsResponse
	fillV1(&s, &v1stats.Metrics{
		CPU: &v1stats.CPUStat{
			Usage:      &v1stats.CPUUsage{Total: 300, Kernel: 100, User: 200, PerCPU: []uint64{100, 200}},
			Throttling: &v1stats.Throttle{Periods: 5, ThrottledPeriods: 2, ThrottledTime: 9},
		},
		Memory: &v1stats.MemoryStat{
			Cache: 10, TotalInactiveFile: 7, PgPgIn: 3, HierarchicalSwapLimit: 99,
			Usage: &v1stats.MemoryEntry{Usage: 1000, Max: 2000, Failcnt: 1, Limit: 4096},
		},
		Pids:  &v1stats.PidsStat{Current: 3, Limit: 50},
		Blkio: &v1stats.BlkIOStat{IoServiceBytesRecursive: []*v1stats.BlkIOEntry{{Major: 8, Minor: 0, Op: "Read", Value: 512}}},
	})
	if u := s.CPUStats.CPUUsage; u.TotalUsage != 300 || !slices.Equal(u.PercpuUsage, []uint64{100, 200}) || u.UsageInKernelmode != 100 || u.UsageInUsermode != 200 {
		t.Errorf("cpu %+v", u)
	}
	if s.CPUStats.ThrottlingData.ThrottledPeriods != 2 {
		t.Errorf("throttling %+v", s.CPUStats.ThrottlingData)
	}
	m := s.MemoryStats
	if m.Usage != 1000 || m.MaxUsage != 2000 || m.Failcnt != 1 || m.Limit != 4096 {
		t.Errorf("memory %+v", m)
	}
	for k, v := range map[string]uint64{"cache": 10, "total_inactive_file": 7, "pgpgin": 3, "hierarchical_memsw_limit": 99} {
		if got, ok := m.Stats[k]; !ok || got != v {
			t.Errorf("stats[%s] = %d (%v), want %d", k, got, ok, v)
		}
	}
	if _, ok := m.Stats["pg_pg_in"]; ok {
		t.Error("library field name leaked into stats")
	}
	if s.PidsStats.Current != 3 || s.PidsStats.Limit != 50 {
		t.Errorf("pids %+v", s.PidsStats)
	}
	if b := s.BlkioStats.IoServiceBytesRecursive; len(b) != 1 || b[0].Value != 512 || b[0].Op != "Read" {
		t.Errorf("blkio %+v", b)
	}
	if s.BlkioStats.IoServicedRecursive == nil {
		t.Error("empty blkio list should be [] not null")
	}
}

func TestFillV2(t *testing.T) {
	var s container.StatsResponse
	fillV2(&s, &v2stats.Metrics{
		CPU:    &v2stats.CPUStat{UsageUsec: 3, UserUsec: 2, SystemUsec: 1, NrPeriods: 4, NrThrottled: 1, ThrottledUsec: 5},
		Memory: &v2stats.MemoryStat{Anon: 11, InactiveFile: 6, Usage: 100, UsageLimit: 200},
		Pids:   &v2stats.PidsStat{Current: 2, Limit: 10},
		Io:     &v2stats.IOStat{Usage: []*v2stats.IOEntry{{Major: 8, Minor: 16, Rbytes: 1, Wbytes: 2}}},
	})
	if u := s.CPUStats.CPUUsage; u.TotalUsage != 3000 || u.UsageInUsermode != 2000 || u.UsageInKernelmode != 1000 {
		t.Errorf("cpu %+v", u)
	}
	if s.CPUStats.ThrottlingData.ThrottledTime != 5000 {
		t.Errorf("throttling %+v", s.CPUStats.ThrottlingData)
	}
	m := s.MemoryStats
	if m.Usage != 100 || m.Limit != 200 || m.Stats["anon"] != 11 || m.Stats["inactive_file"] != 6 {
		t.Errorf("memory %+v", m)
	}
	if _, ok := m.Stats["usage"]; ok {
		t.Error("usage duplicated in stats map")
	}
	b := s.BlkioStats.IoServiceBytesRecursive
	if len(b) != 2 || b[0].Op != "read" || b[0].Value != 1 || b[1].Op != "write" || b[1].Value != 2 {
		t.Errorf("io %+v", b)
	}
}

func TestSystemCPUUsageAndHostMemory(t *testing.T) {
	if _, err := systemCPUUsage(); err != nil {
		t.Errorf("system cpu usage: %v", err)
	}
	if hostMemory() == 0 {
		t.Error("no MemTotal")
	}
}

func TestCountCPUList(t *testing.T) {
	cases := map[string]int{"0": 1, "0-1\n": 2, "0-3,6": 5, "0-3,8-11": 8, "": 1, "garbage": 1}
	for in, want := range cases {
		if got := countCPUList(in); got != want {
			t.Errorf("countCPUList(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestParseDeviceRule(t *testing.T) {
	cases := []struct {
		rule         string
		typ, access  string
		major, minor int64 // -1 = wildcard
		err          bool
	}{
		{rule: "c 1:3 mr", typ: "c", access: "mr", major: 1, minor: 3},
		{rule: "a *:* rwm", typ: "a", access: "rwm", major: -1, minor: -1},
		{rule: "b 8:* r", typ: "b", access: "r", major: 8, minor: -1},
		{rule: "x 1:3 r", err: true},
		{rule: "c 1-3 r", err: true},
		{rule: "c 1:3 rx", err: true},
		{rule: "c 1:3", err: true},
	}
	num := func(p *int64) int64 {
		if p == nil {
			return -1
		}
		return *p
	}
	for _, c := range cases {
		r, err := parseDeviceRule(c.rule)
		if c.err {
			if err == nil {
				t.Errorf("%q: no error", c.rule)
			}
			continue
		}
		if err != nil || r.Type != c.typ || r.Access != c.access || num(r.Major) != c.major || num(r.Minor) != c.minor || !r.Allow {
			t.Errorf("%q: %+v %v", c.rule, r, err)
		}
	}
}

func TestGenerateSpecDevices(t *testing.T) {
	s, err := gen(t, nil, &container.HostConfig{Resources: container.Resources{
		Devices:           []container.DeviceMapping{{PathOnHost: "/dev/null", PathInContainer: "/dev/mynull", CgroupPermissions: "rw"}},
		DeviceCgroupRules: []string{"c 42:* rmw"},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(s.Linux.Devices, func(d specs.LinuxDevice) bool {
		return d.Path == "/dev/mynull" && d.Type == "c" && d.Major == 1 && d.Minor == 3
	}) {
		t.Errorf("devices %+v", s.Linux.Devices)
	}
	rules := s.Linux.Resources.Devices
	if !slices.ContainsFunc(rules, func(r specs.LinuxDeviceCgroup) bool { return r.Major != nil && *r.Major == 42 && r.Minor == nil }) ||
		!slices.ContainsFunc(rules, func(r specs.LinuxDeviceCgroup) bool {
			return r.Major != nil && *r.Major == 1 && *r.Minor == 3 && r.Access == "rw"
		}) {
		t.Errorf("rules %+v", rules)
	}
	if _, err := gen(t, nil, &container.HostConfig{Resources: container.Resources{
		Devices: []container.DeviceMapping{{PathOnHost: "/nonexistent-device"}},
	}}, nil); err == nil {
		t.Error("missing device accepted")
	}
}
