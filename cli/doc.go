// Package cli holds berth's commands: docker's verbs, flags, tables and exit codes over the Engine API client.
package cli
