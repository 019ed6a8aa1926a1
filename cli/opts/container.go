package opts

import (
	"fmt"
	"net/netip"
	"os"
	"path"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/pflag"
)

// ContainerOptions holds the flags shared by `run` and `create`, before they become API types.
type ContainerOptions struct {
	Attach       []string
	Stdin        bool
	TTY          bool
	Env          []string
	EnvFile      []string
	Workdir      string
	User         string
	Entrypoint   string
	Hostname     string
	Domainname   string
	Labels       []string
	LabelFile    []string
	Restart      string
	Init         bool
	Publish      []string
	PublishAll   bool
	Expose       []string
	Volumes      []string
	Mounts       []string
	VolumesFrom  []string
	Network      string
	NetworkAlias []string
	Link         []string
	Memory       MemBytes
	MemorySwap   MemBytes
	CPUs         NanoCPUs
	CPUShares    int64
	Swappiness   int64
	CpusetCpus   string
	Ulimits      []string
	CapAdd       []string
	CapDrop      []string
	Privileged   bool
	ReadOnly     bool
	Tmpfs        []string
	StopSignal   string
	StopTimeout  int
	LogDriver    string
	LogOpts      []string
	Platform     string
	Pull         string
	GroupAdd     []string
	DNS          []string
	DNSSearch    []string
	DNSOptions   []string
	AddHost      []string
	ShmSize      MemBytes
	PidsLimit    int64
	Sysctls      []string
	SecurityOpt  []string
	Name         string
	AutoRemove   bool
	CIDFile      string
	Runtime      string
	PidMode      string
	IpcMode      string
	UTSMode      string
	Devices      []string
	OomKillOff   bool
	Annotations  []string

	Image string
	Args  []string
}

// AddContainerFlags registers docker's run/create flags on flags and returns the struct they fill.
func AddContainerFlags(flags *pflag.FlagSet) *ContainerOptions {
	o := &ContainerOptions{}
	flags.SetInterspersed(false)
	flags.StringArrayVarP(&o.Attach, "attach", "a", nil, "Attach to STDIN, STDOUT or STDERR")
	flags.BoolVarP(&o.Stdin, "interactive", "i", false, "Keep STDIN open even if not attached")
	flags.BoolVarP(&o.TTY, "tty", "t", false, "Allocate a pseudo-TTY")
	flags.StringArrayVarP(&o.Env, "env", "e", nil, "Set environment variables")
	flags.StringArrayVar(&o.EnvFile, "env-file", nil, "Read in a file of environment variables")
	flags.StringVarP(&o.Workdir, "workdir", "w", "", "Working directory inside the container")
	flags.StringVarP(&o.User, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	flags.StringVar(&o.Entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	flags.StringVarP(&o.Hostname, "hostname", "h", "", "Container host name")
	flags.StringVar(&o.Domainname, "domainname", "", "Container NIS domain name")
	flags.StringArrayVarP(&o.Labels, "label", "l", nil, "Set meta data on a container")
	flags.StringArrayVar(&o.LabelFile, "label-file", nil, "Read in a line delimited file of labels")
	flags.StringVar(&o.Restart, "restart", "no", "Restart policy to apply when a container exits")
	flags.BoolVar(&o.Init, "init", false, "Run an init inside the container that forwards signals and reaps processes")
	flags.StringArrayVarP(&o.Publish, "publish", "p", nil, "Publish a container's port(s) to the host")
	flags.BoolVarP(&o.PublishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	flags.StringArrayVar(&o.Expose, "expose", nil, "Expose a port or a range of ports")
	flags.StringArrayVarP(&o.Volumes, "volume", "v", nil, "Bind mount a volume")
	flags.StringArrayVar(&o.Mounts, "mount", nil, "Attach a filesystem mount to the container")
	flags.StringArrayVar(&o.VolumesFrom, "volumes-from", nil, "Mount volumes from the specified container(s)")
	flags.StringVar(&o.Network, "network", "", "Connect a container to a network")
	flags.StringVar(&o.Network, "net", "", "Connect a container to a network")
	_ = flags.MarkHidden("net")
	flags.StringArrayVar(&o.NetworkAlias, "network-alias", nil, "Add network-scoped alias for the container")
	flags.StringArrayVar(&o.Link, "link", nil, "Add link to another container")
	flags.VarP(&o.Memory, "memory", "m", "Memory limit")
	flags.Var(&o.MemorySwap, "memory-swap", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
	flags.Var(&o.CPUs, "cpus", "Number of CPUs")
	flags.Int64VarP(&o.CPUShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	flags.Int64Var(&o.Swappiness, "memory-swappiness", -1, "Tune container memory swappiness (0 to 100)")
	flags.StringVar(&o.CpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	flags.StringArrayVar(&o.Ulimits, "ulimit", nil, "Ulimit options")
	flags.StringArrayVar(&o.CapAdd, "cap-add", nil, "Add Linux capabilities")
	flags.StringArrayVar(&o.CapDrop, "cap-drop", nil, "Drop Linux capabilities")
	flags.BoolVar(&o.Privileged, "privileged", false, "Give extended privileges to this container")
	flags.BoolVar(&o.ReadOnly, "read-only", false, "Mount the container's root filesystem as read only")
	flags.StringArrayVar(&o.Tmpfs, "tmpfs", nil, "Mount a tmpfs directory")
	flags.StringVar(&o.StopSignal, "stop-signal", "", "Signal to stop the container")
	flags.IntVar(&o.StopTimeout, "stop-timeout", 0, "Timeout (in seconds) to stop a container")
	flags.StringVar(&o.LogDriver, "log-driver", "", "Logging driver for the container (json-file or none)")
	flags.StringArrayVar(&o.LogOpts, "log-opt", nil, "Log driver options")
	flags.StringVar(&o.Platform, "platform", os.Getenv("DOCKER_DEFAULT_PLATFORM"), "Set platform if server is multi-platform capable")
	flags.StringVar(&o.Pull, "pull", "missing", `Pull image before running ("missing", "never")`)
	flags.StringArrayVar(&o.GroupAdd, "group-add", nil, "Add additional groups to join")
	flags.StringArrayVar(&o.DNS, "dns", nil, "Set custom DNS servers")
	flags.StringArrayVar(&o.DNSSearch, "dns-search", nil, "Set custom DNS search domains")
	flags.StringArrayVar(&o.DNSOptions, "dns-option", nil, "Set DNS options")
	flags.StringArrayVar(&o.AddHost, "add-host", nil, "Add a custom host-to-IP mapping (host:ip)")
	flags.Var(&o.ShmSize, "shm-size", "Size of /dev/shm")
	flags.Int64Var(&o.PidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	flags.StringArrayVar(&o.Sysctls, "sysctl", nil, "Sysctl options")
	flags.StringArrayVar(&o.SecurityOpt, "security-opt", nil, "Security Options")
	flags.StringVar(&o.Name, "name", "", "Assign a name to the container")
	flags.BoolVar(&o.AutoRemove, "rm", false, "Automatically remove the container and its associated anonymous volumes when it exits")
	flags.StringVar(&o.CIDFile, "cidfile", "", "Write the container ID to the file")
	flags.StringVar(&o.Runtime, "runtime", "", "Runtime to use for this container")
	flags.StringVar(&o.PidMode, "pid", "", "PID namespace to use")
	flags.StringVar(&o.IpcMode, "ipc", "", "IPC mode to use")
	flags.StringVar(&o.UTSMode, "uts", "", "UTS namespace to use")
	flags.StringArrayVar(&o.Devices, "device", nil, "Add a host device to the container")
	flags.BoolVar(&o.OomKillOff, "oom-kill-disable", false, "Disable OOM Killer")
	flags.StringArrayVar(&o.Annotations, "annotation", nil, "Add an annotation to the container (passed through to the OCI runtime)")
	return o
}

// ContainerConfig is what `create` sends.
type ContainerConfig struct {
	Config           *container.Config
	HostConfig       *container.HostConfig
	NetworkingConfig *network.NetworkingConfig
}

// Parse turns the flags (and the positional IMAGE [COMMAND] [ARG...]) into the create request.
// detach is run's -d; create passes false.
func Parse(flags *pflag.FlagSet, o *ContainerOptions, detach bool) (*ContainerConfig, error) {
	var attachStdin, attachStdout, attachStderr bool
	for _, a := range o.Attach {
		switch strings.ToLower(a) {
		case "stdin":
			attachStdin = true
		case "stdout":
			attachStdout = true
		case "stderr":
			attachStderr = true
		default:
			return nil, fmt.Errorf("invalid argument %q for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR", a)
		}
	}
	if len(o.Attach) == 0 && !detach {
		attachStdout, attachStderr = true, true
		attachStdin = o.Stdin
	}

	if o.Swappiness != -1 && (o.Swappiness < 0 || o.Swappiness > 100) {
		return nil, fmt.Errorf("invalid value: %d. Valid memory swappiness range is 0-100", o.Swappiness)
	}
	if o.Memory.Value() != 0 && o.MemorySwap.Value() > 0 && o.MemorySwap.Value() < o.Memory.Value() {
		return nil, fmt.Errorf("minimum memoryswap limit should be larger than memory limit, see usage")
	}

	// ports
	exposed := network.PortSet{}
	bindings := network.PortMap{}
	for _, spec := range o.Publish {
		maps, err := ParsePortSpec(spec)
		if err != nil {
			return nil, err
		}
		for _, m := range maps {
			exposed[m.Port] = struct{}{}
			bindings[m.Port] = append(bindings[m.Port], m.Binding)
		}
	}
	for _, e := range o.Expose {
		ports, err := ParseExpose(e)
		if err != nil {
			return nil, err
		}
		for _, p := range ports {
			exposed[p] = struct{}{}
		}
	}

	// volumes: "dest" alone is an anonymous volume, anything with a source is a bind
	var binds []string
	volumes := map[string]struct{}{}
	for _, v := range o.Volumes {
		parts := strings.Split(v, ":")
		switch {
		case v == "":
			return nil, fmt.Errorf("invalid empty volume spec")
		case len(parts) == 1:
			if !path.IsAbs(v) {
				return nil, fmt.Errorf("invalid volume specification: '%s': invalid mount config for type \"volume\": invalid mount path: '%s' mount path must be absolute", v, v)
			}
			volumes[v] = struct{}{}
		case len(parts) > 3:
			return nil, fmt.Errorf("invalid volume specification: '%s'", v)
		default:
			if parts[0] == "" || !path.IsAbs(parts[1]) {
				return nil, fmt.Errorf("invalid volume specification: '%s'", v)
			}
			binds = append(binds, v)
		}
	}
	var mounts []mount.Mount
	for _, m := range o.Mounts {
		mm, err := ParseMount(m)
		if err != nil {
			return nil, fmt.Errorf("invalid argument %q for \"--mount\" flag: %w", m, err)
		}
		mounts = append(mounts, mm)
	}
	var tmpfs map[string]string
	for _, t := range o.Tmpfs {
		dest, options, _ := strings.Cut(t, ":")
		if !path.IsAbs(dest) {
			return nil, fmt.Errorf("invalid tmpfs mount path: '%s' mount path must be absolute", dest)
		}
		if tmpfs == nil {
			tmpfs = map[string]string{}
		}
		tmpfs[dest] = options
	}

	// environment: env files first, then -e, as docker
	var env []string
	for _, f := range o.EnvFile {
		lines, err := ReadKVFile(f, os.LookupEnv)
		if err != nil {
			return nil, err
		}
		env = append(env, lines...)
	}
	for _, e := range o.Env {
		v, err := ValidateEnv(e)
		if err != nil {
			return nil, err
		}
		env = append(env, v)
	}

	var labelLines []string
	for _, f := range o.LabelFile {
		lines, err := ReadKVFile(f, nil)
		if err != nil {
			return nil, err
		}
		labelLines = append(labelLines, lines...)
	}
	for _, l := range o.Labels {
		if strings.HasPrefix(l, "=") {
			return nil, fmt.Errorf("invalid label '%s': empty name", l)
		}
		labelLines = append(labelLines, l)
	}
	labels := ConvertKVStringsToMap(labelLines)

	var ulimits []*container.Ulimit
	for _, u := range o.Ulimits {
		ul, err := ParseUlimit(u)
		if err != nil {
			return nil, fmt.Errorf("invalid argument %q for \"--ulimit\" flag: %w", u, err)
		}
		ulimits = append(ulimits, ul)
	}

	var sysctls map[string]string
	for _, s := range o.Sysctls {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid argument %q for \"--sysctl\" flag: sysctl '%s' is not allowed", s, s)
		}
		if sysctls == nil {
			sysctls = map[string]string{}
		}
		sysctls[k] = v
	}

	var dns []netip.Addr
	for _, d := range o.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return nil, fmt.Errorf("invalid argument %q for \"--dns\" flag: ip address is not correctly formatted: %s", d, d)
		}
		dns = append(dns, a)
	}
	var extraHosts []string
	for _, h := range o.AddHost {
		// docker accepts host:ip and host=ip; the daemon wants host:ip
		name, ip, ok := strings.Cut(h, "=")
		if !ok {
			name, ip, ok = strings.Cut(h, ":")
		}
		if !ok || name == "" || ip == "" {
			return nil, fmt.Errorf("invalid argument %q for \"--add-host\" flag: bad format for add-host: %q", h, h)
		}
		ip = strings.Trim(ip, "[]")
		if ip != "host-gateway" {
			if _, err := netip.ParseAddr(ip); err != nil {
				return nil, fmt.Errorf("invalid argument %q for \"--add-host\" flag: invalid IP address in add-host: %q", h, ip)
			}
		}
		extraHosts = append(extraHosts, name+":"+ip)
	}

	restart, err := ParseRestartPolicy(o.Restart)
	if err != nil {
		return nil, err
	}

	logCfg := container.LogConfig{Type: o.LogDriver}
	// As docker's CLI: options with none are refused here, the drivers and their options by the daemon.
	if o.LogDriver == "none" && len(o.LogOpts) > 0 {
		return nil, fmt.Errorf("invalid logging opts for driver %s", o.LogDriver)
	}
	if len(o.LogOpts) > 0 {
		logCfg.Config = ConvertKVStringsToMap(o.LogOpts)
	}

	var entrypoint []string
	if o.Entrypoint != "" {
		entrypoint = []string{o.Entrypoint}
	} else if flags.Changed("entrypoint") {
		// --entrypoint "" resets the image's entrypoint
		entrypoint = []string{""}
	}

	var devices []container.DeviceMapping
	for _, d := range o.Devices {
		dm, err := parseDevice(d)
		if err != nil {
			return nil, err
		}
		devices = append(devices, dm)
	}

	netMode := container.NetworkMode("default")
	if o.Network != "" {
		netMode = container.NetworkMode(o.Network)
	}

	cfg := &container.Config{
		Hostname:     o.Hostname,
		Domainname:   o.Domainname,
		User:         o.User,
		AttachStdin:  attachStdin,
		AttachStdout: attachStdout,
		AttachStderr: attachStderr,
		Tty:          o.TTY,
		OpenStdin:    o.Stdin,
		StdinOnce:    attachStdin && o.Stdin,
		Env:          env,
		Cmd:          cmdOrNil(o.Args),
		Image:        o.Image,
		WorkingDir:   o.Workdir,
		Entrypoint:   entrypoint,
		Labels:       labels,
		StopSignal:   o.StopSignal,
	}
	if len(exposed) > 0 {
		cfg.ExposedPorts = exposed
	}
	if len(volumes) > 0 {
		cfg.Volumes = volumes
	}
	if flags.Changed("stop-timeout") {
		t := o.StopTimeout
		cfg.StopTimeout = &t
	}

	hc := &container.HostConfig{
		Binds:           binds,
		ContainerIDFile: o.CIDFile,
		LogConfig:       logCfg,
		NetworkMode:     netMode,
		PortBindings:    bindings,
		RestartPolicy:   restart,
		AutoRemove:      o.AutoRemove,
		VolumesFrom:     o.VolumesFrom,
		CapAdd:          o.CapAdd,
		CapDrop:         o.CapDrop,
		DNS:             dns,
		DNSOptions:      o.DNSOptions,
		DNSSearch:       o.DNSSearch,
		ExtraHosts:      extraHosts,
		Links:           o.Link,
		GroupAdd:        o.GroupAdd,
		IpcMode:         container.IpcMode(o.IpcMode),
		PidMode:         container.PidMode(o.PidMode),
		UTSMode:         container.UTSMode(o.UTSMode),
		Privileged:      o.Privileged,
		PublishAllPorts: o.PublishAll,
		ReadonlyRootfs:  o.ReadOnly,
		SecurityOpt:     o.SecurityOpt,
		Tmpfs:           tmpfs,
		ShmSize:         o.ShmSize.Value(),
		Sysctls:         sysctls,
		Runtime:         o.Runtime,
		Mounts:          mounts,
		Resources: container.Resources{
			Memory:     o.Memory.Value(),
			MemorySwap: o.MemorySwap.Value(),
			NanoCPUs:   o.CPUs.Value(),
			CPUShares:  o.CPUShares,
			CpusetCpus: o.CpusetCpus,
			Ulimits:    ulimits,
			Devices:    devices,
			// docker always sends the flag's value; -1 means "the daemon's default"
			MemorySwappiness: &o.Swappiness,
		},
	}
	if flags.Changed("init") {
		b := o.Init
		hc.Init = &b
	}
	if flags.Changed("pids-limit") {
		n := o.PidsLimit
		hc.PidsLimit = &n
	}
	if flags.Changed("oom-kill-disable") {
		b := o.OomKillOff
		hc.OomKillDisable = &b
	}
	if len(o.Annotations) > 0 {
		hc.Annotations = ConvertKVStringsToMap(o.Annotations)
	}

	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{}}
	if len(o.NetworkAlias) > 0 {
		switch o.Network {
		case "", "default", "bridge", "host", "none":
			return nil, fmt.Errorf("network-scoped aliases are only supported for user-defined networks")
		}
		if strings.HasPrefix(o.Network, "container:") {
			return nil, fmt.Errorf("network-scoped aliases are only supported for user-defined networks")
		}
	}
	// like docker (API >= 1.44): an endpoint for the default network, or for a user network with options
	if netMode.IsDefault() || netMode.IsUserDefined() && len(o.NetworkAlias) > 0 {
		nc.EndpointsConfig[string(netMode)] = &network.EndpointSettings{Aliases: o.NetworkAlias}
	}
	return &ContainerConfig{Config: cfg, HostConfig: hc, NetworkingConfig: nc}, nil
}

func parseDevice(d string) (container.DeviceMapping, error) {
	parts := strings.Split(d, ":")
	dm := container.DeviceMapping{CgroupPermissions: "rwm"}
	switch len(parts) {
	case 1:
		dm.PathOnHost, dm.PathInContainer = parts[0], parts[0]
	case 2:
		dm.PathOnHost = parts[0]
		if isPerm(parts[1]) {
			dm.PathInContainer, dm.CgroupPermissions = parts[0], parts[1]
		} else {
			dm.PathInContainer = parts[1]
		}
	case 3:
		if !isPerm(parts[2]) {
			return dm, fmt.Errorf("invalid device mode: %s", parts[2])
		}
		dm.PathOnHost, dm.PathInContainer, dm.CgroupPermissions = parts[0], parts[1], parts[2]
	default:
		return dm, fmt.Errorf("invalid device specification: %s", d)
	}
	return dm, nil
}

func isPerm(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("rwm", c) {
			return false
		}
	}
	return true
}

// cmdOrNil keeps an absent command null on the wire, so the image's CMD applies.
func cmdOrNil(args []string) []string {
	if len(args) == 0 {
		return nil
	}
	return args
}
