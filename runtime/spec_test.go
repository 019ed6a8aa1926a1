package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/errdefs"
)

// fakeHost is a machine like the CI one: cgroup v1, open files capped at
// 20000, no blkio weight.
func fakeHost() *hostFacts {
	return &hostFacts{
		rlimitHard: map[string]uint64{"RLIMIT_NOFILE": 20000},
		swapLimit:  true,
		allCaps:    slices.Clone(capabilityNames),
		// Like this machine: no CAP_SYS_RESOURCE in the bounding set.
		availCaps: slices.DeleteFunc(slices.Clone(capabilityNames), func(c string) bool { return c == "CAP_SYS_RESOURCE" }),
		nCPU:      2,
		hostname:  "thehost",
		sysctl:    func(string) bool { return true },
	}
}

// rootfsWithUsers makes a rootfs holding /etc/passwd and /etc/group.
func rootfsWithUsers(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
	group := "root:x:0:\napp:x:1000:\nstaff:x:50:app\naudio:x:29:\nnogroup:x:65534:\n"
	for name, data := range map[string]string{"passwd": passwd, "group": group} {
		if err := os.WriteFile(filepath.Join(dir, "etc", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func gen(t *testing.T, cfg *container.Config, hc *container.HostConfig, mod func(*SpecOptions)) (*specs.Spec, error) {
	t.Helper()
	if cfg == nil {
		cfg = &container.Config{Cmd: []string{"sh"}}
	}
	if hc == nil {
		hc = &container.HostConfig{}
	}
	o := SpecOptions{ID: "0123456789abcdef0123", Config: cfg, HostConfig: hc, Rootfs: "/nonexistent-rootfs"}
	if mod != nil {
		mod(&o)
	}
	return generateSpec(o, fakeHost())
}

func mountAt(s *specs.Spec, dst string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dst {
			return &s.Mounts[i]
		}
	}
	return nil
}

func hasNS(s *specs.Spec, typ specs.LinuxNamespaceType) bool {
	return slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == typ })
}

func TestGenerateSpecDefaults(t *testing.T) {
	s, err := gen(t, &container.Config{Entrypoint: []string{"/bin/app"}, Cmd: []string{"-v"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Process.Args; !slices.Equal(got, []string{"/bin/app", "-v"}) {
		t.Errorf("args %v", got)
	}
	if want := []string{"PATH=" + DefaultPathEnv, "HOSTNAME=0123456789ab"}; !slices.Equal(s.Process.Env, want) {
		t.Errorf("env %v, want %v", s.Process.Env, want)
	}
	if s.Process.Cwd != "/" || s.Hostname != "0123456789ab" || s.Process.Terminal {
		t.Errorf("cwd %q hostname %q terminal %v", s.Process.Cwd, s.Hostname, s.Process.Terminal)
	}
	if u := s.Process.User; u.UID != 0 || u.GID != 0 {
		t.Errorf("user %+v", u)
	}
	if got := s.Process.Capabilities.Bounding; !slices.Equal(got, DefaultCapabilities()) || len(got) != 14 {
		t.Errorf("caps %v", got)
	}
	if s.Linux.Seccomp == nil || len(s.Linux.Seccomp.Syscalls) == 0 {
		t.Error("no default seccomp profile")
	}
	for _, typ := range []specs.LinuxNamespaceType{specs.MountNamespace, specs.NetworkNamespace, specs.UTSNamespace, specs.PIDNamespace, specs.IPCNamespace} {
		if !hasNS(s, typ) {
			t.Errorf("namespace %s missing", typ)
		}
	}
	if hasNS(s, specs.CgroupNamespace) {
		t.Error("cgroup namespace on cgroup v1")
	}
	if s.Linux.CgroupsPath != "/berth/0123456789abcdef0123" {
		t.Errorf("cgroupsPath %q", s.Linux.CgroupsPath)
	}
	for _, dst := range []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"} {
		if mountAt(s, dst) == nil {
			t.Errorf("mount %s missing", dst)
		}
	}
	if shm := mountAt(s, "/dev/shm"); !slices.Contains(shm.Options, "size=67108864") {
		t.Errorf("/dev/shm options %v", shm.Options)
	}
	if sys := mountAt(s, "/sys"); !slices.Contains(sys.Options, "ro") {
		t.Errorf("/sys options %v", sys.Options)
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if want := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 20000, Hard: 20000}}; !slices.Equal(s.Process.Rlimits, want) {
		t.Errorf("rlimits %v", s.Process.Rlimits)
	}
	if d := s.Linux.Resources.Devices; len(d) != 8 || d[0].Allow || d[1].Type != "c" {
		t.Errorf("device rules %+v", d)
	}
	if s.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"] != "0" {
		t.Errorf("sysctls %v", s.Linux.Sysctl)
	}
	if s.Process.OOMScoreAdj == nil || *s.Process.OOMScoreAdj != 0 {
		t.Error("oom score adj not set")
	}
}

func TestGenerateSpecCgroupV2(t *testing.T) {
	h := fakeHost()
	h.unified = true
	s, err := generateSpec(SpecOptions{ID: "c", Config: &container.Config{Cmd: []string{"x"}}, HostConfig: &container.HostConfig{}}, h)
	if err != nil {
		t.Fatal(err)
	}
	if !hasNS(s, specs.CgroupNamespace) {
		t.Error("no cgroup namespace on v2")
	}
	s, err = generateSpec(SpecOptions{ID: "c", Config: &container.Config{Cmd: []string{"x"}}, HostConfig: &container.HostConfig{CgroupnsMode: "host"}}, h)
	if err != nil {
		t.Fatal(err)
	}
	if hasNS(s, specs.CgroupNamespace) {
		t.Error("cgroup namespace despite host mode")
	}
}

func TestGenerateSpecErrors(t *testing.T) {
	cases := []struct {
		name  string
		cfg   *container.Config
		hc    *container.HostConfig
		class error
		msg   string
	}{
		{"no command", &container.Config{}, nil, errdefs.ErrInvalidArgument, "no command specified"},
		{"relative workdir", &container.Config{Cmd: []string{"x"}, WorkingDir: "rel"}, nil, errdefs.ErrInvalidArgument, "needs to be an absolute path"},
		{"unknown cap", nil, &container.HostConfig{CapAdd: []string{"FLY"}}, errdefs.ErrInvalidArgument, `unknown capability: "CAP_FLY"`},
		{"unavailable cap", nil, &container.HostConfig{CapAdd: []string{"sys_resource"}}, errdefs.ErrInvalidArgument, "CAP_SYS_RESOURCE is not in the daemon's bounding set"},
		{"bad security opt", nil, &container.HostConfig{SecurityOpt: []string{"bogus=1"}}, errdefs.ErrInvalidArgument, "invalid --security-opt"},
		{"sysctl not namespaced", nil, &container.HostConfig{Sysctls: map[string]string{"vm.swappiness": "1"}}, errdefs.ErrInvalidArgument, "is not allowed"},
		{"net sysctl on host net", nil, &container.HostConfig{NetworkMode: "host", Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}}, errdefs.ErrInvalidArgument, "host network namespace"},
		{"tiny memory", nil, &container.HostConfig{Resources: container.Resources{Memory: 1024}}, errdefs.ErrInvalidArgument, "Minimum memory limit allowed is 6MB"},
		{"swap below memory", nil, &container.HostConfig{Resources: container.Resources{Memory: 64 << 20, MemorySwap: 32 << 20}}, errdefs.ErrInvalidArgument, "memoryswap limit should be larger"},
		{"nano and quota", nil, &container.HostConfig{Resources: container.Resources{NanoCPUs: 1e9, CPUQuota: 50000}}, errdefs.ErrInvalidArgument, "Conflicting options"},
		{"too many cpus", nil, &container.HostConfig{Resources: container.Resources{NanoCPUs: 3e9}}, errdefs.ErrInvalidArgument, "Range of CPUs"},
		{"cpuset out of range", nil, &container.HostConfig{Resources: container.Resources{CpusetCpus: "0-7"}}, errdefs.ErrInvalidArgument, "not available"},
		{"bad ipc mode", nil, &container.HostConfig{IpcMode: "weird"}, errdefs.ErrInvalidArgument, "invalid IPC mode"},
		{"pid container without path", nil, &container.HostConfig{PidMode: "container:abc"}, errdefs.ErrInvalidArgument, "namespace path"},
		{"init without binary", nil, &container.HostConfig{Init: ptr(true)}, errdefs.ErrInvalidArgument, "no init binary"},
		{"oom score", nil, &container.HostConfig{OomScoreAdj: 2000}, errdefs.ErrInvalidArgument, "oom score adj"},
		{"named volume", nil, &container.HostConfig{Binds: []string{"data:/data"}}, errdefs.ErrNotImplemented, "mount data at /data: the runtime mounts volumes only as binds"},
		{"anonymous volume", nil, &container.HostConfig{Binds: []string{"/data"}}, errdefs.ErrNotImplemented, "mount an anonymous volume at /data"},
		{"volume mount", nil, &container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: "v", Target: "/v"}}}, errdefs.ErrNotImplemented, "mount v at /v"},
		{"gpus", nil, &container.HostConfig{Resources: container.Resources{DeviceRequests: []container.DeviceRequest{{Count: -1}}}}, errdefs.ErrNotImplemented, "device requests"},
	}
	for _, id := range []string{"", "..", "a/b", "x y"} {
		if _, err := generateSpec(SpecOptions{ID: id, Config: &container.Config{Cmd: []string{"x"}}}, fakeHost()); !errdefs.IsInvalidArgument(err) {
			t.Errorf("id %q: %v", id, err)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := gen(t, c.cfg, c.hc, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, c.class) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q (class ok %v), want %q", err, errors.Is(err, c.class), c.msg)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestGenerateSpecUsers(t *testing.T) {
	rootfs := rootfsWithUsers(t)
	cases := []struct {
		user     string
		groupAdd []string
		rootfs   string
		uid, gid uint32
		gids     []uint32
		err      string
	}{
		{user: "", uid: 0, gid: 0, gids: []uint32{0}},
		{user: "app", uid: 1000, gid: 1000, gids: []uint32{1000, 50}},
		{user: "1000", uid: 1000, gid: 1000, gids: []uint32{1000, 50}},
		{user: "1000:29", uid: 1000, gid: 29, gids: []uint32{29}},
		{user: "app:staff", uid: 1000, gid: 50, gids: []uint32{50}},
		{user: "nobody", groupAdd: []string{"audio", "4242"}, uid: 65534, gid: 65534, gids: []uint32{65534, 29, 4242}},
		{user: "1234:5678", rootfs: "/nonexistent", uid: 1234, gid: 5678, gids: []uint32{5678}},
		{user: "ghost", err: "unable to find user ghost: no matching entries in passwd file"},
		{user: "app:ghosts", err: "unable to find group ghosts"},
		{user: "ghost", rootfs: "/nonexistent", err: "unable to find user ghost"},
	}
	for _, c := range cases {
		t.Run(c.user, func(t *testing.T) {
			rfs := rootfs
			if c.rootfs != "" {
				rfs = c.rootfs
			}
			s, err := gen(t, &container.Config{Cmd: []string{"x"}, User: c.user}, &container.HostConfig{GroupAdd: c.groupAdd},
				func(o *SpecOptions) { o.Rootfs = rfs })
			if c.err != "" {
				if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want InvalidArgument %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u := s.Process.User
			if u.UID != c.uid || u.GID != c.gid || !slices.Equal(u.AdditionalGids, c.gids) {
				t.Errorf("user %+v, want %d:%d %v", u, c.uid, c.gid, c.gids)
			}
		})
	}
}

func TestGenerateSpecNonRootCaps(t *testing.T) {
	s, err := gen(t, &container.Config{Cmd: []string{"x"}, User: "1000"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Process.Capabilities
	if len(c.Bounding) != 14 || c.Effective != nil || c.Permitted != nil {
		t.Errorf("non-root caps %+v", c)
	}
	// exec as root into it: effective again; as the container's user: none.
	p, err := ExecProcessSpec(s, "", container.ExecCreateRequest{Cmd: []string{"x"}, User: "0"})
	if err != nil || len(p.Capabilities.Effective) != 14 {
		t.Errorf("root exec caps %+v %v", p.Capabilities, err)
	}
	p, err = ExecProcessSpec(s, "", container.ExecCreateRequest{Cmd: []string{"x"}})
	if err != nil || p.Capabilities.Effective != nil || len(p.Capabilities.Bounding) != 14 {
		t.Errorf("user exec caps %+v %v", p.Capabilities, err)
	}
}

func TestGenerateSpecCapabilities(t *testing.T) {
	cases := []struct {
		name       string
		add, drop  []string
		has, lacks []string
		count      int
	}{
		{name: "add short and prefixed", add: []string{"net_admin", "CAP_SYS_ADMIN"}, has: []string{"CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_CHOWN"}, count: 16},
		{name: "drop", drop: []string{"chown", "CAP_KILL"}, lacks: []string{"CAP_CHOWN", "CAP_KILL"}, count: 12},
		{name: "drop all add one", drop: []string{"ALL"}, add: []string{"NET_BIND_SERVICE"}, has: []string{"CAP_NET_BIND_SERVICE"}, lacks: []string{"CAP_CHOWN"}, count: 1},
		{name: "add all drop one", add: []string{"all"}, drop: []string{"SYS_ADMIN"}, has: []string{"CAP_BPF"}, lacks: []string{"CAP_SYS_ADMIN", "CAP_SYS_RESOURCE"}, count: len(capabilityNames) - 2},
		{name: "add existing", add: []string{"CHOWN"}, count: 14},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := gen(t, nil, &container.HostConfig{CapAdd: c.add, CapDrop: c.drop}, nil)
			if err != nil {
				t.Fatal(err)
			}
			caps := s.Process.Capabilities.Bounding
			if len(caps) != c.count {
				t.Errorf("%d caps %v, want %d", len(caps), caps, c.count)
			}
			for _, h := range c.has {
				if !slices.Contains(caps, h) {
					t.Errorf("missing %s", h)
				}
			}
			for _, l := range c.lacks {
				if slices.Contains(caps, l) {
					t.Errorf("has %s", l)
				}
			}
			if !slices.Equal(caps, s.Process.Capabilities.Effective) || !slices.Equal(caps, s.Process.Capabilities.Permitted) {
				t.Error("bounding, effective and permitted differ")
			}
		})
	}
}

func TestGenerateSpecUlimits(t *testing.T) {
	cases := []struct {
		name    string
		ulimits []*container.Ulimit
		want    []specs.POSIXRlimit
		err     string
	}{
		{name: "nofile within host", ulimits: []*container.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}},
			want: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 2048}}},
		{name: "nproc and core", ulimits: []*container.Ulimit{{Name: "nproc", Soft: 100, Hard: 200}, {Name: "core", Soft: -1, Hard: -1}},
			want: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 20000, Hard: 20000}, {Type: "RLIMIT_NPROC", Soft: 100, Hard: 200}, {Type: "RLIMIT_CORE", Soft: rlimitInfinity, Hard: rlimitInfinity}}},
		{name: "nofile above host hard", ulimits: []*container.Ulimit{{Name: "nofile", Soft: 1048576, Hard: 1048576}},
			err: "ulimit nofile: hard limit 1048576 exceeds the host's hard limit 20000"},
		{name: "nofile unlimited", ulimits: []*container.Ulimit{{Name: "nofile", Soft: -1, Hard: -1}}, err: "exceeds the host's hard limit"},
		{name: "soft above hard", ulimits: []*container.Ulimit{{Name: "nproc", Soft: 10, Hard: 5}}, err: "soft limit 10 is greater than hard limit 5"},
		{name: "unknown", ulimits: []*container.Ulimit{{Name: "bananas", Soft: 1, Hard: 1}}, err: "invalid ulimit type: bananas"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := gen(t, nil, &container.HostConfig{Resources: container.Resources{Ulimits: c.ulimits}}, nil)
			if c.err != "" {
				if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want InvalidArgument %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Process.Rlimits, c.want) {
				t.Errorf("rlimits %v, want %v", s.Process.Rlimits, c.want)
			}
		})
	}
}

func TestGenerateSpecMounts(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "data")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "made", "by", "bind")
	cases := []struct {
		name string
		hc   container.HostConfig
		dst  string
		want specs.Mount
		err  string
	}{
		{name: "bind ro", hc: container.HostConfig{Binds: []string{existing + ":/data:ro"}}, dst: "/data",
			want: specs.Mount{Destination: "/data", Type: "bind", Source: existing, Options: []string{"rbind", "ro", "rprivate"}}},
		{name: "bind rw shared", hc: container.HostConfig{Binds: []string{existing + ":/data:rw,rshared"}}, dst: "/data",
			want: specs.Mount{Destination: "/data", Type: "bind", Source: existing, Options: []string{"rbind", "rshared"}}},
		{name: "bind creates source", hc: container.HostConfig{Binds: []string{missing + ":/m"}}, dst: "/m",
			want: specs.Mount{Destination: "/m", Type: "bind", Source: missing, Options: []string{"rbind", "rprivate"}}},
		{name: "mount bind", hc: container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Source: existing, Target: "/x", ReadOnly: true,
			BindOptions: &mount.BindOptions{NonRecursive: true, Propagation: mount.PropagationSlave}}}}, dst: "/x",
			want: specs.Mount{Destination: "/x", Type: "bind", Source: existing, Options: []string{"bind", "ro", "slave"}}},
		{name: "mount bind missing", hc: container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Source: filepath.Join(dir, "nope"), Target: "/x"}}},
			err: "bind source path does not exist"},
		{name: "mount bind creates source", hc: container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Source: filepath.Join(dir, "created"), Target: "/x",
			BindOptions: &mount.BindOptions{CreateMountpoint: true}}}}, dst: "/x",
			want: specs.Mount{Destination: "/x", Type: "bind", Source: filepath.Join(dir, "created"), Options: []string{"rbind", "rprivate"}}},
		{name: "bind to /", hc: container.HostConfig{Binds: []string{existing + ":/"}}, err: "destination can't be '/'"},
		{name: "tmpfs mount with source", hc: container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeTmpfs, Source: "x", Target: "/t"}}},
			err: `invalid mount config for type "tmpfs": field Source must not be specified`},
		{name: "mount tmpfs", hc: container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeTmpfs, Target: "/t",
			TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 1 << 20, Mode: 0o1777 | os.ModeSticky, Options: [][]string{{"exec"}}}}}}, dst: "/t",
			want: specs.Mount{Destination: "/t", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "rprivate", "mode=1777", "size=1m", "exec"}}},
		{name: "mount tmpfs raw mode", hc: container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeTmpfs, Target: "/t", ReadOnly: true,
			TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 1000, Mode: 0o1770}}}}, dst: "/t",
			want: specs.Mount{Destination: "/t", Type: "tmpfs", Source: "tmpfs", Options: []string{"noexec", "nosuid", "nodev", "rprivate", "ro", "mode=1770", "size=1000"}}},
		{name: "tmpfs map", hc: container.HostConfig{Tmpfs: map[string]string{"/run": "size=64m,exec,uid=1000"}}, dst: "/run",
			want: specs.Mount{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "rprivate", "size=64m", "exec", "uid=1000"}}},
		{name: "user dev/shm replaces default", hc: container.HostConfig{Tmpfs: map[string]string{"/dev/shm": "size=1m"}}, dst: "/dev/shm",
			want: specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "tmpfs", Options: []string{"noexec", "nosuid", "nodev", "rprivate", "size=1m"}}},
		{name: "shm size", hc: container.HostConfig{ShmSize: 1 << 20}, dst: "/dev/shm",
			want: specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=1048576"}}},
		{name: "duplicate", hc: container.HostConfig{Binds: []string{existing + ":/d"}, Tmpfs: map[string]string{"/d": ""}}, err: "Duplicate mount point: /d"},
		{name: "relative destination", hc: container.HostConfig{Binds: []string{existing + ":rel"}}, err: "mount path must be absolute"},
		{name: "bad mode", hc: container.HostConfig{Binds: []string{existing + ":/d:rx"}}, err: "invalid mode: rx"},
		{name: "bad tmpfs option", hc: container.HostConfig{Tmpfs: map[string]string{"/t": "size=1m,bogus"}}, err: `invalid tmpfs option "bogus"`},
		{name: "tmpfs later size wins", hc: container.HostConfig{Tmpfs: map[string]string{"/t": "size=1m,ro,size=2m"}}, dst: "/t",
			want: specs.Mount{Destination: "/t", Type: "tmpfs", Source: "tmpfs", Options: []string{"noexec", "nosuid", "nodev", "rprivate", "ro", "size=2m"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hc := c.hc
			s, err := gen(t, nil, &hc, nil)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := mountAt(s, c.dst)
			if m == nil {
				t.Fatalf("no mount at %s in %+v", c.dst, s.Mounts)
			}
			if m.Type != c.want.Type || m.Source != c.want.Source || !slices.Equal(m.Options, c.want.Options) {
				t.Errorf("mount %+v, want %+v", *m, c.want)
			}
			n := 0
			for _, x := range s.Mounts {
				if x.Destination == c.dst {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d mounts at %s", n, c.dst)
			}
		})
	}
	if _, err := os.Stat(missing); err != nil {
		t.Errorf("bind source not created: %v", err)
	}
}

func TestGenerateSpecHostFilesAndReadonly(t *testing.T) {
	s, err := gen(t, nil, &container.HostConfig{ReadonlyRootfs: true}, func(o *SpecOptions) {
		o.HostnamePath, o.HostsPath, o.ResolvConfPath = "/x/hostname", "/x/hosts", "/x/resolv.conf"
	})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Root.Readonly {
		t.Error("root not read-only")
	}
	for _, dst := range []string{"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"} {
		m := mountAt(s, dst)
		if m == nil || m.Type != "bind" || !slices.Equal(m.Options, []string{"rbind", "ro", "rprivate"}) {
			t.Errorf("%s: %+v", dst, m)
		}
	}
	if m := mountAt(s, "/dev/mqueue"); slices.Contains(m.Options, "ro") {
		t.Errorf("/dev/mqueue made read-only: %v", m.Options)
	}
	if m := mountAt(s, "/sys/fs/cgroup"); !slices.Contains(m.Options, "ro") {
		t.Errorf("cgroup mount %v", m.Options)
	}
}

func TestGenerateSpecPrivileged(t *testing.T) {
	s, err := gen(t, nil, &container.HostConfig{Privileged: true, CapDrop: []string{"ALL"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if caps := s.Process.Capabilities.Bounding; len(caps) != len(capabilityNames)-1 || slices.Contains(caps, "CAP_SYS_RESOURCE") {
		t.Errorf("caps %v", caps)
	}
	if s.Linux.Seccomp != nil || s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
		t.Error("privileged container is confined")
	}
	if m := mountAt(s, "/sys"); slices.Contains(m.Options, "ro") {
		t.Errorf("/sys read-only: %v", m.Options)
	}
	if d := s.Linux.Resources.Devices; len(d) != 1 || !d[0].Allow || d[0].Access != "rwm" {
		t.Errorf("device rules %+v", d)
	}
	if len(s.Linux.Devices) == 0 {
		t.Error("no host devices")
	}
}

func TestGenerateSpecOptions(t *testing.T) {
	t.Run("env and tty", func(t *testing.T) {
		s, err := gen(t, &container.Config{Cmd: []string{"x"}, Tty: true, Hostname: "web", WorkingDir: "/srv/",
			Env: []string{"PATH=/opt/bin", "A=1", "HOSTNAME"}}, &container.HostConfig{ConsoleSize: [2]uint{30, 100}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"PATH=/opt/bin", "TERM=xterm", "A=1"}; !slices.Equal(s.Process.Env, want) {
			t.Errorf("env %v, want %v", s.Process.Env, want)
		}
		if !s.Process.Terminal || s.Process.ConsoleSize == nil || s.Process.ConsoleSize.Width != 100 || s.Hostname != "web" || s.Process.Cwd != "/srv" {
			t.Errorf("process %+v hostname %q", s.Process, s.Hostname)
		}
	})
	t.Run("init", func(t *testing.T) {
		s, err := gen(t, nil, &container.HostConfig{Init: ptr(true)}, func(o *SpecOptions) { o.InitPath = "/usr/bin/tini-static" })
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.Process.Args, []string{"/sbin/docker-init", "--", "sh"}) {
			t.Errorf("args %v", s.Process.Args)
		}
		if m := mountAt(s, "/sbin/docker-init"); m == nil || m.Source != "/usr/bin/tini-static" || !slices.Contains(m.Options, "ro") {
			t.Errorf("init mount %+v", m)
		}
	})
	t.Run("host namespaces", func(t *testing.T) {
		s, err := gen(t, nil, &container.HostConfig{NetworkMode: "host", PidMode: "host", IpcMode: "host", UTSMode: "host"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace} {
			if hasNS(s, typ) {
				t.Errorf("namespace %s present", typ)
			}
		}
		if s.Hostname != "" || !slices.Contains(s.Process.Env, "HOSTNAME=thehost") {
			t.Errorf("hostname %q env %v", s.Hostname, s.Process.Env)
		}
		if m := mountAt(s, "/dev/shm"); m == nil || m.Source != "/dev/shm" || m.Type != "bind" {
			t.Errorf("/dev/shm %+v", m)
		}
		if _, ok := s.Linux.Sysctl["net.ipv4.ping_group_range"]; ok {
			t.Error("network sysctl on host network")
		}
	})
	t.Run("join namespaces", func(t *testing.T) {
		s, err := gen(t, nil, &container.HostConfig{NetworkMode: "container:a", PidMode: "container:a", IpcMode: "none"}, func(o *SpecOptions) {
			o.NetNSPath, o.PidNSPath = "/proc/1/ns/net", "/proc/1/ns/pid"
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range s.Linux.Namespaces {
			if (n.Type == specs.NetworkNamespace && n.Path != "/proc/1/ns/net") || (n.Type == specs.PIDNamespace && n.Path != "/proc/1/ns/pid") {
				t.Errorf("namespace %+v", n)
			}
		}
		if mountAt(s, "/dev/shm") != nil {
			t.Error("/dev/shm with ipc none")
		}
	})
	t.Run("security opts", func(t *testing.T) {
		s, err := gen(t, nil, &container.HostConfig{SecurityOpt: []string{"seccomp=unconfined", "no-new-privileges", "apparmor=unconfined"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.Linux.Seccomp != nil || !s.Process.NoNewPrivileges {
			t.Errorf("seccomp %v nnp %v", s.Linux.Seccomp != nil, s.Process.NoNewPrivileges)
		}
	})
	t.Run("resources", func(t *testing.T) {
		hc := &container.HostConfig{Resources: container.Resources{Memory: 64 << 20, MemoryReservation: 32 << 20, NanoCPUs: 1.5e9,
			CPUShares: 512, CpusetCpus: "0-1", PidsLimit: ptr(int64(100)), BlkioWeight: 300, OomKillDisable: ptr(true), CgroupParent: "custom"},
			OomScoreAdj: 500, Sysctls: map[string]string{"net.core.somaxconn": "1024", "kernel.shmmax": "1"}}
		s, err := gen(t, nil, hc, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := s.Linux.Resources
		if *r.Memory.Limit != 64<<20 || *r.Memory.Swap != 128<<20 || *r.Memory.Reservation != 32<<20 || !*r.Memory.DisableOOMKiller {
			t.Errorf("memory %+v", r.Memory)
		}
		if *r.CPU.Quota != 150000 || *r.CPU.Period != 100000 || *r.CPU.Shares != 512 || r.CPU.Cpus != "0-1" {
			t.Errorf("cpu %+v", r.CPU)
		}
		if *r.Pids.Limit != 100 {
			t.Errorf("pids %+v", r.Pids)
		}
		if r.BlockIO != nil {
			t.Error("blkio weight set on a host without it")
		}
		if *s.Process.OOMScoreAdj != 500 || s.Linux.CgroupsPath != "/custom/0123456789abcdef0123" {
			t.Errorf("oom %d cgroup %q", *s.Process.OOMScoreAdj, s.Linux.CgroupsPath)
		}
		if s.Linux.Sysctl["net.core.somaxconn"] != "1024" || s.Linux.Sysctl["kernel.shmmax"] != "1" {
			t.Errorf("sysctls %v", s.Linux.Sysctl)
		}
	})
	t.Run("pids unlimited", func(t *testing.T) {
		s, err := gen(t, nil, &container.HostConfig{Resources: container.Resources{PidsLimit: ptr(int64(0))}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *s.Linux.Resources.Pids.Limit != -1 {
			t.Errorf("pids %d", *s.Linux.Resources.Pids.Limit)
		}
	})
}

func TestMergeEnv(t *testing.T) {
	cases := []struct{ base, over, want []string }{
		{[]string{"A=1", "B=2"}, []string{"B=3", "C=4"}, []string{"A=1", "B=3", "C=4"}},
		{[]string{"A=1", "B=2"}, []string{"A"}, []string{"B=2"}},
		{nil, []string{"X=", "Y"}, []string{"X="}},
	}
	for _, c := range cases {
		if got := MergeEnv(c.base, c.over); !slices.Equal(got, c.want) {
			t.Errorf("MergeEnv(%v, %v) = %v, want %v", c.base, c.over, got, c.want)
		}
	}
}

func TestExecProcessSpec(t *testing.T) {
	rootfs := rootfsWithUsers(t)
	base, err := gen(t, &container.Config{Cmd: []string{"x"}, User: "app", Env: []string{"A=1"}, WorkingDir: "/work"}, nil,
		func(o *SpecOptions) { o.Rootfs = rootfs })
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		req  container.ExecCreateRequest
		chk  func(t *testing.T, p specs.Process)
		err  string
	}{
		{name: "inherits", req: container.ExecCreateRequest{Cmd: []string{"ls"}}, chk: func(t *testing.T, p specs.Process) {
			if p.User.UID != 1000 || p.Cwd != "/work" || !slices.Contains(p.Env, "A=1") || p.Terminal {
				t.Errorf("%+v", p)
			}
			if !slices.Equal(p.Capabilities.Bounding, DefaultCapabilities()) || len(p.Rlimits) != 1 {
				t.Errorf("caps %v rlimits %v", p.Capabilities.Bounding, p.Rlimits)
			}
		}},
		{name: "overrides", req: container.ExecCreateRequest{Cmd: []string{"sh"}, User: "root", WorkingDir: "/tmp", Env: []string{"A=2", "B=3"},
			Tty: true, ConsoleSize: &[2]uint{24, 80}, Privileged: true}, chk: func(t *testing.T, p specs.Process) {
			if p.User.UID != 0 || p.Cwd != "/tmp" || !slices.Contains(p.Env, "A=2") || !slices.Contains(p.Env, "B=3") || !slices.Contains(p.Env, "TERM=xterm") {
				t.Errorf("%+v", p)
			}
			if !p.Terminal || p.ConsoleSize == nil || p.ConsoleSize.Height != 24 || len(p.Capabilities.Bounding) < 38 {
				t.Errorf("terminal %v size %v caps %d", p.Terminal, p.ConsoleSize, len(p.Capabilities.Bounding))
			}
		}},
		{name: "no cmd", req: container.ExecCreateRequest{}, err: "No exec command specified"},
		{name: "unknown user", req: container.ExecCreateRequest{Cmd: []string{"x"}, User: "ghost"}, err: "unable to find user ghost"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ExecProcessSpec(base, rootfs, c.req)
			if c.err != "" {
				if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.chk(t, p)
		})
	}
	if base.Process.User.UID != 1000 {
		t.Error("ExecProcessSpec changed the base spec")
	}
}

func TestParsePS(t *testing.T) {
	out := []byte(`UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 09:00 ?        00:00:01 /sbin/init
root         100       1  0 09:01 ?        00:00:00 sleep 1000
root         101     100  0 09:01 ?        00:00:00 sh -c echo hi there
`)
	resp, err := parsePS(out, []int{100, 101})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Titles) != 8 || len(resp.Processes) != 2 {
		t.Fatalf("%+v", resp)
	}
	if got := resp.Processes[1][7]; got != "sh -c echo hi there" {
		t.Errorf("cmd %q", got)
	}
	if _, err := parsePS([]byte("USER COMMAND\nroot x\n"), nil); err == nil || !strings.Contains(err.Error(), "PID") {
		t.Errorf("no PID column: %v", err)
	}
}

func TestValidatePSArgs(t *testing.T) {
	cases := map[string]bool{"-ef": true, "aux": true, "-o pid,comm": true, "-o pid=PID": true, "-o user=PID": false, "-o comm,ppid=PIDX": false}
	for in, ok := range cases {
		if err := validatePSArgs(strings.Fields(in)); (err == nil) != ok {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		msg   string
		class error
	}{
		{`exit status 1: time="2026-01-01T00:00:00Z" level=error msg="container does not exist"`, errdefs.ErrNotFound},
		{`exit status 1: time="x" level=error msg="container not running"`, errdefs.ErrConflict},
		{`exit status 1: time="x" level=error msg="container not paused"`, errdefs.ErrConflict},
		{`exit status 1: time="x" level=error msg="cannot delete container c1 that is not stopped: running"`, errdefs.ErrConflict},
		{`exit status 1: boom`, errdefs.ErrSystem},
	}
	for _, c := range cases {
		if err := classify(errors.New(c.msg), "c1", "kill"); !errors.Is(err, c.class) {
			t.Errorf("%q -> %v, want %v", c.msg, err, c.class)
		}
	}
	if err := classify(errors.New(`exit status 1: msg="container not running"`), "c1", "kill"); err.Error() != "container c1 is not running" {
		t.Errorf("message %q", err)
	}
}

func TestStartError(t *testing.T) {
	cases := []struct {
		msg  string
		kind error
		code int
	}{
		{`time="x" level=error msg="exec failed: unable to start container process: exec: \"nope\": executable file not found in $PATH"`, ErrCommandNotFound, 127},
		{`exec failed: unable to start container process: exec: "/etc": is a directory`, ErrCommandNotExecutable, 126},
		{`exec: "/x": permission denied`, ErrCommandNotExecutable, 126},
		{`something else`, nil, 126},
	}
	for _, c := range cases {
		e := NewStartError("OCI runtime exec failed: ", c.msg)
		if !errdefs.IsInvalidArgument(e) || e.ExitCode() != c.code || (c.kind != nil && !errors.Is(e, c.kind)) {
			t.Errorf("%q: %v code %d", c.msg, e, e.ExitCode())
		}
		if strings.Contains(e.Error(), "level=error") {
			t.Errorf("decoration left in %q", e)
		}
	}
}
