package daemon

// Networking: the hooks the container lifecycle calls, and the network
// endpoints. The kernel work (bridges, veths, nftables, DNS) is in
// package network; this file maps containers' configuration onto it.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	bnet "github.com/berth-dev/berth/network"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
)

// newNetworks starts the network manager (before restore: exits applied
// during restore detach through it).
func (d *Daemon) newNetworks(ctx context.Context) (*bnet.Manager, error) {
	return bnet.New(ctx, d.db, bnet.Config{
		ExecRoot: d.cfg.ExecRoot, Bridge: d.cfg.Bridge, BIP: d.cfg.BIP, NoNAT: d.cfg.NoIPTables,
	})
}

// adoptNetworks gives running containers (re-adopted by restore) their
// port reservations and DNS servers back; leftovers of stopped ones go.
func (d *Daemon) adoptNetworks(ctx context.Context) {
	d.Networks.Adopt(ctx, func(id string) (bool, bool) {
		c, err := d.Containers.Get(id)
		if err != nil {
			return false, false
		}
		c.Lock()
		defer c.Unlock()
		return true, c.State.Running()
	})
}

// endpointConfigs lists the networks a container with mode joins, the
// mode's own network first.
func endpointConfigs(mode api.NetworkMode, nc *network.NetworkingConfig) ([]bnet.EndpointConfig, error) {
	primary := string(mode)
	if mode.IsDefault() || primary == "" {
		primary = network.NetworkBridge
	}
	var eps map[string]*network.EndpointSettings
	if nc != nil {
		eps = nc.EndpointsConfig
	}
	conv := func(name string, es *network.EndpointSettings) bnet.EndpointConfig {
		ec := bnet.EndpointConfig{Network: name}
		if es != nil {
			ec.Aliases = slices.Clone(es.Aliases)
			if es.IPAMConfig != nil {
				ec.IP = es.IPAMConfig.IPv4Address
			}
		}
		return ec
	}
	first := eps[primary]
	if first == nil {
		first = eps[network.NetworkDefault] // what clients send for the default mode
	}
	out := []bnet.EndpointConfig{conv(primary, first)}
	names := make([]string, 0, len(eps))
	for name := range eps {
		if name != primary && name != network.NetworkDefault {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		out = append(out, conv(name, eps[name]))
	}
	return out, nil
}

// prepareNetworking validates and records the networks a new container
// joins (create time). Call with c not yet stored.
func (d *Daemon) prepareNetworking(ctx context.Context, c *container.Container, nc *network.NetworkingConfig) error {
	hc := c.HostConfig
	mode := hc.NetworkMode
	if err := d.registerLinks(c); err != nil {
		return err
	}
	if _, err := portRequests(c); err != nil {
		return err
	}
	switch {
	case mode.IsHost(), mode.IsNone(), mode.IsContainer():
		if nc != nil && len(nc.EndpointsConfig) > 0 {
			for name := range nc.EndpointsConfig {
				if name != string(mode) {
					return errdefs.InvalidArgument("container cannot be connected to network endpoints: %s", name)
				}
			}
		}
		if len(hc.PortBindings) > 0 && !mode.IsNone() {
			return errdefs.InvalidArgument("conflicting options: port publishing and the container type network mode")
		}
		if mode.IsContainer() {
			if _, err := d.Containers.Get(mode.ConnectedContainer()); err != nil {
				return err
			}
			if len(hc.DNS) > 0 || len(hc.ExtraHosts) > 0 {
				return errdefs.InvalidArgument("conflicting options: dns and the network mode")
			}
		}
		if mode.IsNone() || mode.IsContainer() {
			return nil
		}
		return nil
	}
	eps, err := endpointConfigs(mode, nc)
	if err != nil {
		return err
	}
	for _, ep := range eps {
		if n, err := d.Networks.Get(ep.Network); err == nil && n.Driver != bnet.DriverBridge {
			return errdefs.InvalidArgument("container cannot be disconnected from host network or connected to host network")
		}
	}
	return d.Networks.Prepare(ctx, c.ID, c.DisplayName(), eps)
}

// portRequests turns -p bindings and -P into host port requests.
func portRequests(c *container.Container) ([]bnet.PortRequest, error) {
	hc := c.HostConfig
	var out []bnet.PortRequest
	keys := make([]network.Port, 0, len(hc.PortBindings))
	for p := range hc.PortBindings {
		keys = append(keys, p)
	}
	if hc.PublishAllPorts {
		for p := range c.Config.ExposedPorts {
			if _, ok := hc.PortBindings[p]; !ok {
				keys = append(keys, p)
			}
		}
	}
	slices.SortFunc(keys, func(a, b network.Port) int { return strings.Compare(a.String(), b.String()) })
	for _, p := range keys {
		proto := string(p.Proto())
		if proto != "tcp" && proto != "udp" {
			return nil, errdefs.InvalidArgument("invalid proto %q for port %s: only tcp and udp can be published", proto, p)
		}
		bindings := hc.PortBindings[p]
		if len(bindings) == 0 {
			bindings = []network.PortBinding{{}}
		}
		for _, b := range bindings {
			r := bnet.PortRequest{Proto: proto, HostIP: b.HostIP, ContainerPort: p.Num()}
			if b.HostIP.IsValid() && !b.HostIP.Is4() {
				continue // no IPv6 on Berth's bridges yet; Docker skips these too without --ipv6
			}
			if b.HostPort != "" {
				lo, hi, isRange := strings.Cut(b.HostPort, "-")
				min, err := strconv.ParseUint(lo, 10, 16)
				if err != nil {
					return nil, errdefs.InvalidArgument("invalid host port %q for %s", b.HostPort, p)
				}
				max := min
				if isRange {
					if max, err = strconv.ParseUint(hi, 10, 16); err != nil || max < min {
						return nil, errdefs.InvalidArgument("invalid host port range %q for %s", b.HostPort, p)
					}
				}
				r.HostPortMin, r.HostPortMax = uint16(min), uint16(max)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// attachNetwork sets up c's network before its process starts and returns
// the network namespace path to join ("" = a new, loopback-only one).
// Call with c locked.
func (d *Daemon) attachNetwork(ctx context.Context, c *container.Container) (string, error) {
	mode := c.HostConfig.NetworkMode
	switch {
	case mode.IsHost(), mode.IsNone():
		return "", nil
	case mode.IsContainer():
		other, err := d.Containers.Get(mode.ConnectedContainer())
		if err != nil {
			return "", err
		}
		if other.ID == c.ID {
			return "", errdefs.InvalidArgument("cannot join own network namespace")
		}
		if a, ok := d.Networks.Attachment(other.ID); ok && a.NSPath != "" {
			return a.NSPath, nil
		}
		other.Lock()
		running, pid := other.State.Running(), other.State.Pid
		other.Unlock()
		if !running {
			return "", errdefs.Conflict("cannot join network of a non running container: %s", other.ID)
		}
		return fmt.Sprintf("/proc/%d/ns/net", pid), nil
	}
	ports, err := portRequests(c)
	if err != nil {
		return "", err
	}
	var dns []string
	for _, a := range c.HostConfig.DNS {
		dns = append(dns, a.String())
	}
	t0 := time.Now()
	ns, err := d.Networks.Attach(ctx, c.ID, bnet.AttachOptions{
		Name: c.DisplayName(), Hostname: c.Config.Hostname, Ports: ports, DNS: dns,
	})
	slog.Debug("network attached", "id", c.ShortID(), "took", time.Since(t0))
	return ns, err
}

// detachNetwork releases what attachNetwork set up (after exit or a failed
// start). Call with c locked; must be idempotent.
func (d *Daemon) detachNetwork(ctx context.Context, c *container.Container) {
	t0 := time.Now()
	d.Networks.Detach(ctx, c.ID)
	slog.Debug("network detached", "id", c.ShortID(), "took", time.Since(t0))
}

// releaseNetworking forgets c's endpoints when it is removed.
func (d *Daemon) releaseNetworking(ctx context.Context, c *container.Container) {
	d.Networks.Release(ctx, c.ID)
}

// networkSettings reports ports and networks; never null (clients index it).
func (d *Daemon) networkSettings(c *container.Container) *api.NetworkSettings {
	s := &api.NetworkSettings{Ports: network.PortMap{}, Networks: map[string]*network.EndpointSettings{}}
	mode := c.HostConfig.NetworkMode
	running := c.State.Running()
	if mode.IsHost() || mode.IsNone() {
		if n, err := d.Networks.Get(string(mode)); err == nil {
			s.Networks[n.Name] = &network.EndpointSettings{NetworkID: n.ID}
		}
		return s
	}
	a, ok := d.Networks.Attachment(c.ID)
	if !ok {
		return s
	}
	s.SandboxKey = a.NSPath
	if a.NSPath != "" {
		s.SandboxID = filepath.Base(a.NSPath)
	}
	for _, e := range a.Endpoints {
		n, err := d.Networks.Get(e.NetworkID)
		if err != nil {
			continue
		}
		es := &network.EndpointSettings{NetworkID: n.ID, Aliases: slices.Clone(e.Aliases)}
		if e.Requested.IsValid() {
			es.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: e.Requested}
		}
		if e.IP.IsValid() {
			es.EndpointID = e.ID
			es.IPAddress = e.IP
			es.IPPrefixLen = n.Subnet.Bits()
			if !n.Internal {
				es.Gateway = n.Gateway
			}
			if mac, err := net.ParseMAC(e.MAC); err == nil {
				es.MacAddress = network.HardwareAddr(mac)
			}
		}
		if n.UserDefined() {
			es.DNSNames = append([]string{c.DisplayName(), c.ShortID()}, e.Aliases...)
		}
		s.Networks[n.Name] = es
	}
	if !running {
		return s
	}
	for p := range c.Config.ExposedPorts {
		s.Ports[p] = nil
	}
	for _, pm := range a.Ports {
		p, ok := network.PortFrom(pm.ContainerPort, network.IPProtocol(pm.Proto))
		if !ok {
			continue
		}
		s.Ports[p] = append(s.Ports[p], network.PortBinding{HostIP: pm.HostIP, HostPort: strconv.Itoa(int(pm.HostPort))})
	}
	return s
}

// portSummaries is ps's PORTS data.
func (d *Daemon) portSummaries(c *container.Container) []api.PortSummary {
	out := []api.PortSummary{}
	published := map[string]bool{}
	if c.State.Running() {
		if a, ok := d.Networks.Attachment(c.ID); ok {
			for _, pm := range a.Ports {
				out = append(out, api.PortSummary{IP: pm.HostIP, PrivatePort: pm.ContainerPort, PublicPort: pm.HostPort, Type: pm.Proto})
				published[fmt.Sprintf("%d/%s", pm.ContainerPort, pm.Proto)] = true
			}
		}
	}
	for p := range c.Config.ExposedPorts {
		if !published[p.String()] {
			out = append(out, api.PortSummary{PrivatePort: p.Num(), Type: string(p.Proto())})
		}
	}
	return out
}

type etcFiles struct{ hostname, hosts, resolv string }

// writeEtcFiles writes the container's /etc/hostname, /etc/hosts and
// /etc/resolv.conf. Containers on a user-defined network ask the embedded
// DNS server; the others get the host's servers (or --dns).
func (d *Daemon) writeEtcFiles(c *container.Container) (etcFiles, error) {
	dir := d.containerDir(c.ID)
	f := etcFiles{
		hostname: filepath.Join(dir, "hostname"),
		hosts:    filepath.Join(dir, "hosts"),
		resolv:   filepath.Join(dir, "resolv.conf"),
	}
	hostname := c.Config.Hostname
	if c.Config.Domainname != "" {
		hostname += "." + c.Config.Domainname
	}
	var hosts bytes.Buffer
	hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	for _, h := range c.HostConfig.ExtraHosts {
		name, ip, ok := strings.Cut(h, ":")
		if !ok {
			name, ip, _ = strings.Cut(h, "=")
		}
		if ip == "host-gateway" {
			if n, err := d.Networks.Get(network.NetworkBridge); err == nil {
				ip = n.Gateway.String()
			}
		}
		fmt.Fprintf(&hosts, "%s\t%s\n", ip, name)
	}
	embedded := false
	if a, ok := d.Networks.Attachment(c.ID); ok && !c.HostConfig.NetworkMode.IsHost() && !c.HostConfig.NetworkMode.IsNone() && !c.HostConfig.NetworkMode.IsContainer() {
		for i, e := range a.Endpoints {
			if !e.IP.IsValid() {
				continue
			}
			if i == 0 {
				fmt.Fprintf(&hosts, "%s\t%s\n", e.IP, hostname)
			}
			if n, err := d.Networks.Get(e.NetworkID); err == nil && n.UserDefined() {
				embedded = true
			}
		}
	}
	if err := d.writeLinkHosts(&hosts, c); err != nil {
		return f, err
	}
	resolv := resolvConf(c.HostConfig.DNS, c.HostConfig.DNSSearch, c.HostConfig.DNSOptions)
	if embedded {
		resolv = embeddedResolvConf(c.HostConfig.DNSSearch, c.HostConfig.DNSOptions)
	}
	for path, data := range map[string][]byte{
		f.hostname: []byte(hostname + "\n"),
		f.hosts:    hosts.Bytes(),
		f.resolv:   resolv,
	} {
		if err := writeFileAtomic(path, data, 0o644); err != nil {
			return f, err
		}
	}
	return f, nil
}

// embeddedResolvConf points at the embedded DNS server; the host's search
// domains are kept, as Docker does.
func embeddedResolvConf(search, options []string) []byte {
	var out bytes.Buffer
	fmt.Fprintf(&out, "nameserver %s\n", bnet.DNSAddr)
	if len(search) == 0 {
		host, _ := os.ReadFile("/etc/resolv.conf")
		for _, line := range strings.Split(string(host), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "search" {
				search = f[1:]
			}
		}
	}
	if len(search) > 0 {
		fmt.Fprintf(&out, "search %s\n", strings.Join(search, " "))
	}
	options = append([]string{"ndots:0"}, options...)
	fmt.Fprintf(&out, "options %s\n", strings.Join(options, " "))
	return out.Bytes()
}

// resolvConf derives the container's resolv.conf from the host's, dropping
// loopback nameservers the container cannot reach (Docker's rule).
func resolvConf(dnsAddrs []netip.Addr, search, options []string) []byte {
	var dns []string
	for _, a := range dnsAddrs {
		dns = append(dns, a.String())
	}
	var out bytes.Buffer
	host, _ := os.ReadFile("/etc/resolv.conf")
	var servers []string
	servers = append(servers, dns...)
	for _, line := range strings.Split(string(host), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if len(dns) == 0 && !strings.HasPrefix(fields[1], "127.") && fields[1] != "::1" {
				servers = append(servers, fields[1])
			}
		case "search":
			if len(search) == 0 {
				search = fields[1:]
			}
		case "options":
			if len(options) == 0 {
				options = fields[1:]
			}
		}
	}
	if len(servers) == 0 {
		servers = []string{"8.8.8.8", "8.8.4.4"}
	}
	for _, s := range servers {
		fmt.Fprintf(&out, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&out, "search %s\n", strings.Join(search, " "))
	}
	if len(options) > 0 {
		fmt.Fprintf(&out, "options %s\n", strings.Join(options, " "))
	}
	return out.Bytes()
}

// --- the network endpoints ---

func (d *Daemon) networkInspect(n bnet.Network) network.Inspect {
	out := network.Inspect{
		Network: network.Network{
			Name: n.Name, ID: n.ID, Created: n.Created, Scope: "local", Driver: n.Driver,
			EnableIPv4: true, Internal: n.Internal, Options: n.Options, Labels: n.Labels,
			IPAM: network.IPAM{Driver: "default", Options: map[string]string{}, Config: []network.IPAMConfig{}},
		},
		Containers: map[string]network.EndpointResource{},
	}
	if out.Options == nil {
		out.Options = map[string]string{}
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if n.Subnet.IsValid() {
		out.IPAM.Config = append(out.IPAM.Config, network.IPAMConfig{Subnet: n.Subnet, Gateway: n.Gateway})
	}
	for _, a := range d.Networks.Containers(n.ID) {
		e := a.Endpoint(n.ID)
		res := network.EndpointResource{Name: a.Name, EndpointID: e.ID, IPv4Address: netip.PrefixFrom(e.IP, n.Subnet.Bits())}
		if mac, err := net.ParseMAC(e.MAC); err == nil {
			res.MacAddress = network.HardwareAddr(mac)
		}
		out.Containers[a.ContainerID] = res
	}
	return out
}

// NetworkCreate creates a user-defined network.
func (d *Daemon) NetworkCreate(ctx context.Context, req network.CreateRequest) (network.CreateResponse, error) {
	o := bnet.CreateOptions{Name: req.Name, Driver: req.Driver, Internal: req.Internal, Labels: req.Labels, Options: req.Options}
	if req.EnableIPv6 != nil && *req.EnableIPv6 {
		return network.CreateResponse{}, errdefs.InvalidArgument("IPv6 networks are not supported")
	}
	if req.IPAM != nil {
		if req.IPAM.Driver != "" && req.IPAM.Driver != "default" {
			return network.CreateResponse{}, errdefs.InvalidArgument("IPAM driver %q is not supported", req.IPAM.Driver)
		}
		if len(req.IPAM.Config) > 1 {
			return network.CreateResponse{}, errdefs.InvalidArgument("only one IPv4 subnet per network is supported")
		}
		if len(req.IPAM.Config) == 1 {
			o.Subnet, o.Gateway = req.IPAM.Config[0].Subnet, req.IPAM.Config[0].Gateway
		}
	}
	n, err := d.Networks.Create(ctx, o)
	if err != nil {
		return network.CreateResponse{}, err
	}
	d.Events.Publish(events.NetworkEventType, events.ActionCreate, n.ID, map[string]string{"name": n.Name, "type": n.Driver})
	return network.CreateResponse{ID: n.ID, Warning: ""}, nil
}

// NetworkInspect returns one network with its running containers.
func (d *Daemon) NetworkInspect(ctx context.Context, ref string) (network.Inspect, error) {
	n, err := d.Networks.Get(ref)
	if err != nil {
		return network.Inspect{}, err
	}
	return d.networkInspect(n), nil
}

// NetworkList lists networks matching filters (name, id, driver, label,
// type=custom|builtin, dangling).
func (d *Daemon) NetworkList(ctx context.Context, f map[string][]string) ([]network.Inspect, error) {
	for k := range f {
		switch k {
		case "name", "id", "driver", "label", "type", "dangling", "scope":
		default:
			return nil, errdefs.InvalidArgument("invalid filter '%s'", k)
		}
	}
	out := []network.Inspect{}
	for _, n := range d.Networks.List() {
		if !matchNetwork(n, f, func() bool { return len(d.Networks.Containers(n.ID)) == 0 }) {
			continue
		}
		out = append(out, d.networkInspect(n))
	}
	return out, nil
}

func matchNetwork(n bnet.Network, f map[string][]string, unused func() bool) bool {
	any := func(key string, ok func(string) bool) bool {
		vs := f[key]
		if len(vs) == 0 {
			return true
		}
		return slices.ContainsFunc(vs, ok)
	}
	if !any("name", func(v string) bool { return strings.Contains(n.Name, v) }) ||
		!any("id", func(v string) bool { return strings.HasPrefix(n.ID, v) }) ||
		!any("driver", func(v string) bool { return n.Driver == v }) ||
		!any("scope", func(v string) bool { return v == "local" }) ||
		!any("type", func(v string) bool { return (v == "custom") == n.UserDefined() }) ||
		!any("dangling", func(v string) bool { return (v == "true" || v == "1") == (n.UserDefined() && unused()) }) {
		return false
	}
	for _, l := range f["label"] {
		k, v, hasV := strings.Cut(l, "=")
		have, ok := n.Labels[k]
		if !ok || (hasV && have != v) {
			return false
		}
	}
	return true
}

// NetworkRemove removes a user-defined network no running container uses.
func (d *Daemon) NetworkRemove(ctx context.Context, ref string) error {
	n, err := d.Networks.Get(ref)
	if err != nil {
		return err
	}
	if err := d.Networks.Remove(ctx, n.ID); err != nil {
		return err
	}
	d.Events.Publish(events.NetworkEventType, events.ActionDestroy, n.ID, map[string]string{"name": n.Name, "type": n.Driver})
	return nil
}

// NetworkPrune removes user-defined networks no container refers to.
func (d *Daemon) NetworkPrune(ctx context.Context, f map[string][]string) (network.PruneReport, error) {
	for k := range f {
		if k != "label" && k != "label!" && k != "until" {
			return network.PruneReport{}, errdefs.InvalidArgument("invalid filter '%s'", k)
		}
	}
	deleted, err := d.Networks.Prune(ctx, func(n bnet.Network) bool {
		if !matchNetwork(n, map[string][]string{"label": f["label"]}, nil) {
			return true
		}
		for _, l := range f["label!"] {
			k, v, hasV := strings.Cut(l, "=")
			if have, ok := n.Labels[k]; ok && (!hasV || have == v) {
				return true
			}
		}
		return false
	})
	if deleted == nil {
		deleted = []string{}
	}
	return network.PruneReport{NetworksDeleted: deleted}, err
}

// NetworkConnect connects a container to a network, at once if it runs.
func (d *Daemon) NetworkConnect(ctx context.Context, ref string, req network.ConnectRequest) error {
	n, err := d.Networks.Get(ref)
	if err != nil {
		return err
	}
	c, err := d.Containers.Get(req.Container)
	if err != nil {
		return err
	}
	c.Lock()
	defer c.Unlock()
	mode := c.HostConfig.NetworkMode
	if mode.IsHost() || mode.IsNone() || mode.IsContainer() || n.Driver != bnet.DriverBridge {
		return errdefs.Forbidden("container sharing network namespace with another container or host cannot be connected to any other network")
	}
	ec := bnet.EndpointConfig{Network: n.ID}
	if req.EndpointConfig != nil {
		ec.Aliases = slices.Clone(req.EndpointConfig.Aliases)
		if req.EndpointConfig.IPAMConfig != nil {
			ec.IP = req.EndpointConfig.IPAMConfig.IPv4Address
		}
	}
	if err := d.Networks.Connect(ctx, c.ID, c.DisplayName(), ec); err != nil {
		return err
	}
	d.Events.Publish(events.NetworkEventType, events.ActionConnect, n.ID, map[string]string{"container": c.ID, "name": n.Name, "type": n.Driver})
	return nil
}

// NetworkDisconnect disconnects a container from a network.
func (d *Daemon) NetworkDisconnect(ctx context.Context, ref string, req network.DisconnectRequest) error {
	n, err := d.Networks.Get(ref)
	if err != nil {
		return err
	}
	c, err := d.Containers.Get(req.Container)
	if err != nil {
		return err
	}
	c.Lock()
	defer c.Unlock()
	if mode := c.HostConfig.NetworkMode; mode.IsHost() || mode.IsNone() || mode.IsContainer() {
		return errdefs.Forbidden("container %s is not connected to network %s", c.ShortID(), n.Name)
	}
	if err := d.Networks.Disconnect(ctx, c.ID, n.ID); err != nil {
		return err
	}
	d.Events.Publish(events.NetworkEventType, events.ActionDisconnect, n.ID, map[string]string{"container": c.ID, "name": n.Name, "type": n.Driver})
	return nil
}
