// Package snapshot owns Berth's overlayfs snapshotter: one directory per unpacked layer and per container's writable layer.
package snapshot
