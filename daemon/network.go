package daemon

// Networking hooks. The bridge, IPAM, port publishing and DNS come with the
// networking issue; until then every container gets its own network
// namespace with loopback only (runc creates it).

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/container"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// prepareNetworking validates and records the networks a new container
// joins (create time). Call with c not yet stored.
func (d *Daemon) prepareNetworking(ctx context.Context, c *container.Container, nc *network.NetworkingConfig) error {
	return nil
}

// attachNetwork sets up c's network before its process starts and returns
// the network namespace path to join ("" = a new, loopback-only one).
// Call with c locked.
func (d *Daemon) attachNetwork(ctx context.Context, c *container.Container) (string, error) {
	return "", nil
}

// detachNetwork releases what attachNetwork set up (after exit or a failed
// start). Call with c locked; must be idempotent.
func (d *Daemon) detachNetwork(ctx context.Context, c *container.Container) {}

// releaseNetworking forgets c's endpoints when it is removed.
func (d *Daemon) releaseNetworking(ctx context.Context, c *container.Container) {}

// networkSettings reports ports and networks; never null (clients index it).
func (d *Daemon) networkSettings(c *container.Container) *api.NetworkSettings {
	ports := network.PortMap{}
	for p := range c.Config.ExposedPorts {
		ports[p] = nil
	}
	return &api.NetworkSettings{Ports: ports, Networks: map[string]*network.EndpointSettings{}}
}

// portSummaries is ps's PORTS data.
func (d *Daemon) portSummaries(c *container.Container) []api.PortSummary {
	return []api.PortSummary{}
}

type etcFiles struct{ hostname, hosts, resolv string }

// writeEtcFiles writes the container's /etc/hostname, /etc/hosts and
// /etc/resolv.conf. Without a network (loopback only) Docker's defaults apply.
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
		fmt.Fprintf(&hosts, "%s\t%s\n", ip, name)
	}
	for path, data := range map[string][]byte{
		f.hostname: []byte(hostname + "\n"),
		f.hosts:    hosts.Bytes(),
		f.resolv:   resolvConf(c.HostConfig.DNS, c.HostConfig.DNSSearch, c.HostConfig.DNSOptions),
	} {
		if err := writeFileAtomic(path, data, 0o644); err != nil {
			return f, err
		}
	}
	return f, nil
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
	for _, s := range dns {
		servers = append(servers, s)
	}
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
