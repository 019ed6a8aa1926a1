// Package builder runs Dockerfiles (classic builder semantics, buildkit's
// parser) against a daemon Backend and owns the build cache.
package builder
