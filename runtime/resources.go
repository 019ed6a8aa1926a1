package runtime

import (
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/errdefs"
)

// defaultNofile is the open-files limit a container gets unless it asks for
// another (dockerd runs with LimitNOFILE=infinity, i.e. 1048576).
const defaultNofile = 1 << 20

// linuxResources maps HostConfig's resource fields to the spec, with Docker's
// validation of their ranges.
func linuxResources(r container.Resources, h *hostFacts) (*specs.LinuxResources, error) {
	out := &specs.LinuxResources{}

	// Memory.
	if r.Memory < 0 || (r.Memory > 0 && r.Memory < 6*1024*1024) {
		return nil, errdefs.InvalidArgument("Minimum memory limit allowed is 6MB")
	}
	if r.MemoryReservation < 0 || (r.MemoryReservation > 0 && r.MemoryReservation < 6*1024*1024) {
		return nil, errdefs.InvalidArgument("Minimum memory reservation allowed is 6MB")
	}
	if r.Memory > 0 && r.MemoryReservation > 0 && r.MemoryReservation > r.Memory {
		return nil, errdefs.InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage")
	}
	if r.MemorySwap > 0 && r.Memory == 0 {
		return nil, errdefs.InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
	}
	if r.MemorySwap > 0 && r.MemorySwap < r.Memory {
		return nil, errdefs.InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
	}
	if r.MemorySwappiness != nil && (*r.MemorySwappiness < -1 || *r.MemorySwappiness > 100) {
		return nil, errdefs.InvalidArgument("Invalid value: %d, valid memory swappiness range is 0-100", *r.MemorySwappiness)
	}
	mem := &specs.LinuxMemory{}
	memSet := false
	if r.Memory > 0 {
		v := r.Memory
		mem.Limit, memSet = &v, true
		if h.swapLimit {
			swap := r.MemorySwap
			if swap == 0 {
				swap = 2 * r.Memory // Docker's default: as much swap as memory
			}
			mem.Swap = &swap
		}
	}
	if r.MemoryReservation > 0 {
		v := r.MemoryReservation
		mem.Reservation, memSet = &v, true
	}
	if r.MemorySwappiness != nil && *r.MemorySwappiness != -1 && !h.unified {
		v := uint64(*r.MemorySwappiness)
		mem.Swappiness, memSet = &v, true
	}
	if r.OomKillDisable != nil && *r.OomKillDisable && !h.unified {
		v := true
		mem.DisableOOMKiller, memSet = &v, true
	}
	if memSet {
		out.Memory = mem
	}

	// CPU.
	if r.CPUShares < 0 {
		return nil, errdefs.InvalidArgument("invalid CPU shares %d: must not be negative", r.CPUShares)
	}
	if r.NanoCPUs != 0 && (r.CPUPeriod != 0 || r.CPUQuota != 0) {
		if r.CPUPeriod != 0 {
			return nil, errdefs.InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
		}
		return nil, errdefs.InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
	}
	if r.NanoCPUs < 0 || r.NanoCPUs > int64(h.nCPU)*1e9 {
		return nil, errdefs.InvalidArgument("Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", h.nCPU, h.nCPU)
	}
	if r.NanoCPUs > 0 && r.NanoCPUs < 1e7 {
		return nil, errdefs.InvalidArgument("Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", h.nCPU, h.nCPU)
	}
	if r.CPUPeriod != 0 && (r.CPUPeriod < 1000 || r.CPUPeriod > 1000000) {
		return nil, errdefs.InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
	}
	if r.CPUQuota > 0 && r.CPUQuota < 1000 {
		return nil, errdefs.InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
	}
	cpu := &specs.LinuxCPU{}
	cpuSet := false
	if r.CPUShares > 0 {
		v := uint64(r.CPUShares)
		cpu.Shares, cpuSet = &v, true
	}
	if r.NanoCPUs > 0 {
		period := uint64(100000) // 100ms in µs, as Docker
		quota := r.NanoCPUs * int64(period) / 1e9
		cpu.Period, cpu.Quota, cpuSet = &period, &quota, true
	}
	if r.CPUPeriod != 0 {
		v := uint64(r.CPUPeriod)
		cpu.Period, cpuSet = &v, true
	}
	if r.CPUQuota != 0 {
		v := r.CPUQuota
		cpu.Quota, cpuSet = &v, true
	}
	if r.CpusetCpus != "" {
		if err := validateCPUSet(r.CpusetCpus, h.nCPU); err != nil {
			return nil, err
		}
		cpu.Cpus, cpuSet = r.CpusetCpus, true
	}
	if r.CpusetMems != "" {
		cpu.Mems, cpuSet = r.CpusetMems, true
	}
	if cpuSet {
		out.CPU = cpu
	}

	// Pids.
	if r.PidsLimit != nil {
		v := *r.PidsLimit
		if v <= 0 {
			v = -1 // 0 and negative mean unlimited in Docker's API
		}
		out.Pids = &specs.LinuxPids{Limit: &v}
	}

	// Block IO.
	if r.BlkioWeight != 0 {
		if r.BlkioWeight < 10 || r.BlkioWeight > 1000 {
			return nil, errdefs.InvalidArgument("Range of blkio weight is from 10 to 1000")
		}
		// Docker drops the weight with a warning when the kernel has no
		// weight knob (no CFQ/BFQ): runc would fail writing it.
		if h.blkioWeight {
			w := r.BlkioWeight
			out.BlockIO = &specs.LinuxBlockIO{Weight: &w}
		}
	}
	return out, nil
}

// validateCPUSet checks a cpuset list ("0-2,4") against the CPUs present.
func validateCPUSet(set string, ncpu int) error {
	for _, part := range strings.Split(set, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return errdefs.InvalidArgument("Invalid value %s for cpuset cpus", set)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return errdefs.InvalidArgument("Invalid value %s for cpuset cpus", set)
			}
		}
		if b >= ncpu {
			return errdefs.InvalidArgument("Requested CPUs are not available - requested %s, available: 0-%d", set, ncpu-1)
		}
	}
	return nil
}

// rlimits returns the process rlimits: RLIMIT_NOFILE defaults to
// min(1048576, host hard limit), HostConfig.Ulimits override; a value above
// the host's hard limit is refused because runc could not set it.
func rlimits(ulimits []*container.Ulimit, h *hostFacts) ([]specs.POSIXRlimit, error) {
	limits := map[string]specs.POSIXRlimit{}
	var order []string
	set := func(rl specs.POSIXRlimit) {
		if _, ok := limits[rl.Type]; !ok {
			order = append(order, rl.Type)
		}
		limits[rl.Type] = rl
	}
	nofile := uint64(defaultNofile)
	if hard, ok := h.rlimitHard["RLIMIT_NOFILE"]; ok && hard < nofile {
		nofile = hard
	}
	set(specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: nofile, Hard: nofile})
	for _, u := range ulimits {
		if u == nil {
			continue
		}
		typ := "RLIMIT_" + strings.ToUpper(u.Name)
		if _, ok := rlimitResources[typ]; !ok {
			return nil, errdefs.InvalidArgument("invalid ulimit type: %s", u.Name)
		}
		soft, hard := ulimitValue(u.Soft), ulimitValue(u.Hard)
		if soft > hard {
			return nil, errdefs.InvalidArgument("ulimit %s: soft limit %d is greater than hard limit %d", u.Name, u.Soft, u.Hard)
		}
		if max, ok := h.rlimitHard[typ]; ok && hard > max {
			return nil, errdefs.InvalidArgument("ulimit %s: hard limit %s exceeds the host's hard limit %d; the container could not be started with it", u.Name, ulimitString(u.Hard), max)
		}
		set(specs.POSIXRlimit{Type: typ, Soft: soft, Hard: hard})
	}
	out := make([]specs.POSIXRlimit, 0, len(order))
	for _, t := range order {
		out = append(out, limits[t])
	}
	return out, nil
}

func ulimitValue(v int64) uint64 {
	if v < 0 {
		return rlimitInfinity
	}
	return uint64(v)
}

func ulimitString(v int64) string {
	if v < 0 {
		return "unlimited"
	}
	return strconv.FormatInt(v, 10)
}

// validateSysctl allows only namespaced sysctls, as Docker does, and refuses
// the ones of a namespace the container shares with the host.
func validateSysctl(name string, hc *container.HostConfig) error {
	ipcShared := hc.IpcMode.IsHost()
	switch {
	case name == "kernel.domainname" || name == "kernel.hostname":
		if hc.UTSMode.IsHost() {
			return errdefs.InvalidArgument("sysctl '%s' is not allowed in host UTS namespace", name)
		}
	case name == "kernel.msgmax" || name == "kernel.msgmnb" || name == "kernel.msgmni" ||
		name == "kernel.sem" || name == "kernel.shmall" || name == "kernel.shmmax" ||
		name == "kernel.shmmni" || name == "kernel.shm_rmid_forced" || strings.HasPrefix(name, "fs.mqueue."):
		if ipcShared {
			return errdefs.InvalidArgument("sysctl '%s' is not allowed in host IPC namespace", name)
		}
	case strings.HasPrefix(name, "net."):
		if hc.NetworkMode.IsHost() {
			return errdefs.InvalidArgument("sysctl '%s' not allowed in host network namespace", name)
		}
	default:
		return errdefs.InvalidArgument("sysctl '%s' is not allowed", name)
	}
	return nil
}
