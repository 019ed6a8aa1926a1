// Package container owns container records, their lifecycle state machine,
// restart policies and the bbolt-backed container store.
package container
