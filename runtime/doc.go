// Package runtime turns a container's configuration into an OCI runtime spec and drives the OCI runtime (runc) for a container's processes.
package runtime
