// Package snapshot owns Berth's overlayfs snapshotter: one read-only EROFS image (or directory) per unpacked layer and one directory per container's writable layer.
package snapshot
