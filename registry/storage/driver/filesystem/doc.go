// Package filesystem implements the registry storage driver on a local
// directory tree with atomic, fsynced writes.
package filesystem
