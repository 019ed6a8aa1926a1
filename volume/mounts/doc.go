// Package mounts reads the mounts a container asks for (-v binds, --mount
// entries and --tmpfs) into one checked Spec, with Docker's rules and
// messages, for the daemon that plans a container's volumes and the runtime
// that writes its OCI mounts.
package mounts
