// Package version holds Berth's release and build identifiers, set at link time.
package version

// Set with -ldflags -X by the Makefile.
var (
	Version   = "0.1.0-dev"
	GitCommit = "unknown"
	BuildTime = ""
)
