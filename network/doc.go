// Package network owns Berth's container networks: Linux bridges with their
// IPAM persisted in bbolt, per-container network namespaces and veth pairs,
// NAT and published ports in Berth's own nftables table, and the embedded
// DNS server that resolves container names and aliases on user networks.
//
// On disk and in the kernel:
//
//	metadata.db
//	├── networks/      <network id>   -> JSON Network
//	├── ipam/          <network id>/  <ip> -> container id
//	└── endpoints/     <container id> -> JSON Attachment (wanted networks, live addresses and ports)
//	<exec-root>/netns/<id[:12]>-<rand>  bind mount of the container's network namespace
//	nft table ip berth_<default bridge> chains prerouting, output, postrouting (nat), forward (filter)
package network
