package server

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// cgroupRoot is where cgroup hierarchies are mounted: v1 controllers in
// subdirectories named after them, v2 at the root itself (pure v2) or in
// unified/ (the hybrid layout).
const cgroupRoot = "/sys/fs/cgroup"

// oomCounter is the kernel's count of OOM kills in one container's memory
// cgroup. The shim finds it while the init is alive (its /proc entry names the
// cgroup) and reads it again after the init exited, before the runtime's
// delete removes the cgroup: the daemon cannot do it in time, because the
// shim deletes right after reporting the exit.
type oomCounter struct {
	file  string // memory.oom_control (v1) or memory.events (v2); "" if none was found
	start uint64 // the count when the container was created
}

// newOOMCounter locates the memory cgroup of pid under root.
func newOOMCounter(pid int, root string) oomCounter {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return oomCounter{}
	}
	for _, f := range oomFiles(b, root) {
		if n, ok := readOOMKills(f); ok {
			return oomCounter{file: f, start: n}
		}
	}
	return oomCounter{}
}

// killed reports whether the kernel's OOM killer killed a process of the
// container since it was created.
func (o oomCounter) killed() bool {
	if o.file == "" {
		return false
	}
	n, ok := readOOMKills(o.file)
	return ok && n > o.start
}

// oomFiles lists, from the content of /proc/<pid>/cgroup, the files that may
// hold the memory cgroup's oom_kill count, the most likely first: the v1
// memory controller's memory.oom_control (kernel 4.13+), then memory.events
// of the v2 hierarchy (pure v2, or a hybrid whose memory controller is v2).
func oomFiles(procCgroup []byte, root string) []string {
	var v1, v2 []string
	for _, line := range strings.Split(string(procCgroup), "\n") {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[2], "/") || strings.Contains(parts[2], "/../") {
			continue
		}
		path := strings.TrimSuffix(parts[2], "/")
		if path == "" {
			// The root cgroup counts the whole host's OOM kills.
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = append(v2, root+path+"/memory.events", root+"/unified"+path+"/memory.events")
			continue
		}
		for _, ctrl := range strings.Split(parts[1], ",") {
			if ctrl == "memory" {
				v1 = append(v1, root+"/"+parts[1]+path+"/memory.oom_control")
				if parts[1] != "memory" {
					v1 = append(v1, root+"/memory"+path+"/memory.oom_control")
				}
			}
		}
	}
	return append(v1, v2...)
}

// readOOMKills reads the "oom_kill N" line of memory.oom_control or
// memory.events; ok is false if the file or the line is missing (a kernel
// older than 4.13 has no such line in v1).
func readOOMKills(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	return parseOOMKills(b)
}

func parseOOMKills(b []byte) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || k != "oom_kill" {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// withOOMKilled adds "oom_killed":true to an exit record made by exitJSON.
func withOOMKilled(exit []byte, killed bool) []byte {
	if !killed || len(exit) == 0 || exit[len(exit)-1] != '}' {
		return exit
	}
	out := append([]byte(nil), exit[:len(exit)-1]...)
	return append(out, `,"oom_killed":true}`...)
}
