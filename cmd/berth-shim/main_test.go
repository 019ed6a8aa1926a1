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
		{"log rotation", append(append([]string{}, full...), "-log-max-size", "10000000000", "-log-max-file", "3"),
			server.Config{ID: "c1", Bundle: "/b", StateDir: "/s", LogPath: "/l", RuntimeRoot: "/r", Runtime: "runc",
				LogMaxSize: 10000000000, LogMaxFiles: 3}, true},
		{"log max-size not a number", append(append([]string{}, full...), "-log-max-size", "10m"), server.Config{}, false},
		{"log max-file zero", append(append([]string{}, full...), "-log-max-size", "100", "-log-max-file", "0"), server.Config{}, false},
		{"no log (--log-driver none)", []string{"-id", "c1", "-bundle", "/b", "-state-dir", "/s", "-runtime-root", "/r"},
			server.Config{ID: "c1", Bundle: "/b", StateDir: "/s", RuntimeRoot: "/r", Runtime: "runc"}, true},
		{"rotation without a log", []string{"-id", "c1", "-bundle", "/b", "-state-dir", "/s", "-runtime-root", "/r", "-log-max-size", "100"},
			server.Config{}, false},
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
