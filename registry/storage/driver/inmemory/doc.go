// Package inmemory is a registry storage driver kept in a map, for tests and
// as a second implementation that keeps the driver interface honest.
package inmemory
