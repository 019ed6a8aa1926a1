package network

import (
	"encoding/binary"
	"net/netip"

	"github.com/berth-dev/berth/errdefs"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// ruleset is everything Berth's table holds, recomputed from the networks
// and the live port mappings and replaced in one atomic batch, so the
// kernel never sees a half-written table and a new daemon adopts it as is.
type ruleset struct {
	table    string
	networks []*Network
	ports    []PortMapping
}

func ifname(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}

func matchIf(key expr.MetaKey, name string, op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: ifname(name)},
	}
}

// matchPrefix matches the IPv4 source (offset 12) or destination (16).
func matchPrefix(offset uint32, p netip.Prefix) []expr.Any {
	mask := make([]byte, 4)
	binary.BigEndian.PutUint32(mask, ^uint32(0)<<(32-p.Bits()))
	addr := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr[:]},
	}
}

func matchAddr(offset uint32, a netip.Addr) []expr.Any {
	b := a.As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b[:]},
	}
}

// matchLocal is "fib saddr|daddr type local".
func matchLocal(daddr bool) []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: daddr, FlagSADDR: !daddr, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

func protoNum(proto string) byte {
	if proto == "udp" {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

func matchPort(proto string, port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNum(proto)}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

func dnat(to netip.Addr, port uint16) []expr.Any {
	b := to.As4()
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: b[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var (
	verdictAccept = []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
	verdictDrop   = []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
	masquerade    = []expr.Any{&expr.Masq{}}
)

// established matches "ct state established,related".
func established() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

// ipsDstNAT is the conntrack status bit IPS_DST_NAT.
const ipsDstNAT = 1 << 5

// dnatted matches "ct status dnat".
func dnatted() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

// apply replaces the table's content atomically.
func (rs ruleset) apply() error {
	conn, err := nftables.New()
	if err != nil {
		return errdefs.System("nftables: %v", err)
	}
	t := conn.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: rs.table})
	conn.FlushTable(t)
	accept := nftables.ChainPolicyAccept
	pre := conn.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	out := conn.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	post := conn.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	fwd := conn.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	add := func(c *nftables.Chain, e []expr.Any) {
		conn.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: e})
	}
	var bridges []*Network
	for _, n := range rs.networks {
		if n.Driver == "bridge" && n.Bridge != "" && n.Subnet.IsValid() {
			bridges = append(bridges, n)
		}
	}
	add(fwd, cat(established(), verdictAccept))
	for _, n := range bridges {
		// Inside one network everything goes (bridged traffic crosses this
		// hook when br_netfilter is loaded).
		add(fwd, cat(matchIf(expr.MetaKeyIIFNAME, n.Bridge, expr.CmpOpEq), matchIf(expr.MetaKeyOIFNAME, n.Bridge, expr.CmpOpEq), verdictAccept))
		for _, o := range bridges {
			if o != n {
				add(fwd, cat(matchIf(expr.MetaKeyIIFNAME, n.Bridge, expr.CmpOpEq), matchIf(expr.MetaKeyOIFNAME, o.Bridge, expr.CmpOpEq), verdictDrop))
			}
		}
		if n.Internal {
			add(fwd, cat(matchIf(expr.MetaKeyIIFNAME, n.Bridge, expr.CmpOpEq), verdictDrop))
			add(fwd, cat(matchIf(expr.MetaKeyOIFNAME, n.Bridge, expr.CmpOpEq), verdictDrop))
			continue
		}
		// Outbound: masquerade what leaves through another interface.
		add(post, cat(matchPrefix(12, n.Subnet), matchIf(expr.MetaKeyOIFNAME, n.Bridge, expr.CmpOpNeq), masquerade))
		// Published ports reached on 127.0.0.1 (route_localnet) need a
		// source the container can answer.
		add(post, cat(matchPrefix(12, netip.MustParsePrefix("127.0.0.0/8")), matchIf(expr.MetaKeyOIFNAME, n.Bridge, expr.CmpOpEq), masquerade))
		// A container reaching a published port of its own network through a
		// host address: DNATed back into the bridge, the answer must come
		// back through the host, so hide the source (hairpin NAT). Direct
		// container-to-container traffic is not DNATed and keeps its source.
		add(post, cat(dnatted(), matchIf(expr.MetaKeyIIFNAME, n.Bridge, expr.CmpOpEq), matchIf(expr.MetaKeyOIFNAME, n.Bridge, expr.CmpOpEq), masquerade))
	}
	for _, p := range rs.ports {
		var dst []expr.Any
		if p.HostIP.IsUnspecified() || !p.HostIP.IsValid() {
			dst = matchLocal(true)
		} else {
			dst = matchAddr(16, p.HostIP)
		}
		rule := cat(dst, matchPort(p.Proto, p.HostPort), dnat(p.ContainerIP, p.ContainerPort))
		add(pre, rule)
		add(out, rule)
		// A container reaching its own published port: bridged back into
		// its own port (hairpin), so match by addresses, as Docker does.
		add(post, cat(matchAddr(12, p.ContainerIP), matchAddr(16, p.ContainerIP), matchPort(p.Proto, p.ContainerPort), masquerade))
	}
	if err := conn.Flush(); err != nil {
		return errdefs.System("write nftables table %s: %v", rs.table, err)
	}
	return nil
}

// deleteTable removes Berth's table; a missing table is not an error.
func deleteTable(name string) error {
	conn, err := nftables.New()
	if err != nil {
		return errdefs.System("nftables: %v", err)
	}
	if _, err := conn.ListTableOfFamily(name, nftables.TableFamilyIPv4); err != nil {
		return nil
	}
	conn.DelTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: name})
	if err := conn.Flush(); err != nil {
		return errdefs.System("delete nftables table %s: %v", name, err)
	}
	return nil
}
