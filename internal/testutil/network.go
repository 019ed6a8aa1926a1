package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"testing"

	"github.com/berth-dev/berth/network"
)

// NetworkConfig is a private bridge and subnets for one test daemon, so
// several daemons (and dockerd) coexist.
type NetworkConfig struct {
	Bridge string         // --bridge
	BIP    string         // --bip, e.g. 10.123.45.1/24
	Spare  []netip.Prefix // free /24s for the test's user networks
}

// Args are berthd's flags for c.
func (c NetworkConfig) Args() []string { return []string{"--bridge", c.Bridge, "--bip", c.BIP} }

// FreeNetwork picks a random bridge name and free 10.x.y.0/24 subnets
// (one for the bridge, spare ones for user networks) and registers
// CleanupNetwork for them. Call it before StartDaemon so the cleanup runs
// after the daemon's (t.Cleanup is last in, first out).
func FreeNetwork(t testing.TB, spare int) NetworkConfig {
	t.Helper()
	RequireRoot(t)
	b := make([]byte, 4)
	rand.Read(b)
	c := NetworkConfig{Bridge: "bt" + hex.EncodeToString(b)}
	used := network.UsedPrefixes()
	var picked []netip.Prefix
	for tries := 0; len(picked) < spare+1 && tries < 1000; tries++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + mrand.IntN(150)), byte(mrand.IntN(256)), 0}), 24)
		free := true
		for _, u := range append(used, picked...) {
			if u.Overlaps(p) {
				free = false
			}
		}
		if free {
			picked = append(picked, p)
		}
	}
	if len(picked) < spare+1 {
		t.Fatal("no free 10.x.y.0/24 subnet for a test network")
	}
	c.BIP = fmt.Sprintf("%s/24", picked[0].Addr().Next())
	c.Spare = picked[1:]
	t.Cleanup(func() { CleanupNetwork(t, c.Bridge) })
	return c
}

// CleanupNetwork removes what a daemon with default bridge left in the
// kernel: the bridge, its user networks' bridges, their veths and Berth's
// nftables table.
func CleanupNetwork(t testing.TB, bridge string) {
	if err := network.Teardown(bridge); err != nil {
		t.Errorf("network cleanup for %s: %v", bridge, err)
	}
}
