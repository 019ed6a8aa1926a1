package shim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/errdefs"
)

func TestOptionsValidate(t *testing.T) {
	good := Options{ID: strings.Repeat("ab", 32), Bundle: "/b", StateDir: "/run/berth/containers/x", LogPath: "/l",
		RuntimeRoot: "/r", ShimBinary: "/bin/berth-shim"}
	tests := []struct {
		name   string
		change func(*Options)
		ok     bool
	}{
		{"good", func(*Options) {}, true},
		{"empty id", func(o *Options) { o.ID = "" }, false},
		{"id with slash", func(o *Options) { o.ID = "a/b" }, false},
		{"id dot-dot", func(o *Options) { o.ID = ".." }, false},
		{"no bundle", func(o *Options) { o.Bundle = "" }, false},
		{"no shim binary", func(o *Options) { o.ShimBinary = "" }, false},
		{"no log (--log-driver none)", func(o *Options) { o.LogPath = "" }, true},
		{"rotation without a log", func(o *Options) { o.LogPath, o.LogMaxSize = "", 1<<20 }, false},
		{"state dir too long for a socket", func(o *Options) { o.StateDir = "/" + strings.Repeat("d", 100) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.change(&o)
			err := o.validate()
			if (err == nil) != tt.ok || (err != nil && !errdefs.IsInvalidArgument(err)) {
				t.Errorf("validate = %v, want ok=%v (invalid argument otherwise)", err, tt.ok)
			}
		})
	}
}

func TestReadExit(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadExit(dir); !errdefs.IsNotFound(err) {
		t.Errorf("ReadExit of an empty dir: %v, want not found", err)
	}
	os.WriteFile(filepath.Join(dir, "exit.json"), []byte(`{"code":137,"exited_at":"2026-11-27T10:00:00.5Z"}`), 0o600)
	e, err := ReadExit(dir)
	if err != nil || e.Code != 137 || !e.ExitedAt.Equal(time.Date(2026, 11, 27, 10, 0, 0, 5e8, time.UTC)) {
		t.Errorf("ReadExit = %+v, %v", e, err)
	}
	os.WriteFile(filepath.Join(dir, "exit.json"), []byte(`{"code":`), 0o600)
	if _, err := ReadExit(dir); err == nil || errdefs.IsNotFound(err) {
		t.Errorf("ReadExit of a torn file: %v, want a system error", err)
	}
}

func TestConnectNoShim(t *testing.T) {
	dir := t.TempDir()
	if _, err := Connect(context.Background(), dir); !errdefs.IsNotFound(err) {
		t.Errorf("Connect without a socket: %v, want not found", err)
	}
	// A stale socket file with nobody listening is not found either.
	c := &Client{stateDir: dir}
	os.WriteFile(filepath.Join(dir, "shim.sock"), nil, 0o600)
	if _, _, _, err := c.call(context.Background(), "info"); !errdefs.IsNotFound(err) {
		t.Errorf("call on a dead socket: %v, want not found", err)
	}
	// Wait falls back to exit.json when no shim answers.
	os.WriteFile(filepath.Join(dir, "exit.json"), []byte(`{"code":3,"exited_at":"2026-11-27T10:00:00Z"}`), 0o600)
	if e, err := c.Wait(context.Background()); err != nil || e.Code != 3 {
		t.Errorf("Wait without a shim: %+v, %v", e, err)
	}
}
