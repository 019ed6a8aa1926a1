// Package integration drives real berthd processes with berth and the real
// docker CLI; every test needs root and skips without it.
package integration
