// Package shim starts and talks to berth-shim, the small per-container process that holds a container's
// stdio, writes its json-file log, reaps it and records its exit, and outlives the daemon.
package shim
