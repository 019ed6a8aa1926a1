package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"

	"github.com/berth-dev/berth/errdefs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// linkAlias marks the bridges one daemon made, so cleanup finds them.
func linkAlias(table string) string { return "berth:" + table }

// ensureBridge creates (or adopts) bridge name with gateway gw on subnet.
func ensureBridge(name string, gw netip.Addr, subnet netip.Prefix, alias string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return errdefs.System("look up bridge %s: %v", name, err)
		}
		la := netlink.NewLinkAttrs()
		la.Name = name
		br := &netlink.Bridge{LinkAttrs: la}
		if err := netlink.LinkAdd(br); err != nil {
			return errdefs.System("create bridge %s: %v", name, err)
		}
		if link, err = netlink.LinkByName(name); err != nil {
			return errdefs.System("look up bridge %s: %v", name, err)
		}
	} else if link.Type() != "bridge" {
		return errdefs.Conflict("interface %s exists and is not a bridge", name)
	}
	if alias != "" && link.Attrs().Alias != alias {
		_ = netlink.LinkSetAlias(link, alias)
	}
	want := &netlink.Addr{IPNet: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(subnet.Bits(), 32)}}
	addrs, _ := netlink.AddrList(link, netlink.FAMILY_V4)
	have := false
	for _, a := range addrs {
		if a.IP.Equal(want.IP) {
			have = true
		}
	}
	if !have {
		if err := netlink.AddrAdd(link, want); err != nil {
			return errdefs.System("address %s on bridge %s: %v", gw, name, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return errdefs.System("bring up bridge %s: %v", name, err)
	}
	// 127.0.0.1:port -> container (DNAT in output) must be routable here.
	_ = os.WriteFile(filepath.Join("/proc/sys/net/ipv4/conf", name, "route_localnet"), []byte("1"), 0o644)
	return nil
}

func deleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil
	}
	if err := netlink.LinkDel(link); err != nil {
		return errdefs.System("delete interface %s: %v", name, err)
	}
	return nil
}

// newNetNS creates a network namespace kept alive by a bind mount at path,
// with loopback up.
func newNetNS(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return errdefs.System("create netns directory: %v", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		if os.IsExist(err) {
			unix.Unmount(path, unix.MNT_DETACH)
			if f, err = os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o444); err != nil {
				return errdefs.System("create netns file %s: %v", path, err)
			}
		} else {
			return errdefs.System("create netns file %s: %v", path, err)
		}
	}
	f.Close()
	errc := make(chan error, 1)
	// A fresh thread: it leaves the host namespace and is thrown away
	// afterwards (never unlocked), so no goroutine runs in the wrong one.
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind network namespace to %s: %w", path, err)
			return
		}
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		// No IPv6 on the interfaces to come (Berth's networks are IPv4):
		// spares the kernel address configuration and DAD on every start.
		// /proc/sys/net follows the opening thread's namespace.
		_ = os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0o644)
		errc <- err
	}()
	if err := <-errc; err != nil {
		unix.Unmount(path, unix.MNT_DETACH)
		os.Remove(path)
		return errdefs.System("network namespace %s: %v", path, err)
	}
	return nil
}

func removeNetNS(path string) {
	if path == "" {
		return
	}
	unix.Unmount(path, unix.MNT_DETACH)
	os.Remove(path)
}

// inNetNS runs fn on a thread inside the namespace at path.
func inNetNS(path string, fn func() error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		errc <- fn()
		// the thread is not unlocked: it dies with the goroutine
	}()
	return <-errc
}

// macFor is Docker's scheme: 02:42 followed by the IPv4 address.
func macFor(ip netip.Addr) net.HardwareAddr {
	b := ip.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// plugVeth creates a veth pair, puts one end on bridge and the other in
// the namespace as ifName with ip/prefix, and, if gw is valid, a default
// route through it.
func plugVeth(nsPath, bridge, hostIf, ifName string, ip netip.Addr, bits int, gw netip.Addr) error {
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return errdefs.System("bridge %s: %v", bridge, err)
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return errdefs.System("open network namespace %s: %v", nsPath, err)
	}
	defer ns.Close()
	// Created straight inside the namespace: the name only has to be free there.
	peer := ifName
	la := netlink.NewLinkAttrs()
	la.Name = hostIf
	la.MasterIndex = br.Attrs().Index
	la.MTU = br.Attrs().MTU
	veth := &netlink.Veth{LinkAttrs: la, PeerName: peer, PeerHardwareAddr: macFor(ip), PeerNamespace: netlink.NsFd(int(ns))}
	if err := netlink.LinkAdd(veth); err != nil {
		return errdefs.System("create veth %s: %v", hostIf, err)
	}
	fail := func(err error) error {
		deleteLink(hostIf)
		return err
	}
	host, err := netlink.LinkByName(hostIf)
	if err != nil {
		return fail(errdefs.System("veth %s: %v", hostIf, err))
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fail(errdefs.System("bring up %s: %v", hostIf, err))
	}
	// A container reaching its own published port through the host comes
	// back in the port it left by (Docker sets the same without its proxy).
	_ = netlink.LinkSetHairpin(host, true)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fail(errdefs.System("netlink in %s: %v", nsPath, err))
	}
	defer h.Close()
	in, err := h.LinkByName(peer)
	if err != nil {
		return fail(errdefs.System("veth peer %s: %v", peer, err))
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(bits, 32)}}
	if err := h.AddrAdd(in, addr); err != nil {
		return fail(errdefs.System("address %s on %s: %v", ip, ifName, err))
	}
	if err := h.LinkSetUp(in); err != nil {
		return fail(errdefs.System("bring up %s: %v", ifName, err))
	}
	if gw.IsValid() {
		r := &netlink.Route{LinkIndex: in.Attrs().Index, Gw: gw.AsSlice()}
		if err := h.RouteAdd(r); err != nil {
			return fail(errdefs.System("default route via %s: %v", gw, err))
		}
	}
	return nil
}

// unplugVeth removes the container's interface ifName (its host peer goes
// with it).
func unplugVeth(nsPath, hostIf, ifName string) {
	if deleteLink(hostIf) == nil {
		return
	}
	if ns, err := netns.GetFromPath(nsPath); err == nil {
		if h, err := netlink.NewHandleAt(ns); err == nil {
			if l, err := h.LinkByName(ifName); err == nil {
				h.LinkDel(l)
			}
			h.Close()
		}
		ns.Close()
	}
}

// routeConflict reports an existing host route overlapping p (other than
// on the bridge itself).
func routeConflict(p netip.Prefix, bridge string) bool {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil && l.Attrs().Name == bridge {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		a, ok := netip.AddrFromSlice(r.Dst.IP.To4())
		if !ok || ones == 0 {
			continue // the default route overlaps everything
		}
		if netip.PrefixFrom(a, ones).Overlaps(p) {
			return true
		}
	}
	return false
}

func bridgesWithAlias(alias string) []string {
	links, err := netlink.LinkList()
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range links {
		if l.Attrs().Alias == alias {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// deletePorts removes the veths plugged into bridge.
func deletePorts(bridge string) {
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return
	}
	links, _ := netlink.LinkList()
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			netlink.LinkDel(l)
		}
	}
}

// UsedPrefixes lists the IPv4 prefixes of the host's routes.
func UsedPrefixes() []netip.Prefix {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		if a, ok := netip.AddrFromSlice(r.Dst.IP.To4()); ok && ones > 0 {
			out = append(out, netip.PrefixFrom(a, ones))
		}
	}
	return out
}
