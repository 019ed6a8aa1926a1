package runtime

import (
	"bufio"
	"context"
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	"github.com/containerd/cgroups/v3/cgroup2"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/errdefs"
)

// clockTicks is USER_HZ, the unit of /proc/stat (100 on every Linux ABI Go
// supports).
const clockTicks = 100

// Stats reads the cgroup counters of the container at cgroupsPath (the
// spec's Linux.CgroupsPath, "/berth/<id>") on cgroup v1 or v2 into Docker's
// stats shape. Read, CPU, memory, pids and block IO are filled; Networks and
// the pre* fields are the caller's.
func (r *Runtime) Stats(ctx context.Context, id string, cgroupsPath string) (*container.StatsResponse, error) {
	if cgroupsPath == "" {
		return nil, errdefs.InvalidArgument("stats of container %s: no cgroup path", id)
	}
	if err := ctx.Err(); err != nil {
		return nil, errdefs.Unavailable("stats of container %s: %w", id, err)
	}
	s := &container.StatsResponse{ID: id, OSType: "linux", Read: time.Now()}
	if cgroups.Mode() == cgroups.Unified {
		m, err := cgroup2.Load(cgroupsPath)
		if err != nil {
			return nil, statsError(id, err)
		}
		st, err := m.Stat()
		if err != nil {
			return nil, statsError(id, err)
		}
		fillV2(s, st)
	} else {
		cg, err := cgroup1.Load(cgroup1.StaticPath(cgroupsPath))
		if err != nil {
			return nil, statsError(id, err)
		}
		st, err := cg.Stat(cgroup1.IgnoreNotExist)
		if err != nil {
			return nil, statsError(id, err)
		}
		fillV1(s, st)
	}
	s.CPUStats.OnlineCPUs = uint32(onlineCPUs())
	if sys, err := systemCPUUsage(); err == nil {
		s.CPUStats.SystemUsage = sys
	}
	if s.MemoryStats.Limit == 0 || s.MemoryStats.Limit > hostMemory() {
		// No limit: report the machine's memory, as dockerd does.
		if mem := hostMemory(); mem > 0 {
			s.MemoryStats.Limit = mem
		}
	}
	return s, nil
}

func statsError(id string, err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return errdefs.NotFound("stats of container %s: cgroup not found (is it running?)", id)
	}
	return errdefs.System("stats of container %s: %w", id, err)
}

func fillV1(s *container.StatsResponse, m *v1stats.Metrics) {
	if c := m.CPU; c != nil && c.Usage != nil {
		s.CPUStats.CPUUsage = container.CPUUsage{
			TotalUsage:        c.Usage.Total,
			PercpuUsage:       c.Usage.PerCPU,
			UsageInKernelmode: c.Usage.Kernel,
			UsageInUsermode:   c.Usage.User,
		}
		if t := c.Throttling; t != nil {
			s.CPUStats.ThrottlingData = container.ThrottlingData{
				Periods: t.Periods, ThrottledPeriods: t.ThrottledPeriods, ThrottledTime: t.ThrottledTime,
			}
		}
	}
	if mem := m.Memory; mem != nil {
		s.MemoryStats.Stats = uintFields(mem, v1MemoryNames)
		if u := mem.Usage; u != nil {
			s.MemoryStats.Usage, s.MemoryStats.MaxUsage = u.Usage, u.Max
			s.MemoryStats.Failcnt, s.MemoryStats.Limit = u.Failcnt, u.Limit
		}
	}
	if p := m.Pids; p != nil {
		s.PidsStats = container.PidsStats{Current: p.Current, Limit: p.Limit}
	}
	if b := m.Blkio; b != nil {
		s.BlkioStats = container.BlkioStats{
			IoServiceBytesRecursive: blkioEntries(b.IoServiceBytesRecursive),
			IoServicedRecursive:     blkioEntries(b.IoServicedRecursive),
			IoQueuedRecursive:       blkioEntries(b.IoQueuedRecursive),
			IoServiceTimeRecursive:  blkioEntries(b.IoServiceTimeRecursive),
			IoWaitTimeRecursive:     blkioEntries(b.IoWaitTimeRecursive),
			IoMergedRecursive:       blkioEntries(b.IoMergedRecursive),
			IoTimeRecursive:         blkioEntries(b.IoTimeRecursive),
			SectorsRecursive:        blkioEntries(b.SectorsRecursive),
		}
	}
}

func blkioEntries(in []*v1stats.BlkIOEntry) []container.BlkioStatEntry {
	out := make([]container.BlkioStatEntry, 0, len(in))
	for _, e := range in {
		out = append(out, container.BlkioStatEntry{Major: e.Major, Minor: e.Minor, Op: e.Op, Value: e.Value})
	}
	return out
}

func fillV2(s *container.StatsResponse, m *v2stats.Metrics) {
	if c := m.CPU; c != nil {
		s.CPUStats.CPUUsage = container.CPUUsage{
			TotalUsage:        c.UsageUsec * 1000,
			UsageInKernelmode: c.SystemUsec * 1000,
			UsageInUsermode:   c.UserUsec * 1000,
		}
		s.CPUStats.ThrottlingData = container.ThrottlingData{
			Periods: c.NrPeriods, ThrottledPeriods: c.NrThrottled, ThrottledTime: c.ThrottledUsec * 1000,
		}
	}
	if mem := m.Memory; mem != nil {
		s.MemoryStats.Stats = uintFields(mem, nil)
		for _, k := range []string{"usage", "usage_limit", "swap_usage", "swap_limit", "max_usage", "swap_max_usage"} {
			delete(s.MemoryStats.Stats, k)
		}
		s.MemoryStats.Usage, s.MemoryStats.Limit = mem.Usage, mem.UsageLimit
	}
	if p := m.Pids; p != nil {
		s.PidsStats = container.PidsStats{Current: p.Current, Limit: p.Limit}
	}
	if io := m.Io; io != nil {
		var entries []container.BlkioStatEntry
		for _, e := range io.Usage {
			entries = append(entries,
				container.BlkioStatEntry{Major: e.Major, Minor: e.Minor, Op: "read", Value: e.Rbytes},
				container.BlkioStatEntry{Major: e.Major, Minor: e.Minor, Op: "write", Value: e.Wbytes})
		}
		s.BlkioStats.IoServiceBytesRecursive = entries
	}
}

// v1MemoryNames renames the cgroups library's field names to memory.stat's
// own keys, which are what Docker reports; "" leaves a field out.
var v1MemoryNames = map[string]string{
	"pg_pg_in": "pgpgin", "pg_pg_out": "pgpgout", "pg_fault": "pgfault", "pg_maj_fault": "pgmajfault",
	"total_pg_pg_in": "total_pgpgin", "total_pg_pg_out": "total_pgpgout",
	"total_pg_fault": "total_pgfault", "total_pg_maj_fault": "total_pgmajfault",
	"hierarchical_swap_limit": "hierarchical_memsw_limit",
}

// uintFields maps the uint64 fields of a stats message by their JSON names.
func uintFields(msg any, rename map[string]string) map[string]uint64 {
	out := map[string]uint64{}
	v := reflect.ValueOf(msg)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() || f.Type.Kind() != reflect.Uint64 {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			continue
		}
		if n, ok := rename[name]; ok {
			name = n
		}
		out[name] = v.Field(i).Uint()
	}
	return out
}

// systemCPUUsage is the host's CPU time in nanoseconds from /proc/stat.
func systemCPUUsage() (uint64, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "cpu" {
			continue
		}
		if len(fields) < 8 {
			return 0, errors.New("invalid cpu line in /proc/stat")
		}
		var ticks uint64
		for _, s := range fields[1:8] { // user nice system idle iowait irq softirq
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return 0, err
			}
			ticks += v
		}
		return ticks * uint64(time.Second) / clockTicks, nil
	}
	return 0, errors.New("no cpu line in /proc/stat")
}

// hostMemory is MemTotal of /proc/meminfo in bytes, 0 if unknown.
func hostMemory() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}
