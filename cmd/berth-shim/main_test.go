package main

import (
	"reflect"
	"testing"

	"github.com/berth-dev/berth/shim/server"
)

func TestParseArgs(t *testing.T) {
	full := []string{"-id", "c1", "-bundle", "/b", "-state-dir", "/s", "-log-path", "/l", "-runtime-root", "/r"}
	tests := []struct {
		name string
		args []string
		want server.Config
		ok   bool
	}{
		{"required only", full, server.Config{ID: "c1", Bundle: "/b", StateDir: "/s", LogPath: "/l", RuntimeRoot: "/r", Runtime: "runc"}, true},
		{"all", append(append([]string{}, full...), "-runtime", "/usr/sbin/runc", "-terminal", "-stdin", "-stdin-once"),
			server.Config{ID: "c1", Bundle: "/b", StateDir: "/s", LogPath: "/l", RuntimeRoot: "/r", Runtime: "/usr/sbin/runc",
				Terminal: true, Stdin: true, StdinOnce: true}, true},
		{"missing id", full[2:], server.Config{}, false},
		{"unknown flag", append(append([]string{}, full...), "-bogus"), server.Config{}, false},
		{"flag without value", append(append([]string{}, full...), "-runtime"), server.Config{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseArgs(tt.args)
			if ok != tt.ok || (ok && !reflect.DeepEqual(got, tt.want)) {
				t.Errorf("parseArgs = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
