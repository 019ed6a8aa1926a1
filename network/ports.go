package network

import (
	"fmt"
	"net/netip"

	"github.com/berth-dev/berth/errdefs"
	"golang.org/x/sys/unix"
)

// portKey names a host port: proto/ip:port.
func portKey(p PortMapping) string {
	return fmt.Sprintf("%s/%s:%d", p.Proto, p.HostIP, p.HostPort)
}

// reserve binds (without listening) a socket on ip:port so that neither a
// host process nor another container takes a published port. port 0 picks
// a free one; the port bound is returned.
func reserve(proto string, ip netip.Addr, port uint16) (int, uint16, error) {
	typ := unix.SOCK_STREAM
	if proto == "udp" {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, errdefs.System("socket for port %d/%s: %v", port, proto, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: ip.As4(), Port: int(port)}); err != nil {
		unix.Close(fd)
		if port == 0 {
			return -1, 0, errdefs.Conflict("no free host port for %s/%s: %v", ip, proto, err)
		}
		return -1, 0, errdefs.Conflict("Bind for %s:%d failed: port is already allocated", ip, port)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, errdefs.System("socket name for port %d/%s: %v", port, proto, err)
	}
	return fd, uint16(sa.(*unix.SockaddrInet4).Port), nil
}

// reserveRequest reserves a host port for r: the first free one of its
// range, or any free one.
func reserveRequest(r PortRequest) (int, PortMapping, error) {
	ip := r.HostIP
	if !ip.IsValid() {
		ip = netip.IPv4Unspecified()
	}
	if !ip.Is4() {
		return -1, PortMapping{}, errdefs.InvalidArgument("host IP %s: only IPv4 is supported", ip)
	}
	m := PortMapping{Proto: r.Proto, HostIP: ip, ContainerPort: r.ContainerPort}
	if m.Proto == "" {
		m.Proto = "tcp"
	}
	if r.HostPortMin == 0 {
		fd, port, err := reserve(m.Proto, ip, 0)
		m.HostPort = port
		return fd, m, err
	}
	max := r.HostPortMax
	if max < r.HostPortMin {
		max = r.HostPortMin
	}
	var lastErr error
	for p := int(r.HostPortMin); p <= int(max); p++ {
		fd, port, err := reserve(m.Proto, ip, uint16(p))
		if err == nil {
			m.HostPort = port
			return fd, m, nil
		}
		lastErr = err
	}
	if r.HostPortMax > r.HostPortMin {
		return -1, m, errdefs.Conflict("Bind for %s:%d-%d failed: all ports of the range are allocated", ip, r.HostPortMin, r.HostPortMax)
	}
	return -1, m, lastErr
}

func closeFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}
