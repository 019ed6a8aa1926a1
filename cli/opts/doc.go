// Package opts turns berth's command-line flags into Engine API request types, the way docker's CLI does.
package opts
