package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"
)

// rlimitInfinity is RLIM_INFINITY as the kernel reports it.
const rlimitInfinity = ^uint64(0)

// hostFacts are the properties of the machine that change the generated spec.
// They are probed once; tests build their own so the spec does not depend on
// the machine running them.
type hostFacts struct {
	unified     bool              // cgroup v2 only (no v1 controllers mounted)
	rlimitHard  map[string]uint64 // hard limit per "RLIMIT_X" of the daemon's process; missing = unlimited
	swapLimit   bool              // memory+swap limit controllable
	blkioWeight bool              // blkio.weight (v1) / io.weight or io.bfq.weight (v2) present
	allCaps     []string          // every capability the kernel knows, CAP_ prefixed
	availCaps   []string          // the ones in the daemon's own bounding set (a container can get no more)
	nCPU        int               // online CPUs
	hostname    string
	sysctl      func(name string) bool // whether /proc/sys/<name> exists
	maskedExtra []string               // per-CPU thermal_throttle paths present on this host
}

// currentHost returns the facts of this machine; a variable so tests can swap it.
var currentHost = sync.OnceValue(probeHost)

func probeHost() *hostFacts {
	h := &hostFacts{
		unified:    cgroups.Mode() == cgroups.Unified,
		rlimitHard: map[string]uint64{},
		nCPU:       onlineCPUs(),
		sysctl: func(name string) bool {
			_, err := os.Stat(filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/")))
			return err == nil
		},
	}
	h.hostname, _ = os.Hostname()
	for name, res := range rlimitResources {
		var rl unix.Rlimit
		if err := unix.Getrlimit(res, &rl); err == nil && rl.Max != rlimitInfinity {
			h.rlimitHard[name] = rl.Max
		}
	}
	if h.unified {
		// The root cgroup has no swap knob; a child shows whether the
		// kernel accounts swap.
		h.swapLimit = anyChildHas("/sys/fs/cgroup", "memory.swap.max")
		h.blkioWeight = exists("/sys/fs/cgroup/io.weight") || exists("/sys/fs/cgroup/io.bfq.weight") ||
			anyChildHas("/sys/fs/cgroup", "io.weight", "io.bfq.weight")
	} else {
		h.swapLimit = exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
		h.blkioWeight = exists("/sys/fs/cgroup/blkio/blkio.weight") || exists("/sys/fs/cgroup/blkio/blkio.bfq.weight")
	}
	last := len(capabilityNames) - 1
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n < last {
			last = n
		}
	}
	h.allCaps = append([]string(nil), capabilityNames[:last+1]...)
	h.availCaps = h.allCaps
	if bnd, ok := ownBoundingSet(); ok {
		h.availCaps = nil
		for i, c := range h.allCaps {
			if bnd&(1<<uint(i)) != 0 {
				h.availCaps = append(h.availCaps, c)
			}
		}
	}
	for cpu := 0; cpu < 1024; cpu++ {
		p := fmt.Sprintf("/sys/devices/system/cpu/cpu%d", cpu)
		if !exists(p) {
			break
		}
		if t := p + "/thermal_throttle"; exists(t) {
			h.maskedExtra = append(h.maskedExtra, t)
		}
	}
	return h
}

// ownBoundingSet reads CapBnd of this process from /proc/self/status.
func ownBoundingSet() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n, err == nil
		}
	}
	return 0, false
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// anyChildHas reports whether a direct child cgroup of dir has one of files
// (on v2 the root cgroup lacks the io.weight knob its children have).
func anyChildHas(dir string, files ...string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		for _, f := range files {
			if exists(filepath.Join(dir, e.Name(), f)) {
				return true
			}
		}
	}
	return false
}

// onlineCPUs counts the CPUs in /sys/devices/system/cpu/online.
func onlineCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return 1
	}
	return countCPUList(string(b))
}

// countCPUList counts the CPUs of a kernel cpu list ("0-3,6"); at least 1.
func countCPUList(list string) int {
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(list), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		if !isRange {
			n++
			continue
		}
		if z, err := strconv.Atoi(hi); err == nil && z >= a {
			n += z - a + 1
		}
	}
	if n == 0 {
		return 1
	}
	return n
}

// rlimitResources maps Docker's ulimit names (RLIMIT_ + upper case) to the
// Linux resource numbers.
var rlimitResources = map[string]int{
	"RLIMIT_CPU":        0,
	"RLIMIT_FSIZE":      1,
	"RLIMIT_DATA":       2,
	"RLIMIT_STACK":      3,
	"RLIMIT_CORE":       4,
	"RLIMIT_RSS":        5,
	"RLIMIT_NPROC":      6,
	"RLIMIT_NOFILE":     7,
	"RLIMIT_MEMLOCK":    8,
	"RLIMIT_AS":         9,
	"RLIMIT_LOCKS":      10,
	"RLIMIT_SIGPENDING": 11,
	"RLIMIT_MSGQUEUE":   12,
	"RLIMIT_NICE":       13,
	"RLIMIT_RTPRIO":     14,
	"RLIMIT_RTTIME":     15,
}

// capabilityNames lists Linux capabilities by number (0 = CAP_CHOWN).
var capabilityNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}
