// Package content owns Berth's blob store: immutable blobs named by their digest, verified while written.
package content
