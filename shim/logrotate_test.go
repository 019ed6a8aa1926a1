package shim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/errdefs"
)

func TestOptionsValidateLogLimits(t *testing.T) {
	base := Options{ID: "c1", Bundle: "/b", StateDir: "/s", LogPath: "/l", RuntimeRoot: "/r", ShimBinary: "/x"}
	tests := []struct {
		name     string
		maxSize  int64
		maxFiles int
		ok       bool
	}{
		{"no limits", 0, 0, true},
		{"size only", 1 << 20, 0, true},
		{"size and files", 1 << 20, 3, true},
		{"one file without size", 0, 1, true},
		{"files without size", 0, 3, false},
		{"negative files", 100, -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			o.LogMaxSize, o.LogMaxFiles = tt.maxSize, tt.maxFiles
			err := o.validate()
			if tt.ok && err != nil {
				t.Errorf("validate: %v", err)
			}
			if !tt.ok && !errdefs.IsInvalidArgument(err) {
				t.Errorf("validate: %v, want invalid argument", err)
			}
		})
	}
}

// TestLogRotation runs a real shim with a size limit: the log is rotated at entry boundaries, at most
// max-file files remain, none past the limit, and together they end with the container's last lines in order.
func TestLogRotation(t *testing.T) {
	const lines, maxSize, maxFiles = 20000, 64 << 10, 3
	tc := newContainer(t, []string{"seq", "1", fmt.Sprint(lines)})
	tc.opts.LogMaxSize, tc.opts.LogMaxFiles = maxSize, maxFiles
	c := tc.start(t)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e := wait(t, c); e.Code != 0 {
		t.Fatalf("exit code %d", e.Code)
	}
	names, _ := filepath.Glob(tc.opts.LogPath + "*")
	if len(names) != maxFiles {
		t.Errorf("log files %v, want %d", names, maxFiles)
	}
	var entries []logEntry
	for _, name := range []string{tc.opts.LogPath + ".2", tc.opts.LogPath + ".1", tc.opts.LogPath} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > maxSize || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: %d bytes (limit %d), mode %v", filepath.Base(name), fi.Size(), maxSize, fi.Mode().Perm())
		}
		entries = append(entries, readLog(t, name)...)
	}
	if len(entries) == 0 || entries[len(entries)-1].Log != fmt.Sprint(lines)+"\n" {
		t.Fatalf("last entry %v, want %d", entries[len(entries)-1:], lines)
	}
	first := lines - len(entries) + 1
	for i, e := range entries {
		if want := fmt.Sprint(first+i) + "\n"; e.Log != want || e.Stream != "stdout" {
			t.Fatalf("entry %d is %q, want %q: lines lost or repeated", i, e.Log, strings.TrimSpace(want))
		}
	}
}
