package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"testing"

	"github.com/berth-dev/berth/errdefs"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// TestManagerKernel drives the real kernel: bridge, netns, veth, nftables.
func TestManagerKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	b := make([]byte, 3)
	rand.Read(b)
	bridge := "btu" + hex.EncodeToString(b)
	var bip, user netip.Prefix
	for i := 0; i < 200 && !user.IsValid(); i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 251, byte(i), 0}), 24)
		if routeConflict(p, "") {
			continue
		}
		if !bip.IsValid() {
			bip = p
		} else {
			user = p
		}
	}
	t.Cleanup(func() {
		if err := Teardown(bridge); err != nil {
			t.Error(err)
		}
		if _, err := netlink.LinkByName(bridge); err == nil {
			t.Errorf("bridge %s left", bridge)
		}
	})
	ctx := context.Background()
	m, err := New(ctx, testDB(t), Config{ExecRoot: t.TempDir(), Bridge: bridge, BIP: bip.Addr().Next().String() + "/24"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Create(ctx, CreateOptions{Name: "bridge"}); !errors.Is(err, errdefs.ErrForbidden) {
		t.Fatalf("create bridge: %v", err)
	}
	n, err := m.Create(ctx, CreateOptions{Name: "u1", Subnet: user})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, CreateOptions{Name: "u1"}); !errdefs.IsConflict(err) {
		t.Fatalf("duplicate name: %v", err)
	}
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if err := m.Prepare(ctx, id, "c1", []EndpointConfig{{Network: "bridge"}, {Network: "u1", Aliases: []string{"a1"}}}); err != nil {
		t.Fatal(err)
	}
	ns, err := m.Attach(ctx, id, AttachOptions{Name: "c1", Ports: []PortRequest{{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), ContainerPort: 80}}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := m.Attachment(id)
	if len(a.Endpoints) != 2 || !bip.Contains(a.Endpoints[0].IP) || !user.Contains(a.Endpoints[1].IP) || len(a.Ports) != 1 {
		t.Fatalf("attachment %+v", a)
	}
	for _, e := range a.Endpoints {
		if _, err := netlink.LinkByName(e.HostIf); err != nil {
			t.Fatalf("veth %s: %v", e.HostIf, err)
		}
	}
	if err := inNetNS(ns, func() error {
		_, err := netlink.LinkByName("eth1")
		return err
	}); err != nil {
		t.Fatalf("eth1 in the container: %v", err)
	}
	if ips, _ := m.lookup(id, "a1"); len(ips) != 1 {
		t.Fatalf("own alias: %v", ips)
	}
	if err := m.Remove(ctx, "u1"); !errors.Is(err, errdefs.ErrForbidden) {
		t.Fatalf("remove in use: %v", err)
	}
	conn, _ := nftables.New()
	tbl := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName(bridge)}
	rules, err := conn.GetRules(tbl, &nftables.Chain{Name: "output", Table: tbl})
	if err != nil || len(rules) != 1 {
		t.Fatalf("output DNAT rules: %d %v", len(rules), err)
	}
	m.Detach(ctx, id)
	m.Detach(ctx, id) // idempotent
	m.settle()
	for _, e := range a.Endpoints {
		if _, err := netlink.LinkByName(e.HostIf); err == nil {
			t.Fatalf("veth %s left after detach", e.HostIf)
		}
	}
	if _, err := os.Stat(ns); !os.IsNotExist(err) {
		t.Fatalf("netns %s left: %v", ns, err)
	}
	if rules, _ := conn.GetRules(tbl, &nftables.Chain{Name: "output", Table: tbl}); len(rules) != 0 {
		t.Fatalf("%d DNAT rules left", len(rules))
	}
	m.Release(ctx, id)
	if err := m.Remove(ctx, n.ID[:6]); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(n.Bridge); err == nil {
		t.Fatalf("bridge %s left after rm", n.Bridge)
	}
}
