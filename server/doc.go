// Package server serves the Docker Engine API over HTTP: routing, version
// negotiation, stream hijacking and error mapping, with thin handlers that
// decode a request, call the daemon and encode the answer.
package server
