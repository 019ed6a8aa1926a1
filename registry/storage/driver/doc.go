// Package driver defines the small path-keyed storage interface the registry's
// repository rules are written against, so a filesystem today and an
// S3-compatible store later fit without touching the HTTP handlers.
package driver
