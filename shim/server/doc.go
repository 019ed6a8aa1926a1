// Package server is the berth-shim process: it creates one container through the OCI runtime, holds its
// stdio, writes its json-file log, reaps it, records its exit and serves the daemon's shim.Client meanwhile.
package server
