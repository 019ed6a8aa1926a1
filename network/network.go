package network

import (
	"net/netip"
	"time"
)

// Drivers Berth knows.
const (
	DriverBridge = "bridge"
	DriverHost   = "host"
	DriverNull   = "null"
)

// Network is one network's persisted record.
type Network struct {
	ID         string
	Name       string
	Driver     string
	Bridge     string       // Linux bridge device (bridge driver only)
	Subnet     netip.Prefix // zero for host and none
	Gateway    netip.Addr   // the bridge's own address
	Internal   bool
	Labels     map[string]string
	Options    map[string]string
	Created    time.Time
	Predefined bool // bridge, host, none: cannot be removed
}

// UserDefined reports whether containers on n get the embedded DNS.
func (n *Network) UserDefined() bool { return !n.Predefined }

// EndpointConfig is what a container asks of one network.
type EndpointConfig struct {
	Network string // id or name
	Aliases []string
	IP      netip.Addr // requested address (user networks only); zero = any
}

// Endpoint is a container's presence on one network.
type Endpoint struct {
	ID        string
	NetworkID string
	Aliases   []string
	Requested netip.Addr
	// Set while the container runs:
	IP     netip.Addr
	MAC    string
	IfName string // inside the container: eth0, eth1, ...
	HostIf string // the host side of the veth pair
}

// PortMapping is one published port.
type PortMapping struct {
	Proto         string     // tcp or udp
	HostIP        netip.Addr // 0.0.0.0 = every local address
	HostPort      uint16
	ContainerIP   netip.Addr
	ContainerPort uint16
}

// PortRequest is one -p binding (or one -P exposed port).
type PortRequest struct {
	Proto         string
	HostIP        netip.Addr // zero or 0.0.0.0 = every local address
	HostPortMin   uint16     // 0 = any free port
	HostPortMax   uint16
	ContainerPort uint16
}

// Attachment is a container's networking: the networks it joins and,
// while it runs, its namespace, addresses and published ports.
type Attachment struct {
	ContainerID string
	Name        string // container name without '/', for DNS
	Hostname    string
	Endpoints   []*Endpoint // in join order; the first holds the default route
	NSPath      string      // set while running
	Ports       []PortMapping
	DNS         []string // upstream servers for the embedded DNS (--dns)
}

// Endpoint returns a's endpoint on network id, or nil.
func (a *Attachment) Endpoint(netID string) *Endpoint {
	for _, e := range a.Endpoints {
		if e.NetworkID == netID {
			return e
		}
	}
	return nil
}
