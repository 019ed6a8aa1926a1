package opts

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/pflag"
)

func parseArgs(t *testing.T, detach bool, args ...string) (*ContainerConfig, error) {
	t.Helper()
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	o := AddContainerFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		t.Fatalf("no image in %v", args)
	}
	o.Image, o.Args = rest[0], rest[1:]
	return Parse(fs, o, detach)
}

func TestParseFlags(t *testing.T) {
	t.Setenv("BERTH_TEST_FROM_ENV", "fromenv")
	tests := []struct {
		name   string
		args   []string
		detach bool
		check  func(t *testing.T, cc *ContainerConfig)
	}{
		{"defaults attach stdout and stderr", []string{"busybox", "echo", "hi"}, false, func(t *testing.T, cc *ContainerConfig) {
			c := cc.Config
			if c.AttachStdin || !c.AttachStdout || !c.AttachStderr || c.OpenStdin || c.StdinOnce {
				t.Errorf("attach flags = %v %v %v open %v once %v", c.AttachStdin, c.AttachStdout, c.AttachStderr, c.OpenStdin, c.StdinOnce)
			}
			if !reflect.DeepEqual(c.Cmd, []string{"echo", "hi"}) || c.Image != "busybox" {
				t.Errorf("cmd %v image %q", c.Cmd, c.Image)
			}
			if cc.HostConfig.NetworkMode != "default" {
				t.Errorf("network mode %q", cc.HostConfig.NetworkMode)
			}
		}},
		{"-it sets tty, stdin, stdin once", []string{"-it", "busybox"}, false, func(t *testing.T, cc *ContainerConfig) {
			c := cc.Config
			if !c.Tty || !c.OpenStdin || !c.AttachStdin || !c.StdinOnce {
				t.Errorf("got tty %v open %v attach %v once %v", c.Tty, c.OpenStdin, c.AttachStdin, c.StdinOnce)
			}
		}},
		{"-d -i attaches nothing", []string{"-i", "busybox"}, true, func(t *testing.T, cc *ContainerConfig) {
			c := cc.Config
			if c.AttachStdin || c.AttachStdout || c.AttachStderr || c.StdinOnce || !c.OpenStdin {
				t.Errorf("got %+v", c)
			}
		}},
		{"-a stderr only", []string{"-a", "stderr", "busybox"}, false, func(t *testing.T, cc *ContainerConfig) {
			c := cc.Config
			if c.AttachStdin || c.AttachStdout || !c.AttachStderr {
				t.Errorf("got %v %v %v", c.AttachStdin, c.AttachStdout, c.AttachStderr)
			}
		}},
		{"env and workdir and user", []string{"-e", "A=1", "-e", "BERTH_TEST_FROM_ENV", "-e", "UNSET_BERTH_X", "-w", "/w", "-u", "1:2", "busybox"}, false, func(t *testing.T, cc *ContainerConfig) {
			want := []string{"A=1", "BERTH_TEST_FROM_ENV=fromenv", "UNSET_BERTH_X"}
			if !reflect.DeepEqual(cc.Config.Env, want) {
				t.Errorf("env %v, want %v", cc.Config.Env, want)
			}
			if cc.Config.WorkingDir != "/w" || cc.Config.User != "1:2" {
				t.Errorf("workdir %q user %q", cc.Config.WorkingDir, cc.Config.User)
			}
		}},
		{"publish and expose", []string{"-p", "8080:80", "-p", "127.0.0.1:53:53/udp", "-p", "9000-9001:9000-9001", "--expose", "7000", "busybox"}, false, func(t *testing.T, cc *ContainerConfig) {
			wantBind := network.PortMap{
				network.MustParsePort("80/tcp"):   {{HostPort: "8080"}},
				network.MustParsePort("53/udp"):   {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: "53"}},
				network.MustParsePort("9000/tcp"): {{HostPort: "9000"}},
				network.MustParsePort("9001/tcp"): {{HostPort: "9001"}},
			}
			if !reflect.DeepEqual(cc.HostConfig.PortBindings, wantBind) {
				t.Errorf("bindings %v, want %v", cc.HostConfig.PortBindings, wantBind)
			}
			for _, p := range []string{"80/tcp", "53/udp", "9000/tcp", "9001/tcp", "7000/tcp"} {
				if _, ok := cc.Config.ExposedPorts[network.MustParsePort(p)]; !ok {
					t.Errorf("%s not exposed: %v", p, cc.Config.ExposedPorts)
				}
			}
		}},
		{"volumes, mounts, tmpfs", []string{"-v", "/data", "-v", "/host:/ctr:ro", "-v", "named:/n", "--mount", "type=bind,src=/a,dst=/b,readonly", "--tmpfs", "/run:size=1m", "busybox"}, false, func(t *testing.T, cc *ContainerConfig) {
			if _, ok := cc.Config.Volumes["/data"]; !ok || len(cc.Config.Volumes) != 1 {
				t.Errorf("volumes %v", cc.Config.Volumes)
			}
			if !reflect.DeepEqual(cc.HostConfig.Binds, []string{"/host:/ctr:ro", "named:/n"}) {
				t.Errorf("binds %v", cc.HostConfig.Binds)
			}
			want := []mount.Mount{{Type: mount.TypeBind, Source: "/a", Target: "/b", ReadOnly: true}}
			if !reflect.DeepEqual(cc.HostConfig.Mounts, want) {
				t.Errorf("mounts %+v", cc.HostConfig.Mounts)
			}
			if cc.HostConfig.Tmpfs["/run"] != "size=1m" {
				t.Errorf("tmpfs %v", cc.HostConfig.Tmpfs)
			}
		}},
		{"resources", []string{"--memory", "64m", "--cpus", "1.5", "--pids-limit", "100", "--shm-size", "1g", "--ulimit", "nofile=1024:2048", "busybox"}, false, func(t *testing.T, cc *ContainerConfig) {
			r := cc.HostConfig.Resources
			if r.Memory != 64<<20 || r.NanoCPUs != 1_500_000_000 || r.PidsLimit == nil || *r.PidsLimit != 100 {
				t.Errorf("memory %d cpus %d pids %v", r.Memory, r.NanoCPUs, r.PidsLimit)
			}
			if cc.HostConfig.ShmSize != 1<<30 {
				t.Errorf("shm %d", cc.HostConfig.ShmSize)
			}
			if len(r.Ulimits) != 1 || r.Ulimits[0].Name != "nofile" || r.Ulimits[0].Soft != 1024 || r.Ulimits[0].Hard != 2048 {
				t.Errorf("ulimits %+v", r.Ulimits)
			}
		}},
		{"links", []string{"--link", "db:database", "--link", "cache", "busybox"}, false, func(t *testing.T, cc *ContainerConfig) {
			if want := []string{"db:database", "cache"}; !reflect.DeepEqual(cc.HostConfig.Links, want) {
				t.Errorf("links %v, want %v", cc.HostConfig.Links, want)
			}
		}},
		{"security and misc", []string{"--rm", "--init", "--privileged", "--read-only", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--sysctl", "net.ipv4.ip_forward=1", "--group-add", "10", "--dns", "1.1.1.1", "--add-host", "h:10.0.0.1", "--stop-signal", "SIGUSR1", "--stop-timeout", "3", "--restart", "no", "-h", "box", "--name", "n", "--entrypoint", "/bin/sh", "--network", "none", "busybox"}, false, func(t *testing.T, cc *ContainerConfig) {
			h := cc.HostConfig
			if !h.AutoRemove || h.Init == nil || !*h.Init || !h.Privileged || !h.ReadonlyRootfs {
				t.Errorf("bools %+v", h)
			}
			if !reflect.DeepEqual(h.CapAdd, []string{"NET_ADMIN"}) || !reflect.DeepEqual(h.CapDrop, []string{"ALL"}) {
				t.Errorf("caps %v %v", h.CapAdd, h.CapDrop)
			}
			if h.Sysctls["net.ipv4.ip_forward"] != "1" || !reflect.DeepEqual(h.GroupAdd, []string{"10"}) {
				t.Errorf("sysctls %v groups %v", h.Sysctls, h.GroupAdd)
			}
			if len(h.DNS) != 1 || h.DNS[0].String() != "1.1.1.1" || !reflect.DeepEqual(h.ExtraHosts, []string{"h:10.0.0.1"}) {
				t.Errorf("dns %v hosts %v", h.DNS, h.ExtraHosts)
			}
			c := cc.Config
			if c.StopSignal != "SIGUSR1" || c.StopTimeout == nil || *c.StopTimeout != 3 || c.Hostname != "box" {
				t.Errorf("config %+v", c)
			}
			if !reflect.DeepEqual([]string(c.Entrypoint), []string{"/bin/sh"}) || h.NetworkMode != "none" {
				t.Errorf("entrypoint %v network %q", c.Entrypoint, h.NetworkMode)
			}
		}},
		{"empty entrypoint resets it", []string{"--entrypoint", "", "busybox"}, false, func(t *testing.T, cc *ContainerConfig) {
			if !reflect.DeepEqual([]string(cc.Config.Entrypoint), []string{""}) {
				t.Errorf("entrypoint %q", cc.Config.Entrypoint)
			}
		}},
		{"restart on-failure", []string{"--restart", "on-failure:3", "busybox"}, false, func(t *testing.T, cc *ContainerConfig) {
			want := container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 3}
			if cc.HostConfig.RestartPolicy != want {
				t.Errorf("restart %+v", cc.HostConfig.RestartPolicy)
			}
		}},
		{"aliases on a user network", []string{"--network", "mynet", "--network-alias", "web", "busybox"}, false, func(t *testing.T, cc *ContainerConfig) {
			ep := cc.NetworkingConfig.EndpointsConfig["mynet"]
			if ep == nil || !reflect.DeepEqual(ep.Aliases, []string{"web"}) || cc.HostConfig.NetworkMode != "mynet" {
				t.Errorf("endpoints %+v mode %q", cc.NetworkingConfig.EndpointsConfig, cc.HostConfig.NetworkMode)
			}
		}},
		{"labels", []string{"-l", "a=b", "--label", "c", "busybox"}, false, func(t *testing.T, cc *ContainerConfig) {
			if !reflect.DeepEqual(cc.Config.Labels, map[string]string{"a": "b", "c": ""}) {
				t.Errorf("labels %v", cc.Config.Labels)
			}
		}},
		{"log driver none", []string{"--log-driver", "none", "busybox"}, false, func(t *testing.T, cc *ContainerConfig) {
			if lc := cc.HostConfig.LogConfig; lc.Type != "none" || len(lc.Config) != 0 {
				t.Errorf("log config %+v", lc)
			}
		}},
		{"other log drivers are the daemon's to judge", []string{"--log-driver", "syslog", "busybox"}, false, func(t *testing.T, cc *ContainerConfig) {
			if cc.HostConfig.LogConfig.Type != "syslog" {
				t.Errorf("log config %+v", cc.HostConfig.LogConfig)
			}
		}},
		{"init and pids unset stay nil", []string{"busybox"}, false, func(t *testing.T, cc *ContainerConfig) {
			if cc.HostConfig.Init != nil || cc.HostConfig.PidsLimit != nil || cc.Config.StopTimeout != nil {
				t.Errorf("unset pointers were set")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, err := parseArgs(t, tt.detach, tt.args...)
			if err != nil {
				t.Fatalf("parse %v: %v", tt.args, err)
			}
			tt.check(t, cc)
		})
	}
}

func TestParseFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-p", "abc", "busybox"}, "invalid containerPort: abc"},
		{[]string{"-p", "80/xyz", "busybox"}, "invalid proto: xyz"},
		{[]string{"--restart", "sometimes", "busybox"}, "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"},
		{[]string{"--restart", "always:3", "busybox"}, "invalid restart policy: maximum retry count can only be used with 'on-failure'"},
		{[]string{"-v", "relative", "busybox"}, `invalid volume specification: 'relative': invalid mount config for type "volume": invalid mount path: 'relative' mount path must be absolute`},
		{[]string{"--mount", "type=bind,dst=/x", "busybox"}, `invalid argument "type=bind,dst=/x" for "--mount" flag: source is required when specifying bind mount`},
		{[]string{"--log-driver", "none", "--log-opt", "max-size=1m", "busybox"}, "invalid logging opts for driver none"},
		{[]string{"-a", "stdweird", "busybox"}, `invalid argument "stdweird" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR`},
		{[]string{"--dns", "notanip", "busybox"}, `invalid argument "notanip" for "--dns" flag: ip address is not correctly formatted: notanip`},
		{[]string{"--add-host", "nohost", "busybox"}, `invalid argument "nohost" for "--add-host" flag: bad format for add-host: "nohost"`},
		{[]string{"--network-alias", "x", "--network", "bridge", "busybox"}, "network-scoped aliases are only supported for user-defined networks"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := parseArgs(t, false, tt.args...)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("parse %v: got %v, want %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestBadFlagValues(t *testing.T) {
	for _, args := range [][]string{{"--memory", "lots", "busybox"}, {"--cpus", "x", "busybox"}} {
		fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
		fs.SetOutput(&discard{})
		AddContainerFlags(fs)
		if err := fs.Parse(args); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

type discard struct{}

func (*discard) Write(p []byte) (int, error) { return len(p), nil }

func TestParsePortSpec(t *testing.T) {
	tests := []struct {
		in   string
		want []string // port -> ip|hostport
	}{
		{"80", []string{"80/tcp -> |"}},
		{"8080:80", []string{"80/tcp -> |8080"}},
		{"0.0.0.0:8080:80/udp", []string{"80/udp -> 0.0.0.0|8080"}},
		{"[::1]:8080:80", []string{"80/tcp -> ::1|8080"}},
		{"127.0.0.1::80", []string{"80/tcp -> 127.0.0.1|"}},
		{"8000-8001:80", []string{"80/tcp -> |8000-8001"}},
		{"7000-7001:7000-7001/sctp", []string{"7000/sctp -> |7000", "7001/sctp -> |7001"}},
	}
	for _, tt := range tests {
		got, err := ParsePortSpec(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		var s []string
		for _, m := range got {
			ip := ""
			if m.Binding.HostIP.IsValid() {
				ip = m.Binding.HostIP.String()
			}
			s = append(s, m.Port.String()+" -> "+ip+"|"+m.Binding.HostPort)
		}
		if !reflect.DeepEqual(s, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.in, s, tt.want)
		}
	}
	for _, bad := range []string{"", "1-2:3-5", "x:80", "1.2.3:80:80", "99999"} {
		if _, err := ParsePortSpec(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestReadKVFile(t *testing.T) {
	t.Setenv("BERTH_KV_SET", "v")
	p := filepath.Join(t.TempDir(), "env")
	content := "# comment\n\nA=1\n  B=two words\nBERTH_KV_SET\nBERTH_KV_UNSET\nC=\n"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadKVFile(p, os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "B=two words", "BERTH_KV_SET=v", "C="}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if err := os.WriteFile(p, []byte("BAD KEY=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKVFile(p, os.LookupEnv); err == nil || err.Error() != "variable 'BAD KEY' contains whitespaces" {
		t.Errorf("whitespace key: %v", err)
	}
}

func TestParseMount(t *testing.T) {
	tests := []struct {
		in   string
		want mount.Mount
	}{
		{"type=volume,source=v,target=/data", mount.Mount{Type: mount.TypeVolume, Source: "v", Target: "/data"}},
		{"target=/anon", mount.Mount{Type: mount.TypeVolume, Target: "/anon"}},
		{"type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1777", mount.Mount{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 1 << 20, Mode: 0o1777}}},
		{"type=bind,src=/s,dst=/d,bind-propagation=rshared,ro=true", mount.Mount{Type: mount.TypeBind, Source: "/s", Target: "/d", ReadOnly: true, BindOptions: &mount.BindOptions{Propagation: mount.PropagationRShared}}},
		{"type=volume,src=v,dst=/d,volume-nocopy", mount.Mount{Type: mount.TypeVolume, Source: "v", Target: "/d", VolumeOptions: &mount.VolumeOptions{NoCopy: true}}},
	}
	for _, tt := range tests {
		got, err := ParseMount(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"type=bind,dst=/x", "src=/a", "type=weird,dst=/x", "type=tmpfs,src=a,dst=/x", "type=volume,dst=/x,bind-propagation=shared", "dst=/x,bogus=1"} {
		if _, err := ParseMount(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestNanoCPUsAndMemBytes(t *testing.T) {
	var n NanoCPUs
	for in, want := range map[string]int64{"1": 1e9, "0.5": 5e8, "2.25": 2_250_000_000} {
		if err := n.Set(in); err != nil || n.Value() != want {
			t.Errorf("cpus %s: %d %v", in, n.Value(), err)
		}
	}
	if err := n.Set("0.0000000001"); err == nil {
		t.Errorf("too precise accepted")
	}
	var m MemBytes
	for in, want := range map[string]int64{"512": 512, "1k": 1024, "64m": 64 << 20, "2g": 2 << 30} {
		if err := m.Set(in); err != nil || m.Value() != want {
			t.Errorf("memory %s: %d %v", in, m.Value(), err)
		}
	}
}
