// Package storage holds the registry's repository rules — content-addressed
// blobs shared by every repository, per-repository links, uploads, manifests,
// tags, referrers and garbage collection — over a path-keyed driver.
//
// # Layout
//
// Every object lives at a path built by one function (see paths.go):
//
//	/
//	├── blobs/<alg>/<hex[0:2]>/<hex>/data                 blob bytes, written once, named by digest
//	└── repositories/<name>/
//	    ├── _visibility                                     "public" or "private" (absent: private)
//	    ├── _layers/<alg>/<hex>/link                        blob linked into this repository
//	    ├── _manifests/revisions/<alg>/<hex>/link           manifest in this repository
//	    ├── _manifests/revisions/<alg>/<hex>/mediatype      its media type
//	    ├── _manifests/tags/<tag>/current/link              tag -> manifest digest
//	    ├── _referrers/<alg>/<hex>/<ralg>.<rhex>           descriptor of a manifest whose subject is <alg>:<hex>
//	    └── _uploads/<id>/data                              uploads in progress (mtime: last write)
//
// A link's content is the digest it names; its modification time is when it
// was made, which garbage collection uses as a grace period.
//
// # Commit of an upload
//
// Bytes are appended to _uploads/<id>/data while a running hash follows them.
// On PUT the data is fsynced, its digest checked against the one the client
// claims, moved to blobs/… (replacing an identical copy if two uploads of the
// same blob race: rename is atomic and both copies are equal), linked into the
// repository, and the upload directory is removed.
package storage
