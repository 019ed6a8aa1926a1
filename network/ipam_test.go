package network

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/metadata"
	bolt "go.etcd.io/bbolt"
)

func TestLastAddr(t *testing.T) {
	for _, tc := range []struct{ prefix, want string }{
		{"10.1.2.0/24", "10.1.2.255"},
		{"172.17.0.0/16", "172.17.255.255"},
		{"192.168.16.0/20", "192.168.31.255"},
		{"10.0.0.4/30", "10.0.0.7"},
	} {
		if got := lastAddr(netip.MustParsePrefix(tc.prefix)); got.String() != tc.want {
			t.Errorf("lastAddr(%s) = %s, want %s", tc.prefix, got, tc.want)
		}
	}
}

func testDB(t *testing.T) *bolt.DB {
	db, err := metadata.Open(filepath.Join(t.TempDir(), "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketIPAM)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestAllocate(t *testing.T) {
	n := &Network{ID: "n1", Name: "n1", Subnet: netip.MustParsePrefix("10.9.0.0/29"), Gateway: netip.MustParseAddr("10.9.0.1")}
	db := testDB(t)
	alloc := func(id, want string) (netip.Addr, error) {
		var ip netip.Addr
		err := db.Update(func(tx *bolt.Tx) error {
			var w netip.Addr
			if want != "" {
				w = netip.MustParseAddr(want)
			}
			var err error
			ip, err = allocate(tx, n, id, w)
			return err
		})
		return ip, err
	}
	steps := []struct {
		id, want, got string
		errClass      func(error) bool
	}{
		{id: "a", got: "10.9.0.2"},
		{id: "b", got: "10.9.0.3"},
		{id: "c", want: "10.9.0.6", got: "10.9.0.6"},
		{id: "d", want: "10.9.0.6", errClass: errdefs.IsConflict},
		{id: "e", got: "10.9.0.4"},
		{id: "f", got: "10.9.0.5"},
		{id: "g", errClass: func(err error) bool { return err != nil }}, // .7 is broadcast: full
	}
	for _, s := range steps {
		ip, err := alloc(s.id, s.want)
		if s.errClass != nil {
			if err == nil || !s.errClass(err) {
				t.Fatalf("%s: want an error, got %v %v", s.id, ip, err)
			}
			continue
		}
		if err != nil || ip.String() != s.got {
			t.Fatalf("%s: got %v %v, want %s", s.id, ip, err, s.got)
		}
	}
	// Released addresses are handed out again, lowest first; an address is
	// only released by its owner.
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := release(tx, "n1", netip.MustParseAddr("10.9.0.3"), "not-b"); err != nil {
			return err
		}
		return release(tx, "n1", netip.MustParseAddr("10.9.0.2"), "a")
	}); err != nil {
		t.Fatal(err)
	}
	if ip, err := alloc("h", ""); err != nil || ip.String() != "10.9.0.2" {
		t.Fatalf("after release: %v %v", ip, err)
	}
	if _, err := alloc("i", ""); err == nil {
		t.Fatal("10.9.0.3 was released by a non-owner")
	}
}

func TestLookup(t *testing.T) {
	user := &Network{ID: "u", Name: "u", Subnet: netip.MustParsePrefix("10.8.0.0/24")}
	other := &Network{ID: "o", Name: "o", Subnet: netip.MustParsePrefix("10.8.1.0/24")}
	def := &Network{ID: "b", Name: "bridge", Predefined: true, Subnet: netip.MustParsePrefix("10.8.2.0/24")}
	ep := func(net, ip string, aliases ...string) *Endpoint {
		return &Endpoint{NetworkID: net, IP: netip.MustParseAddr(ip), Aliases: aliases}
	}
	m := &Manager{networks: map[string]*Network{"u": user, "o": other, "b": def}, atts: map[string]*Attachment{
		"asker0000000000": {ContainerID: "asker0000000000", Name: "asker", Endpoints: []*Endpoint{ep("u", "10.8.0.2"), ep("b", "10.8.2.2")}, DNS: []string{"10.0.0.53"}},
		"web000000000000": {ContainerID: "web000000000000", Name: "web", Endpoints: []*Endpoint{ep("u", "10.8.0.3", "site", "api")}},
		"web2ff00000000a": {ContainerID: "web2ff00000000a", Name: "web2", Endpoints: []*Endpoint{ep("u", "10.8.0.4", "api")}},
		"far000000000000": {ContainerID: "far000000000000", Name: "far", Endpoints: []*Endpoint{ep("o", "10.8.1.2")}},
		"def000000000000": {ContainerID: "def000000000000", Name: "def", Endpoints: []*Endpoint{ep("b", "10.8.2.3")}},
		"stop00000000000": {ContainerID: "stop00000000000", Name: "stopped", Endpoints: []*Endpoint{{NetworkID: "u"}}},
	}}
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"web", []string{"10.8.0.3"}},
		{"WEB", []string{"10.8.0.3"}},
		{"site", []string{"10.8.0.3"}},
		{"api", []string{"10.8.0.3", "10.8.0.4"}},
		{"web2ff000000", []string{"10.8.0.4"}}, // short id
		{"far", nil},                           // another network
		{"def", nil},                           // the default bridge has no DNS
		{"stopped", nil},
	} {
		got, upstream := m.lookup("asker0000000000", tc.name)
		var s []string
		for _, ip := range got {
			s = append(s, ip.String())
		}
		if len(s) != len(tc.want) || (len(s) > 0 && !sameSet(s, tc.want)) {
			t.Errorf("lookup %s = %v, want %v", tc.name, s, tc.want)
		}
		if len(upstream) != 1 || upstream[0] != "10.0.0.53" {
			t.Errorf("upstream %v", upstream)
		}
	}
}

func sameSet(a, b []string) bool {
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestReserveConflict(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	fd, m, err := reserveRequest(PortRequest{Proto: "tcp", HostIP: lo, ContainerPort: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer closeFD(fd)
	if m.HostPort == 0 || m.HostIP != lo || m.ContainerPort != 80 {
		t.Fatalf("mapping %+v", m)
	}
	_, _, err = reserveRequest(PortRequest{Proto: "tcp", HostIP: lo, HostPortMin: m.HostPort, ContainerPort: 81})
	if !errdefs.IsConflict(err) {
		t.Fatalf("second bind of %d: %v", m.HostPort, err)
	}
	// a range skips the taken port
	fd2, m2, err := reserveRequest(PortRequest{Proto: "tcp", HostIP: lo, HostPortMin: m.HostPort, HostPortMax: m.HostPort + 20, ContainerPort: 81})
	if err != nil {
		t.Fatalf("range: %v", err)
	}
	defer closeFD(fd2)
	if m2.HostPort == m.HostPort {
		t.Fatalf("range reused %d", m.HostPort)
	}
	// udp and tcp are separate
	fd3, _, err := reserveRequest(PortRequest{Proto: "udp", HostIP: lo, HostPortMin: m.HostPort, ContainerPort: 80})
	if err != nil {
		t.Fatalf("udp on a tcp port: %v", err)
	}
	closeFD(fd3)
}
