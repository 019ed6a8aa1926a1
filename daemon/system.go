package daemon

import (
	"context"
	"os"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/berth-dev/berth/version"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"golang.org/x/sys/unix"
)

// API versions served.
const (
	APIVersion    = "1.47"
	MinAPIVersion = "1.24"
	// EngineVersion is the Docker Engine release that serves APIVersion.
	// /version's top-level Version carries it because clients compare that
	// field as Docker's version (Testcontainers refuses anything below
	// 1.6); Berth's own version is in Components[Engine] and Platform.
	EngineVersion = "27.5.1"
)

// KernelVersion reads uname's release.
func KernelVersion() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// Version renders GET /version.
func (d *Daemon) Version() system.VersionResponse {
	details := map[string]string{
		"ApiVersion": APIVersion, "MinAPIVersion": MinAPIVersion, "GitCommit": version.GitCommit,
		"GoVersion": goruntime.Version(), "Os": "linux", "Arch": goruntime.GOARCH, "KernelVersion": KernelVersion(),
		"BuildTime": version.BuildTime, "Experimental": "false",
	}
	return system.VersionResponse{
		Platform:   system.PlatformInfo{Name: "Berth Engine"},
		Version:    EngineVersion,
		APIVersion: APIVersion, MinAPIVersion: MinAPIVersion,
		GitCommit: version.GitCommit, GoVersion: goruntime.Version(),
		Os: "linux", Arch: goruntime.GOARCH, KernelVersion: KernelVersion(), BuildTime: version.BuildTime,
		Components: []system.ComponentVersion{{Name: "Engine", Version: version.Version, Details: details}},
	}
}

// Info renders GET /info.
func (d *Daemon) Info(ctx context.Context) system.Info {
	total, running, paused, stopped := d.Counts()
	images, _ := d.Images.List(ctx)
	hostname, _ := os.Hostname()
	var si unix.Sysinfo_t
	unix.Sysinfo(&si)
	cgroupVersion := "1"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cgroupVersion = "2"
	}
	runtimes := map[string]system.RuntimeWithStatus{}
	for name, path := range d.cfg.Runtimes {
		runtimes[name] = system.RuntimeWithStatus{Runtime: system.Runtime{Path: path}}
	}
	layers := "directories"
	if d.Snapshots.LayerImages() {
		layers = "erofs images"
	}
	return system.Info{
		ID: "berth", Containers: total, ContainersRunning: running, ContainersPaused: paused, ContainersStopped: stopped,
		Images: len(images), Driver: "overlay2", DriverStatus: [][2]string{{"Backing Filesystem", "overlayfs"}, {"Layers", layers}},
		MemoryLimit: true, SwapLimit: true, CPUCfsPeriod: true, CPUCfsQuota: true, CPUShares: true, CPUSet: true, PidsLimit: true,
		IPv4Forwarding: true, NFd: countFDs(), NGoroutines: goruntime.NumGoroutine(), SystemTime: time.Now().Format(time.RFC3339Nano),
		LoggingDriver: d.cfg.LogConfig.Type, CgroupDriver: "cgroupfs", CgroupVersion: cgroupVersion,
		NEventsListener: d.Events.Listeners(), KernelVersion: KernelVersion(), OperatingSystem: osRelease(),
		OSType: "linux", Architecture: archName(), IndexServerAddress: "https://index.docker.io/v1/",
		NCPU: goruntime.NumCPU(), MemTotal: int64(si.Totalram) * int64(si.Unit), DockerRootDir: d.cfg.DataRoot,
		Name: hostname, Labels: []string{}, ServerVersion: version.Version, Runtimes: runtimes, DefaultRuntime: d.cfg.DefaultRuntime,
		Swarm:      swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive},
		InitBinary: "docker-init", SecurityOptions: []string{"name=seccomp,profile=builtin"},
		Warnings: []string{},
	}
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

func osRelease() string {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

func archName() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return goruntime.GOARCH
	}
	return unix.ByteSliceToString(u.Machine[:])
}
