// Package distribution moves images between the image store and OCI/Docker registries: reference resolution, registry auth (basic and bearer token), pull, push and login.
package distribution
