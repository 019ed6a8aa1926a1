// Package daemon holds berthd's services (images, containers, runtime, events)
// wired together by plain constructors, and implements every engine operation
// the API server exposes.
//
// On disk:
//
//	<data-root>/                     (default /var/lib/berth)
//	├── metadata.db                  bbolt: see package metadata
//	├── content/blobs/sha256/<hex>   immutable blobs (package content)
//	├── snapshots/<id>/              a layer (layer.erofs mounted on fs/) or a container writable layer (package snapshot)
//	├── volumes/<name>/_data         named and anonymous volumes (package volume)
//	└── containers/<id>/             <id>-json.log, hostname, hosts, resolv.conf, mounts.json (planned mounts)
//
//	<exec-root>/                     (default /run/berth, tmpfs: gone after a reboot)
//	├── berth.sock                   Engine API socket (0660)
//	├── berthd.pid
//	├── runtime/<name>/              the OCI runtime's --root
//	├── containers/<id>/             bundle: config.json, rootfs/ (overlay mount)
//	└── s/<first 20 hex of id>/      shim.sock, shim.pid, exit.json, shim.log (short: socket paths max 108 bytes)
package daemon
