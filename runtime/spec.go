package runtime

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/errdefs"
)

// DefaultPathEnv is the PATH a container gets when its image sets none.
const DefaultPathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// InitPathInContainer is where the init binary is bind-mounted (Docker's).
const InitPathInContainer = "/sbin/docker-init"

// DefaultCgroupParent is the cgroup every container is placed under.
const DefaultCgroupParent = "berth"

// SpecOptions is everything GenerateSpec needs to know about one container.
type SpecOptions struct {
	ID         string
	Config     *container.Config // already merged with image defaults by the daemon (Cmd, Entrypoint, Env, WorkingDir, User)
	HostConfig *container.HostConfig
	Rootfs     string // absolute path of the mounted rootfs (bundle/rootfs); /etc/passwd and /etc/group are read from it
	// Host files bind-mounted at /etc/hostname, /etc/hosts, /etc/resolv.conf ("" = skip).
	HostnamePath, HostsPath, ResolvConfPath string
	InitPath                                string // static tini; bind-mounted read-only at /sbin/docker-init when HostConfig.Init is true
	CgroupParent                            string // default "berth": cgroupsPath becomes "/<parent>/<id>" (HostConfig.CgroupParent wins)
	NetNSPath                               string // "" = new network namespace; otherwise join this path
	// PidNSPath and IpcNSPath join another container's namespace when
	// PidMode/IpcMode is "container:<x>"; the daemon resolves <x> to
	// /proc/<pid>/ns/{pid,ipc}.
	PidNSPath, IpcNSPath string
}

// GenerateSpec builds the OCI runtime spec of a container the way dockerd
// does (moby's daemon/oci_linux.go and oci/defaults.go). Bad input is an
// errdefs.InvalidArgument; features not built yet are errdefs.NotImplemented.
func GenerateSpec(o SpecOptions) (*specs.Spec, error) {
	return generateSpec(o, currentHost())
}

func generateSpec(o SpecOptions, h *hostFacts) (*specs.Spec, error) {
	if !validID(o.ID) {
		return nil, errdefs.InvalidArgument("generate spec: invalid container id %q", o.ID)
	}
	if o.Config == nil {
		return nil, errdefs.InvalidArgument("generate spec for %s: no container config", o.ID)
	}
	hc := o.HostConfig
	if hc == nil {
		hc = &container.HostConfig{}
	}
	o.HostConfig = hc
	cfg := o.Config

	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: o.Rootfs, Readonly: hc.ReadonlyRootfs},
		Process: &specs.Process{},
		Linux: &specs.Linux{
			Sysctl:    map[string]string{},
			Resources: &specs.LinuxResources{},
		},
	}
	if len(hc.Annotations) > 0 {
		s.Annotations = maps.Clone(hc.Annotations)
	}

	// Process: args, env, cwd, terminal.
	args := append(slices.Clone(cfg.Entrypoint), cfg.Cmd...)
	if len(args) == 0 {
		return nil, errdefs.InvalidArgument("no command specified")
	}
	var extraMounts []specs.Mount
	if hc.Init != nil && *hc.Init && !hc.PidMode.IsHost() && !hc.PidMode.IsContainer() {
		if o.InitPath == "" {
			return nil, errdefs.InvalidArgument("container %s asks for an init process but no init binary is configured", o.ID)
		}
		args = append([]string{InitPathInContainer, "--"}, args...)
		extraMounts = append(extraMounts, specs.Mount{
			Destination: InitPathInContainer, Type: "bind", Source: o.InitPath, Options: []string{"bind", "ro"},
		})
	}
	s.Process.Args = args

	hostname := cfg.Hostname
	if hostname == "" {
		if hc.NetworkMode.IsHost() || hc.UTSMode.IsHost() {
			hostname = h.hostname
		} else {
			hostname = shortID(o.ID)
		}
	}
	base := []string{"PATH=" + DefaultPathEnv, "HOSTNAME=" + hostname}
	if cfg.Tty {
		base = append(base, "TERM=xterm")
	}
	s.Process.Env = MergeEnv(base, cfg.Env)

	s.Process.Cwd = "/"
	if cfg.WorkingDir != "" {
		if !filepath.IsAbs(cfg.WorkingDir) {
			return nil, errdefs.InvalidArgument("the working directory '%s' is invalid, it needs to be an absolute path", cfg.WorkingDir)
		}
		s.Process.Cwd = filepath.Clean(cfg.WorkingDir)
	}
	s.Process.Terminal = cfg.Tty
	if cfg.Tty && hc.ConsoleSize[0] > 0 && hc.ConsoleSize[1] > 0 {
		s.Process.ConsoleSize = &specs.Box{Height: hc.ConsoleSize[0], Width: hc.ConsoleSize[1]}
	}
	usr, err := ResolveUser(o.Rootfs, cfg.User, hc.GroupAdd)
	if err != nil {
		return nil, err
	}
	if hc.Umask != nil {
		if *hc.Umask > 0o777 {
			return nil, errdefs.InvalidArgument("invalid umask %#o", *hc.Umask)
		}
		mask := *hc.Umask
		usr.Umask = &mask
	}
	s.Process.User = usr
	oom := hc.OomScoreAdj
	if oom < -1000 || oom > 1000 {
		return nil, errdefs.InvalidArgument("Invalid value %d, range for oom score adj is [-1000, 1000]", oom)
	}
	s.Process.OOMScoreAdj = &oom
	if s.Process.Rlimits, err = rlimits(hc.Ulimits, h); err != nil {
		return nil, err
	}

	// Hostname and namespaces.
	s.Hostname = hostname
	if err := setNamespaces(s, o, h); err != nil {
		return nil, err
	}
	if hc.UTSMode.IsHost() {
		s.Hostname = ""
	} else if cfg.Domainname != "" {
		s.Linux.Sysctl["kernel.domainname"] = cfg.Domainname
	}

	// Capabilities, then seccomp (the profile depends on the capabilities).
	caps, err := tweakCapabilities(hc.CapAdd, hc.CapDrop, hc.Privileged, h.allCaps, h.availCaps)
	if err != nil {
		return nil, err
	}
	s.Process.Capabilities = processCaps(caps, usr.UID)
	sec, err := parseSecurityOpts(hc.SecurityOpt)
	if err != nil {
		return nil, err
	}
	s.Process.NoNewPrivileges = sec.noNewPrivileges
	switch {
	case hc.Privileged || sec.seccomp == "unconfined":
	case sec.seccomp != "":
		if s.Linux.Seccomp, err = seccomp.LoadProfile(sec.seccomp, s); err != nil {
			return nil, errdefs.InvalidArgument("loading seccomp profile: %w", err)
		}
	default:
		if s.Linux.Seccomp, err = seccomp.GetDefaultProfile(s); err != nil {
			return nil, errdefs.System("generating default seccomp profile: %w", err)
		}
	}

	// Masked and read-only paths.
	s.Linux.MaskedPaths = append(defaultMaskedPaths(), h.maskedExtra...)
	s.Linux.ReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
	if hc.MaskedPaths != nil {
		s.Linux.MaskedPaths = slices.Clone(hc.MaskedPaths)
	}
	if hc.ReadonlyPaths != nil {
		s.Linux.ReadonlyPaths = slices.Clone(hc.ReadonlyPaths)
	}
	if hc.Privileged || sec.unconfinedPaths {
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
	}

	// Mounts.
	um, err := userMounts(o)
	if err != nil {
		return nil, err
	}
	s.Mounts = mergeMounts(hc, defaultMounts(), extraMounts, um)
	s.Linux.RootfsPropagation = rootPropagation(um)

	// Sysctls: Docker's safe network defaults, then the user's.
	if !hc.NetworkMode.IsHost() && !hc.NetworkMode.IsContainer() {
		if h.sysctl("net.ipv4.ping_group_range") {
			s.Linux.Sysctl["net.ipv4.ping_group_range"] = "0 2147483647"
		}
		if h.sysctl("net.ipv4.ip_unprivileged_port_start") {
			s.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"] = "0"
		}
	}
	for k, v := range hc.Sysctls {
		if err := validateSysctl(k, hc); err != nil {
			return nil, err
		}
		s.Linux.Sysctl[k] = v
	}

	// Resources and devices.
	res, err := linuxResources(hc.Resources, h)
	if err != nil {
		return nil, err
	}
	s.Linux.Resources = res
	s.Linux.Devices = []specs.LinuxDevice{}
	if hc.Privileged {
		devs, err := hostDevices()
		if err != nil {
			return nil, err
		}
		s.Linux.Devices = append(s.Linux.Devices, devs...)
		mapped, _, err := mappedDevices(hc.Devices)
		if err != nil {
			return nil, err
		}
		for _, d := range mapped {
			if !slices.ContainsFunc(s.Linux.Devices, func(x specs.LinuxDevice) bool { return x.Path == d.Path }) {
				s.Linux.Devices = append(s.Linux.Devices, d)
			}
		}
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	} else {
		rules := defaultDeviceRules()
		devs, devRules, err := mappedDevices(hc.Devices)
		if err != nil {
			return nil, err
		}
		s.Linux.Devices = append(s.Linux.Devices, devs...)
		rules = append(rules, devRules...)
		for _, r := range hc.DeviceCgroupRules {
			rule, err := parseDeviceRule(r)
			if err != nil {
				return nil, err
			}
			rules = append(rules, rule)
		}
		s.Linux.Resources.Devices = rules
	}
	if len(hc.DeviceRequests) > 0 {
		return nil, errdefs.NotImplemented("device requests (--gpus) are not supported")
	}

	// Cgroup.
	parent := hc.CgroupParent
	if parent == "" {
		parent = o.CgroupParent
	}
	if parent == "" {
		parent = DefaultCgroupParent
	}
	s.Linux.CgroupsPath = filepath.Join("/", parent, o.ID)
	return s, nil
}

// processCaps is Docker's capability set for a process: the bounding set
// always, effective and permitted only for root (a non-root process gets no
// capabilities, as after execve without file capabilities).
func processCaps(caps []string, uid uint32) *specs.LinuxCapabilities {
	c := &specs.LinuxCapabilities{Bounding: slices.Clone(caps)}
	if uid == 0 {
		c.Effective, c.Permitted = slices.Clone(caps), slices.Clone(caps)
	}
	return c
}

// setNamespaces sets the pid, ipc, uts, mount, network and cgroup
// namespaces according to the container's modes.
func setNamespaces(s *specs.Spec, o SpecOptions, h *hostFacts) error {
	hc := o.HostConfig
	if !hc.IpcMode.Valid() {
		return errdefs.InvalidArgument("invalid IPC mode: %v", hc.IpcMode)
	}
	if !hc.PidMode.Valid() {
		return errdefs.InvalidArgument("invalid PID mode: %v", hc.PidMode)
	}
	if !hc.UTSMode.Valid() {
		return errdefs.InvalidArgument("invalid UTS mode: %v", hc.UTSMode)
	}
	if !hc.CgroupnsMode.Valid() {
		return errdefs.InvalidArgument("invalid cgroup namespace mode: %v", hc.CgroupnsMode)
	}
	if hc.UsernsMode != "" && !hc.UsernsMode.IsHost() {
		return errdefs.InvalidArgument("invalid user namespace mode: %v", hc.UsernsMode)
	}
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	switch {
	case hc.NetworkMode.IsHost():
	case hc.NetworkMode.IsContainer() && o.NetNSPath == "":
		return errdefs.InvalidArgument("network mode %s needs the other container's namespace path", hc.NetworkMode)
	default:
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: o.NetNSPath})
	}
	if !hc.UTSMode.IsHost() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.UTSNamespace})
	}
	switch {
	case hc.PidMode.IsHost():
	case hc.PidMode.IsContainer():
		if o.PidNSPath == "" {
			return errdefs.InvalidArgument("PID mode %s needs the other container's namespace path", hc.PidMode)
		}
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: o.PidNSPath})
	default:
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	switch {
	case hc.IpcMode.IsHost():
	case hc.IpcMode.IsContainer():
		if o.IpcNSPath == "" {
			return errdefs.InvalidArgument("IPC mode %s needs the other container's namespace path", hc.IpcMode)
		}
		ns = append(ns, specs.LinuxNamespace{Type: specs.IPCNamespace, Path: o.IpcNSPath})
	default:
		ns = append(ns, specs.LinuxNamespace{Type: specs.IPCNamespace})
	}
	// Docker's default is a private cgroup namespace on cgroup v2 and the
	// host's on v1.
	if hc.CgroupnsMode.IsPrivate() || (hc.CgroupnsMode.IsEmpty() && h.unified) {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	s.Linux.Namespaces = ns
	return nil
}

type securityOpts struct {
	seccomp         string // "", "unconfined" or a profile's JSON
	noNewPrivileges bool
	unconfinedPaths bool
}

// parseSecurityOpts reads HostConfig.SecurityOpt ("key=value", legacy
// "key:value"). apparmor and label are accepted and have no effect here.
func parseSecurityOpts(opts []string) (securityOpts, error) {
	var so securityOpts
	for _, opt := range opts {
		if opt == "no-new-privileges" {
			so.noNewPrivileges = true
			continue
		}
		k, v, ok := strings.Cut(opt, "=")
		if !ok {
			k, v, ok = strings.Cut(opt, ":")
		}
		if !ok {
			return so, errdefs.InvalidArgument("invalid --security-opt 1: %q", opt)
		}
		switch k {
		case "seccomp":
			so.seccomp = v
		case "no-new-privileges":
			switch v {
			case "true", "1":
				so.noNewPrivileges = true
			case "false", "0":
				so.noNewPrivileges = false
			default:
				return so, errdefs.InvalidArgument("invalid --security-opt 2: %q", opt)
			}
		case "systempaths":
			if v != "unconfined" {
				return so, errdefs.InvalidArgument("invalid --security-opt 2: %q", opt)
			}
			so.unconfinedPaths = true
		case "apparmor", "label":
		default:
			return so, errdefs.InvalidArgument("invalid --security-opt 2: %q", opt)
		}
	}
	return so, nil
}

func defaultMaskedPaths() []string {
	return []string{
		"/proc/acpi",
		"/proc/asound",
		"/proc/interrupts",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/sys/devices/virtual/powercap",
		"/sys/firmware",
	}
}

// MergeEnv returns base with each "KEY=value" of over replacing the same key
// or appended; a bare "KEY" in over removes KEY (Docker's rule).
func MergeEnv(base, over []string) []string {
	out := slices.Clone(base)
	for _, kv := range over {
		k, _, hasValue := strings.Cut(kv, "=")
		i := slices.IndexFunc(out, func(e string) bool {
			ek, _, _ := strings.Cut(e, "=")
			return ek == k
		})
		switch {
		case i >= 0 && hasValue:
			out[i] = kv
		case i >= 0:
			out = slices.Delete(out, i, i+1)
		case hasValue:
			out = append(out, kv)
		}
	}
	return out
}

// validID accepts what runc accepts as a container id ([A-Za-z0-9_+.-],
// not "." or ".."), so the id is also a safe path element.
func validID(id string) bool {
	if id == "" || id == "." || id == ".." {
		return false
	}
	for _, c := range id {
		ok := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strings.ContainsRune("_+.-", c)
		if !ok {
			return false
		}
	}
	return true
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
