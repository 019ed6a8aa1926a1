// Package registry is berth-registry's HTTP server: the OCI Distribution Spec
// v1.1 handlers over the repository rules in registry/storage, with optional
// token authentication from registry/auth.
package registry
