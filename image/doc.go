// Package image owns Berth's image store: image records and names over the content store and the snapshotter, and the image commands (import, save, load, tag, remove, prune, check).
package image
