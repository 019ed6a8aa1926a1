// Package errdefs owns Berth's error classes and their mapping to HTTP status codes.
package errdefs
