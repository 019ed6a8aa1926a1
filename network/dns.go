package network

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DNSAddr is where the embedded DNS server listens inside containers on
// user-defined networks (Docker's address).
const DNSAddr = "127.0.0.11"

type dnsServer struct{ udp, tcp *dns.Server }

// startDNS opens the server's sockets inside the namespace at nsPath and
// serves them from the daemon, so queries reach h with no rule in the
// container.
func startDNS(nsPath string, h dns.Handler) (*dnsServer, error) {
	var pc net.PacketConn
	var ln net.Listener
	err := inNetNS(nsPath, func() error {
		var err error
		if pc, err = net.ListenPacket("udp4", DNSAddr+":53"); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp4", DNSAddr+":53"); err != nil {
			pc.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s := &dnsServer{udp: &dns.Server{PacketConn: pc, Handler: h}, tcp: &dns.Server{Listener: ln, Handler: h}}
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	return s, nil
}

func (s *dnsServer) stop() {
	s.udp.Shutdown()
	s.tcp.Shutdown()
}

// resolver answers one container's queries: names of containers sharing a
// user network with it, everything else from the upstream servers.
type resolver struct {
	m  *Manager
	id string
}

func (r resolver) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	if len(q.Question) != 1 {
		r.forward(w, q)
		return
	}
	qq := q.Question[0]
	name := strings.ToLower(strings.TrimSuffix(qq.Name, "."))
	ips, upstream := r.m.lookup(r.id, name)
	if len(ips) == 0 {
		r.forwardTo(w, q, upstream)
		return
	}
	resp := new(dns.Msg)
	resp.SetReply(q)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	if qq.Qtype == dns.TypeA || qq.Qtype == dns.TypeANY {
		for _, ip := range ips {
			resp.Answer = append(resp.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 600},
				A:   ip.AsSlice(),
			})
		}
	}
	w.WriteMsg(resp)
}

func (r resolver) forward(w dns.ResponseWriter, q *dns.Msg) {
	_, upstream := r.m.lookup(r.id, "")
	r.forwardTo(w, q, upstream)
}

// forwardTo asks the upstream servers from the daemon's own namespace, so
// the host's loopback resolvers work too.
func (r resolver) forwardTo(w dns.ResponseWriter, q *dns.Msg, upstream []string) {
	if len(upstream) == 0 {
		upstream = hostNameservers()
	}
	network := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	for _, s := range upstream {
		resp, _, err := c.Exchange(q, net.JoinHostPort(s, "53"))
		if err == nil {
			w.WriteMsg(resp)
			return
		}
	}
	fail := new(dns.Msg)
	fail.SetRcode(q, dns.RcodeServerFailure)
	w.WriteMsg(fail)
}

func hostNameservers() []string {
	data, _ := os.ReadFile("/etc/resolv.conf")
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if _, err := netip.ParseAddr(f[1]); err == nil {
				out = append(out, f[1])
			}
		}
	}
	return out
}
