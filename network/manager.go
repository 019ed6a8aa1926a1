package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/metadata"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

var (
	bucketIPAM      = []byte("ipam")
	bucketEndpoints = []byte("endpoints")
)

// Config is the daemon's network configuration, with dockerd's flag names.
type Config struct {
	ExecRoot string // netns bind mounts live under <ExecRoot>/netns
	Bridge   string // --bridge: the default network's bridge device (default berth0)
	BIP      string // --bip: the bridge's address and prefix, e.g. 10.1.2.1/24 ("" = a free pool)
	NoNAT    bool   // --iptables=false: leave nftables alone
}

// Manager owns networks, their IPAM and containers' attachments.
type Manager struct {
	cfg   Config
	db    *bolt.DB
	table string

	mu       sync.Mutex
	networks map[string]*Network
	atts     map[string]*Attachment
	reserved map[string]int        // portKey -> socket holding the port
	dns      map[string]*dnsServer // container id -> embedded DNS
	teardown sync.WaitGroup        // veths and namespaces being removed
}

// TableName is the nftables table a daemon with default bridge uses.
func TableName(bridge string) string { return "berth_" + bridge }

// New loads the networks, creates the predefined ones (bridge, host,
// none), brings up their bridges and writes the nftables table. Nothing
// in use is torn down: a running container's veths, addresses and port
// rules survive a daemon restart and are adopted as they are.
func New(ctx context.Context, db *bolt.DB, cfg Config) (*Manager, error) {
	if cfg.Bridge == "" {
		cfg.Bridge = "berth0"
	}
	if len(cfg.Bridge) > 15 {
		return nil, errdefs.InvalidArgument("bridge name %q is longer than 15 characters", cfg.Bridge)
	}
	m := &Manager{cfg: cfg, db: db, table: TableName(cfg.Bridge), networks: map[string]*Network{},
		atts: map[string]*Attachment{}, reserved: map[string]int{}, dns: map[string]*dnsServer{}}
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketIPAM, bucketEndpoints} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if err := tx.Bucket(metadata.BucketNetworks).ForEach(func(k, v []byte) error {
			var n Network
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("network %s: %w", k, err)
			}
			m.networks[n.ID] = &n
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketEndpoints).ForEach(func(k, v []byte) error {
			var a Attachment
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("endpoints of %s: %w", k, err)
			}
			m.atts[a.ContainerID] = &a
			return nil
		})
	})
	if err != nil {
		return nil, errdefs.System("load networks: %v", err)
	}
	if err := m.predefine(); err != nil {
		return nil, err
	}
	if err := m.reconcile(); err != nil {
		return nil, err
	}
	for _, n := range m.networks {
		if n.Driver == DriverBridge {
			if err := ensureBridge(n.Bridge, n.Gateway, n.Subnet, linkAlias(m.table)); err != nil {
				return nil, fmt.Errorf("network %s: %w", n.Name, err)
			}
		}
	}
	if !cfg.NoNAT {
		_ = os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	}
	if err := m.syncRules(); err != nil {
		return nil, err
	}
	return m, nil
}

// reconcile drops what a daemon killed in the middle of a teardown left:
// addresses no live endpoint holds and namespaces no attachment names.
func (m *Manager) reconcile() error {
	live := map[string]bool{}
	paths := map[string]bool{}
	for _, a := range m.atts {
		if a.NSPath != "" {
			paths[a.NSPath] = true
		}
		for _, e := range a.Endpoints {
			if e.IP.IsValid() {
				live[e.NetworkID+"/"+e.IP.String()] = true
			}
		}
	}
	err := m.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketIPAM)
		var stale [][2][]byte
		root.ForEachBucket(func(netID []byte) error {
			return root.Bucket(netID).ForEach(func(ip, _ []byte) error {
				if !live[string(netID)+"/"+string(ip)] {
					stale = append(stale, [2][]byte{slices.Clone(netID), slices.Clone(ip)})
				}
				return nil
			})
		})
		for _, k := range stale {
			if err := root.Bucket(k[0]).Delete(k[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return errdefs.System("reconcile addresses: %v", err)
	}
	dir := filepath.Join(m.cfg.ExecRoot, "netns")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if p := filepath.Join(dir, e.Name()); !paths[p] {
			removeNetNS(p)
		}
	}
	return nil
}

func (m *Manager) predefine() error {
	var bridge *Network
	for _, n := range m.networks {
		if n.Predefined && n.Name == "bridge" {
			bridge = n
		}
	}
	changed := bridge == nil
	if bridge == nil {
		bridge = &Network{ID: newID(), Name: "bridge", Driver: DriverBridge, Predefined: true, Created: time.Now().UTC(),
			Options: map[string]string{}, Labels: map[string]string{}}
	}
	if bridge.Bridge != m.cfg.Bridge {
		bridge.Bridge, changed = m.cfg.Bridge, true
	}
	if m.cfg.BIP != "" {
		p, err := netip.ParsePrefix(m.cfg.BIP)
		if err != nil || !p.Addr().Is4() {
			return errdefs.InvalidArgument("invalid --bip %q: want an IPv4 address with prefix, e.g. 10.1.2.1/24", m.cfg.BIP)
		}
		if bridge.Gateway != p.Addr() || bridge.Subnet != p.Masked() {
			bridge.Gateway, bridge.Subnet, changed = p.Addr(), p.Masked(), true
		}
	}
	if !bridge.Subnet.IsValid() {
		p, err := m.freeSubnet(bridge.Bridge)
		if err != nil {
			return err
		}
		bridge.Subnet, bridge.Gateway, changed = p, p.Addr().Next(), true
	}
	bridge.Options = map[string]string{
		"com.docker.network.bridge.default_bridge":       "true",
		"com.docker.network.bridge.enable_icc":           "true",
		"com.docker.network.bridge.enable_ip_masquerade": "true",
		"com.docker.network.bridge.host_binding_ipv4":    "0.0.0.0",
		"com.docker.network.bridge.name":                 bridge.Bridge,
		"com.docker.network.driver.mtu":                  "1500",
	}
	todo := []*Network{}
	if changed {
		todo = append(todo, bridge)
	}
	for _, name := range []string{"host", "none"} {
		if m.byName(name) == nil {
			drv := DriverHost
			if name == "none" {
				drv = DriverNull
			}
			todo = append(todo, &Network{ID: newID(), Name: name, Driver: drv, Predefined: true, Created: time.Now().UTC(),
				Options: map[string]string{}, Labels: map[string]string{}})
		}
	}
	if len(todo) == 0 {
		return nil
	}
	return m.db.Update(func(tx *bolt.Tx) error {
		for _, n := range todo {
			if err := putNetwork(tx, n); err != nil {
				return err
			}
			m.networks[n.ID] = n
		}
		return nil
	})
}

// candidate pools, Docker's order after its default 172.17.0.0/16.
func pools() []netip.Prefix {
	var out []netip.Prefix
	for i := 17; i <= 31; i++ {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(i), 0, 0}), 16))
	}
	for i := 0; i < 256; i += 16 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i), 0}), 20))
	}
	return out
}

// freeSubnet picks a pool no network of ours and no host route uses.
func (m *Manager) freeSubnet(bridge string) (netip.Prefix, error) {
next:
	for _, p := range pools() {
		for _, n := range m.networks {
			if n.Subnet.IsValid() && n.Subnet.Overlaps(p) {
				continue next
			}
		}
		if routeConflict(p, bridge) {
			continue
		}
		return p, nil
	}
	return netip.Prefix{}, errdefs.Unavailable("all predefined address pools have been fully subnetted")
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func putNetwork(tx *bolt.Tx, n *Network) error {
	data, err := json.Marshal(n)
	if err != nil {
		return err
	}
	return tx.Bucket(metadata.BucketNetworks).Put([]byte(n.ID), data)
}

func putAttachment(tx *bolt.Tx, a *Attachment) error {
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketEndpoints).Put([]byte(a.ContainerID), data)
}

func (m *Manager) byName(name string) *Network {
	for _, n := range m.networks {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// lookupLocked finds a network by full id, name, or unique id prefix.
func (m *Manager) lookupLocked(ref string) (*Network, error) {
	if n, ok := m.networks[ref]; ok {
		return n, nil
	}
	if n := m.byName(ref); n != nil {
		return n, nil
	}
	var found *Network
	for id, n := range m.networks {
		if ref != "" && strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, errdefs.InvalidArgument("network %s is ambiguous", ref)
			}
			found = n
		}
	}
	if found == nil {
		return nil, errdefs.NotFound("network %s not found", ref)
	}
	return found, nil
}

// Get returns a copy of the network ref names (id, name or id prefix).
func (m *Manager) Get(ref string) (Network, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookupLocked(ref)
	if err != nil {
		return Network{}, err
	}
	return *n, nil
}

// List returns every network, sorted by name.
func (m *Manager) List() []Network {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Network, 0, len(m.networks))
	for _, n := range m.networks {
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// CreateOptions is network create's request.
type CreateOptions struct {
	Name     string
	Driver   string // "" or bridge
	Subnet   netip.Prefix
	Gateway  netip.Addr
	Internal bool
	Labels   map[string]string
	Options  map[string]string
}

// Create makes a user-defined bridge network with its own Linux bridge.
func (m *Manager) Create(ctx context.Context, o CreateOptions) (Network, error) {
	if o.Name == "" {
		return Network{}, errdefs.InvalidArgument("network name is required")
	}
	if o.Driver == "" {
		o.Driver = DriverBridge
	}
	if o.Driver != DriverBridge {
		return Network{}, errdefs.InvalidArgument("network driver %q is not supported; only bridge", o.Driver)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byName(o.Name) != nil {
		if o.Name == "bridge" || o.Name == "host" || o.Name == "none" {
			return Network{}, errdefs.Forbidden("operation is not permitted on predefined %s network", o.Name)
		}
		return Network{}, errdefs.Conflict("network with name %s already exists", o.Name)
	}
	n := &Network{ID: newID(), Name: o.Name, Driver: DriverBridge, Internal: o.Internal, Created: time.Now().UTC(),
		Labels: o.Labels, Options: o.Options}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	if n.Options == nil {
		n.Options = map[string]string{}
	}
	n.Bridge = n.Options["com.docker.network.bridge.name"]
	if n.Bridge == "" {
		n.Bridge = "br-" + n.ID[:12]
	}
	if len(n.Bridge) > 15 {
		return Network{}, errdefs.InvalidArgument("bridge name %q is longer than 15 characters", n.Bridge)
	}
	for _, other := range m.networks {
		if other.Bridge == n.Bridge {
			return Network{}, errdefs.Conflict("bridge %s is already used by network %s", n.Bridge, other.Name)
		}
	}
	if o.Subnet.IsValid() {
		if !o.Subnet.Addr().Is4() {
			return Network{}, errdefs.InvalidArgument("subnet %s: only IPv4 is supported", o.Subnet)
		}
		n.Subnet = o.Subnet.Masked()
		if n.Subnet.Bits() > 30 {
			return Network{}, errdefs.InvalidArgument("subnet %s is too small", o.Subnet)
		}
		for _, other := range m.networks {
			if other.Subnet.IsValid() && other.Subnet.Overlaps(n.Subnet) {
				return Network{}, errdefs.Forbidden("Pool overlaps with other one on this address space")
			}
		}
	} else {
		if o.Gateway.IsValid() {
			return Network{}, errdefs.InvalidArgument("a gateway needs a subnet (--subnet)")
		}
		p, err := m.freeSubnet(n.Bridge)
		if err != nil {
			return Network{}, err
		}
		n.Subnet = p
	}
	n.Gateway = o.Gateway
	if !n.Gateway.IsValid() {
		n.Gateway = n.Subnet.Addr().Next()
	} else if !n.Subnet.Contains(n.Gateway) {
		return Network{}, errdefs.InvalidArgument("gateway %s is not in subnet %s", n.Gateway, n.Subnet)
	}
	if err := ensureBridge(n.Bridge, n.Gateway, n.Subnet, linkAlias(m.table)); err != nil {
		deleteLink(n.Bridge)
		return Network{}, err
	}
	if err := m.db.Update(func(tx *bolt.Tx) error { return putNetwork(tx, n) }); err != nil {
		deleteLink(n.Bridge)
		return Network{}, errdefs.System("save network %s: %v", n.Name, err)
	}
	m.networks[n.ID] = n
	if err := m.syncRules(); err != nil {
		return *n, err
	}
	return *n, nil
}

// Users lists the containers attached to network id: running (with an
// address) and all.
func (m *Manager) users(id string) (active, all []string) {
	for _, a := range m.atts {
		if e := a.Endpoint(id); e != nil {
			all = append(all, a.ContainerID)
			if e.IP.IsValid() {
				active = append(active, a.ContainerID)
			}
		}
	}
	return
}

// Remove deletes a user-defined network that no running container uses.
func (m *Manager) Remove(ctx context.Context, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookupLocked(ref)
	if err != nil {
		return err
	}
	if n.Predefined {
		return errdefs.Forbidden("%s is a pre-defined network and cannot be removed", n.Name)
	}
	if active, _ := m.users(n.ID); len(active) > 0 {
		return errdefs.Forbidden("error while removing network: network %s id %s has active endpoints", n.Name, n.ID)
	}
	return m.removeLocked(n)
}

func (m *Manager) removeLocked(n *Network) error {
	if err := deleteLink(n.Bridge); err != nil {
		return err
	}
	err := m.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(metadata.BucketNetworks).Delete([]byte(n.ID)); err != nil {
			return err
		}
		if tx.Bucket(bucketIPAM).Bucket([]byte(n.ID)) != nil {
			return tx.Bucket(bucketIPAM).DeleteBucket([]byte(n.ID))
		}
		return nil
	})
	if err != nil {
		return errdefs.System("remove network %s: %v", n.Name, err)
	}
	delete(m.networks, n.ID)
	return m.syncRules()
}

// Prune removes the user-defined networks no container refers to and
// that keep passes; it returns their names.
func (m *Manager) Prune(ctx context.Context, keep func(Network) bool) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, n := range m.networks {
		if n.Predefined || (keep != nil && keep(*n)) {
			continue
		}
		if _, all := m.users(n.ID); len(all) > 0 {
			continue
		}
		if err := m.removeLocked(n); err != nil {
			return out, err
		}
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out, nil
}

// Containers returns the attachments on network id (for inspect).
func (m *Manager) Containers(id string) []Attachment {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Attachment
	for _, a := range m.atts {
		if e := a.Endpoint(id); e != nil && e.IP.IsValid() {
			out = append(out, m.copyAtt(a))
		}
	}
	return out
}

func (m *Manager) copyAtt(a *Attachment) Attachment {
	c := *a
	c.Endpoints = nil
	for _, e := range a.Endpoints {
		ec := *e
		ec.Aliases = slices.Clone(e.Aliases)
		c.Endpoints = append(c.Endpoints, &ec)
	}
	c.Ports = slices.Clone(a.Ports)
	return c
}

// Attachment returns a copy of container id's networking.
func (m *Manager) Attachment(id string) (Attachment, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.atts[id]
	if !ok {
		return Attachment{}, false
	}
	return m.copyAtt(a), true
}

// Prepare records the networks container id joins (at create).
func (m *Manager) Prepare(ctx context.Context, id, name string, eps []EndpointConfig) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := &Attachment{ContainerID: id, Name: name}
	for _, ec := range eps {
		n, err := m.lookupLocked(ec.Network)
		if err != nil {
			return err
		}
		if err := checkEndpoint(n, ec); err != nil {
			return err
		}
		if a.Endpoint(n.ID) != nil {
			continue
		}
		a.Endpoints = append(a.Endpoints, &Endpoint{ID: newID(), NetworkID: n.ID, Aliases: ec.Aliases, Requested: ec.IP})
	}
	if err := m.db.Update(func(tx *bolt.Tx) error { return putAttachment(tx, a) }); err != nil {
		return errdefs.System("save endpoints of %s: %v", id, err)
	}
	m.atts[id] = a
	return nil
}

func checkEndpoint(n *Network, ec EndpointConfig) error {
	if n.Driver != DriverBridge {
		return errdefs.InvalidArgument("container cannot be connected to network %s with other networks", n.Name)
	}
	if n.Predefined && len(ec.Aliases) > 0 {
		return errdefs.InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
	}
	if ec.IP.IsValid() {
		if n.Predefined {
			return errdefs.InvalidArgument("user specified IP address is supported on user defined networks only")
		}
		if !n.Subnet.Contains(ec.IP) || ec.IP == n.Gateway {
			return errdefs.InvalidArgument("invalid IP address %s: not usable in subnet %s of network %s", ec.IP, n.Subnet, n.Name)
		}
	}
	return nil
}

// AttachOptions is what Attach needs besides the recorded endpoints.
type AttachOptions struct {
	Name     string
	Hostname string
	Ports    []PortRequest
	DNS      []string // upstream servers for the embedded DNS
}

// Attach creates container id's network namespace, plugs it into each of
// its networks, publishes its ports and starts its DNS server. It returns
// the namespace path for the runtime to join.
func (m *Manager) Attach(ctx context.Context, id string, o AttachOptions) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.atts[id]
	if !ok {
		return "", errdefs.NotFound("no network configuration for container %s", id)
	}
	if a.NSPath != "" {
		m.detachLocked(a)
	}
	a.Name, a.Hostname, a.DNS = o.Name, o.Hostname, o.DNS
	if len(o.Ports) > 0 && m.cfg.NoNAT {
		return "", errdefs.InvalidArgument("ports of %s cannot be published: berthd runs with --iptables=false", o.Name)
	}
	if len(o.Ports) > 0 && (len(a.Endpoints) == 0 || m.networks[a.Endpoints[0].NetworkID] == nil || m.networks[a.Endpoints[0].NetworkID].Internal) {
		return "", errdefs.InvalidArgument("ports of %s cannot be published: no external network", o.Name)
	}
	// A fresh path per start: the previous one may still be being torn down.
	suffix := make([]byte, 4)
	rand.Read(suffix)
	a.NSPath = filepath.Join(m.cfg.ExecRoot, "netns", id[:12]+"-"+hex.EncodeToString(suffix))
	t0 := time.Now()
	// The namespace is made while the addresses are committed (an fsync).
	nsErr := make(chan error, 1)
	go func(path string) { nsErr <- newNetNS(path) }(a.NSPath)
	nsDone := false
	fail := func(err error) (string, error) {
		if !nsDone {
			<-nsErr
		}
		m.detachLocked(a)
		return "", err
	}
	for _, r := range o.Ports {
		fd, pm, err := reserveRequest(r)
		if err != nil {
			return fail(fmt.Errorf("publish port %d/%s of %s: %w", r.ContainerPort, r.Proto, o.Name, err))
		}
		m.reserved[portKey(pm)] = fd
		a.Ports = append(a.Ports, pm)
	}
	// One transaction (one fsync) for the addresses and the record.
	t1 := time.Now()
	err := m.db.Update(func(tx *bolt.Tx) error {
		for i, e := range a.Endpoints {
			n, ok := m.networks[e.NetworkID]
			if !ok {
				return errdefs.NotFound("network %s not found", e.NetworkID)
			}
			ip, err := allocate(tx, n, id, e.Requested)
			if err != nil {
				return err
			}
			e.IP, e.MAC, e.IfName, e.HostIf = ip, macFor(ip).String(), fmt.Sprintf("eth%d", i), hostIfName()
		}
		for i := range a.Ports {
			a.Ports[i].ContainerIP = a.Endpoints[0].IP
		}
		return putAttachment(tx, a)
	})
	if err != nil {
		return fail(err)
	}
	t2 := time.Now()
	nsDone = true
	if err := <-nsErr; err != nil {
		return fail(err)
	}
	for i, e := range a.Endpoints {
		n := m.networks[e.NetworkID]
		var gw netip.Addr
		if i == 0 && !n.Internal {
			gw = n.Gateway
		}
		if err := plugVeth(a.NSPath, n.Bridge, e.HostIf, e.IfName, e.IP, n.Subnet.Bits(), gw); err != nil {
			return fail(fmt.Errorf("connect %s to network %s: %w", id[:12], n.Name, err))
		}
	}
	if len(a.Ports) > 0 {
		if err := m.syncRules(); err != nil {
			return fail(err)
		}
	}
	if err := m.startDNSLocked(a); err != nil {
		return fail(err)
	}
	slog.Debug("network attach steps", "id", id[:12], "ports", t1.Sub(t0), "ipam", t2.Sub(t1), "links", time.Since(t2))
	return a.NSPath, nil
}

// hostIfName is a fresh name for the host end of a veth pair: never the
// name of one still being torn down.
func hostIfName() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "vb" + hex.EncodeToString(b)
}

func (m *Manager) needsDNS(a *Attachment) bool {
	for _, e := range a.Endpoints {
		if n, ok := m.networks[e.NetworkID]; ok && n.UserDefined() && e.IP.IsValid() {
			return true
		}
	}
	return false
}

func (m *Manager) startDNSLocked(a *Attachment) error {
	if _, ok := m.dns[a.ContainerID]; ok || a.NSPath == "" || !m.needsDNS(a) {
		return nil
	}
	s, err := startDNS(a.NSPath, resolver{m: m, id: a.ContainerID})
	if err != nil {
		return errdefs.System("embedded DNS for %s: %v", a.ContainerID[:12], err)
	}
	m.dns[a.ContainerID] = s
	return nil
}

// allocate takes an address of n for container id: the requested one, or
// the lowest free one. Addresses in use are never handed out twice.
func allocate(tx *bolt.Tx, n *Network, id string, want netip.Addr) (netip.Addr, error) {
	b, err := tx.Bucket(bucketIPAM).CreateBucketIfNotExists([]byte(n.ID))
	if err != nil {
		return netip.Addr{}, err
	}
	if want.IsValid() {
		if owner := b.Get([]byte(want.String())); owner != nil && string(owner) != id {
			return netip.Addr{}, errdefs.Conflict("Address already in use: %s on network %s", want, n.Name)
		}
		return want, b.Put([]byte(want.String()), []byte(id))
	}
	last := lastAddr(n.Subnet)
	for ip := n.Subnet.Addr().Next(); ip.IsValid() && ip.Less(last); ip = ip.Next() {
		if ip == n.Gateway {
			continue
		}
		if b.Get([]byte(ip.String())) == nil {
			return ip, b.Put([]byte(ip.String()), []byte(id))
		}
	}
	return netip.Addr{}, errdefs.Unavailable("no available IPv4 addresses on network %s", n.Name)
}

// lastAddr is the subnet's broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= ^uint32(0) >> p.Bits()
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func release(tx *bolt.Tx, netID string, ip netip.Addr, id string) error {
	b := tx.Bucket(bucketIPAM).Bucket([]byte(netID))
	if b == nil || !ip.IsValid() {
		return nil
	}
	if owner := b.Get([]byte(ip.String())); owner != nil && string(owner) == id {
		return b.Delete([]byte(ip.String()))
	}
	return nil
}

// Detach undoes Attach; it is idempotent.
func (m *Manager) Detach(ctx context.Context, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.atts[id]; ok {
		m.detachLocked(a)
	}
}

func (m *Manager) detachLocked(a *Attachment) {
	if s, ok := m.dns[a.ContainerID]; ok {
		go s.stop() // not under m.mu: a query in flight may be waiting for it
		delete(m.dns, a.ContainerID)
	}
	for _, p := range a.Ports {
		if fd, ok := m.reserved[portKey(p)]; ok {
			unix.Close(fd)
			delete(m.reserved, portKey(p))
		}
	}
	hadPorts := len(a.Ports) > 0
	a.Ports = nil
	type plug struct {
		netID, hostIf, ifName string
		ip                    netip.Addr
	}
	var plugs []plug
	for _, e := range a.Endpoints {
		if e.IP.IsValid() || e.HostIf != "" {
			plugs = append(plugs, plug{e.NetworkID, e.HostIf, e.IfName, e.IP})
		}
		e.IP, e.MAC, e.IfName, e.HostIf = netip.Addr{}, "", "", ""
	}
	nsPath, id := a.NSPath, a.ContainerID
	a.NSPath = ""
	if err := m.db.Update(func(tx *bolt.Tx) error { return putAttachment(tx, a) }); err != nil {
		slog.Warn("save endpoints", "container", id, "error", err)
	}
	if hadPorts {
		if err := m.syncRules(); err != nil {
			slog.Warn("remove port rules", "container", id, "error", err)
		}
	}
	// Deleting a veth waits for the kernel's RCU grace periods (tens of ms
	// under load): do it off the caller's path. The addresses stay taken
	// until their interfaces are gone, so none is handed out twice.
	m.teardown.Add(1)
	go func() {
		defer m.teardown.Done()
		for _, p := range plugs {
			if p.hostIf != "" {
				unplugVeth(nsPath, p.hostIf, p.ifName)
			}
		}
		removeNetNS(nsPath)
		m.mu.Lock()
		defer m.mu.Unlock()
		err := m.db.Update(func(tx *bolt.Tx) error {
			for _, p := range plugs {
				if err := release(tx, p.netID, p.ip, id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			slog.Warn("release addresses", "container", id, "error", err)
		}
	}()
}

// settle waits for background teardowns.
func (m *Manager) settle() { m.teardown.Wait() }

// Release forgets container id's networking (at removal).
func (m *Manager) Release(ctx context.Context, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.atts[id]
	if !ok {
		return
	}
	m.detachLocked(a)
	delete(m.atts, id)
	if err := m.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketEndpoints).Delete([]byte(id)) }); err != nil {
		slog.Warn("forget endpoints", "container", id, "error", err)
	}
}

// Connect adds network ec.Network to container id; if the container runs
// (its namespace exists) the new interface is plugged at once.
func (m *Manager) Connect(ctx context.Context, id, name string, ec EndpointConfig) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookupLocked(ec.Network)
	if err != nil {
		return err
	}
	a, ok := m.atts[id]
	if !ok {
		a = &Attachment{ContainerID: id, Name: name}
		m.atts[id] = a
	}
	if err := checkEndpoint(n, ec); err != nil {
		return err
	}
	if a.Endpoint(n.ID) != nil {
		return errdefs.Forbidden("endpoint with name %s already exists in network %s", name, n.Name)
	}
	e := &Endpoint{ID: newID(), NetworkID: n.ID, Aliases: ec.Aliases, Requested: ec.IP}
	a.Endpoints = append(a.Endpoints, e)
	undo := func(err error) error {
		a.Endpoints = a.Endpoints[:len(a.Endpoints)-1]
		return err
	}
	if a.NSPath != "" {
		err := m.db.Update(func(tx *bolt.Tx) error {
			ip, err := allocate(tx, n, id, e.Requested)
			e.IP = ip
			return err
		})
		if err != nil {
			return undo(err)
		}
		idx := len(a.Endpoints) - 1
		e.MAC, e.IfName, e.HostIf = macFor(e.IP).String(), fmt.Sprintf("eth%d", idx), hostIfName()
		var gw netip.Addr
		if idx == 0 && !n.Internal {
			gw = n.Gateway
		}
		if err := plugVeth(a.NSPath, n.Bridge, e.HostIf, e.IfName, e.IP, n.Subnet.Bits(), gw); err != nil {
			m.db.Update(func(tx *bolt.Tx) error { return release(tx, n.ID, e.IP, id) })
			return undo(err)
		}
	}
	if err := m.db.Update(func(tx *bolt.Tx) error { return putAttachment(tx, a) }); err != nil {
		return errdefs.System("save endpoints of %s: %v", id, err)
	}
	return m.startDNSLocked(a)
}

// Disconnect removes container id from network ref.
func (m *Manager) Disconnect(ctx context.Context, id, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookupLocked(ref)
	if err != nil {
		return err
	}
	a, ok := m.atts[id]
	var e *Endpoint
	if ok {
		e = a.Endpoint(n.ID)
	}
	if e == nil {
		return errdefs.Forbidden("container %s is not connected to network %s", id[:12], n.Name)
	}
	if e.HostIf != "" {
		unplugVeth(a.NSPath, e.HostIf, e.IfName)
	}
	a.Endpoints = slices.DeleteFunc(a.Endpoints, func(x *Endpoint) bool { return x == e })
	err = m.db.Update(func(tx *bolt.Tx) error {
		if err := release(tx, n.ID, e.IP, id); err != nil {
			return err
		}
		return putAttachment(tx, a)
	})
	if err != nil {
		return errdefs.System("disconnect %s from %s: %v", id[:12], n.Name, err)
	}
	if s, ok := m.dns[id]; ok && !m.needsDNS(a) {
		go s.stop() // not under m.mu: a query in flight may be waiting for it
		delete(m.dns, id)
	}
	return nil
}

// Adopt takes over what a previous daemon left: running containers keep
// their namespaces, addresses and rules and get their port reservations
// and DNS servers back; stopped ones are detached; records of containers
// that no longer exist (a create that failed half-way) are dropped.
func (m *Manager) Adopt(ctx context.Context, state func(id string) (exists, running bool)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, a := range m.atts {
		exists, running := state(id)
		if !exists || !running {
			if a.NSPath != "" {
				m.detachLocked(a)
			}
			if !exists {
				delete(m.atts, id)
				if err := m.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketEndpoints).Delete([]byte(id)) }); err != nil {
					slog.Warn("forget endpoints", "container", id, "error", err)
				}
			}
			continue
		}
		if a.NSPath == "" {
			continue
		}
		for _, p := range a.Ports {
			if _, ok := m.reserved[portKey(p)]; ok {
				continue
			}
			if fd, _, err := reserve(p.Proto, p.HostIP, p.HostPort); err == nil {
				m.reserved[portKey(p)] = fd
			}
		}
		if err := m.startDNSLocked(a); err != nil {
			slog.Warn("restart embedded DNS", "container", id, "error", err)
		}
	}
}

// Close stops the DNS servers and lets the port reservations go; the
// kernel state stays for the next daemon.
func (m *Manager) Close() {
	m.settle()
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, s := range m.dns {
		go s.stop() // not under m.mu: a query in flight may be waiting for it
		delete(m.dns, id)
	}
	for k, fd := range m.reserved {
		unix.Close(fd)
		delete(m.reserved, k)
	}
}

// lookup resolves name for the container asking: the addresses of
// containers sharing a user-defined network with it whose name, short id or
// alias there is name; also the asker's upstream servers.
func (m *Manager) lookup(asker, name string) ([]netip.Addr, []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.atts[asker]
	if !ok {
		return nil, nil
	}
	upstream := a.DNS
	if name == "" {
		return nil, upstream
	}
	var out []netip.Addr
	for _, mine := range a.Endpoints {
		n, ok := m.networks[mine.NetworkID]
		if !ok || !n.UserDefined() {
			continue
		}
		for _, other := range m.atts {
			e := other.Endpoint(n.ID)
			if e == nil || !e.IP.IsValid() {
				continue
			}
			if strings.EqualFold(other.Name, name) || other.ContainerID[:12] == name ||
				slices.ContainsFunc(e.Aliases, func(s string) bool { return strings.EqualFold(s, name) }) {
				if !slices.Contains(out, e.IP) {
					out = append(out, e.IP)
				}
			}
		}
	}
	return out, upstream
}

func (m *Manager) syncRules() error {
	if m.cfg.NoNAT {
		return nil
	}
	rs := ruleset{table: m.table}
	for _, n := range m.networks {
		rs.networks = append(rs.networks, n)
	}
	sort.Slice(rs.networks, func(i, j int) bool { return rs.networks[i].ID < rs.networks[j].ID })
	for _, a := range m.atts {
		rs.ports = append(rs.ports, a.Ports...)
	}
	return rs.apply()
}

// Teardown removes what a daemon whose default bridge is bridge left in
// the kernel: its nftables table and every bridge it made. For tests and
// uninstalls; containers must be gone first.
func Teardown(bridge string) error {
	table := TableName(bridge)
	err := deleteTable(table)
	names := bridgesWithAlias(linkAlias(table))
	if !slices.Contains(names, bridge) {
		names = append(names, bridge)
	}
	for _, name := range names {
		deletePorts(name)
	}
	for _, name := range names {
		if derr := deleteLink(name); derr != nil && err == nil {
			err = derr
		}
	}
	return err
}
