package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(stdin string, args ...string) (string, error) {
	cmd := newRoot()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestCLI(t *testing.T) {
	root := t.TempDir()
	missing := filepath.Join(root, "nope")
	tests := []struct {
		name    string
		stdin   string
		args    []string
		wantErr string // empty: must succeed
		wantOut string
	}{
		{name: "serve needs root", args: []string{"serve"}, wantErr: "--root is required"},
		{name: "tls flags pair", args: []string{"serve", "--root", root, "--tls-cert", "c.pem"}, wantErr: "go together"},
		{name: "unreadable key pair", args: []string{"serve", "--root", root, "--tls-cert", missing, "--tls-key", missing}, wantErr: "load TLS key pair"},
		{name: "bad log format", args: []string{"serve", "--root", root, "--log-format", "xml"}, wantErr: "--log-format"},
		{name: "bad address", args: []string{"serve", "--root", root, "--addr", "256.0.0.1:1", "--log-format", "text"}, wantErr: "listen on 256.0.0.1:1"},
		{name: "password only on stdin", args: []string{"user", "add", "alice", "--root", root}, wantErr: "--password-stdin"},
		{name: "empty password", args: []string{"user", "add", "alice", "--root", root, "--password-stdin"}, wantErr: "empty password"},
		{name: "bad user name", stdin: "pw\n", args: []string{"user", "add", "Alice!", "--root", root, "--password-stdin"}, wantErr: "user name"},
		{name: "add", stdin: "pw\n", args: []string{"user", "add", "alice", "--root", root, "--password-stdin"}},
		{name: "add twice", stdin: "pw\n", args: []string{"user", "add", "alice", "--root", root, "--password-stdin"}, wantErr: "already exists"},
		{name: "passwd", stdin: "pw2\n", args: []string{"user", "passwd", "alice", "--root", root, "--password-stdin"}},
		{name: "passwd unknown", stdin: "pw2\n", args: []string{"user", "passwd", "bob", "--root", root, "--password-stdin"}, wantErr: "no such user"},
		{name: "rm unknown", args: []string{"user", "rm", "bob", "--root", root}, wantErr: "no such user"},
		{name: "rm", args: []string{"user", "rm", "alice", "--root", root}},
		{name: "visibility default", args: []string{"repo", "visibility", "alice/app", "--root", root}, wantOut: "private"},
		{name: "make public", args: []string{"repo", "visibility", "alice/app", "public", "--root", root}},
		{name: "visibility shown", args: []string{"repo", "visibility", "alice/app", "--root", root}, wantOut: "public"},
		{name: "bad visibility", args: []string{"repo", "visibility", "alice/app", "open", "--root", root}, wantErr: "must be public or private"},
		{name: "bad repo name", args: []string{"repo", "visibility", "Alice/App", "public", "--root", root}, wantErr: "invalid repository name"},
		{name: "gc missing root", args: []string{"gc", "--root", missing}, wantErr: "does not exist"},
		{name: "gc", args: []string{"gc", "--root", root, "--grace", "0s"}, wantOut: "gc: freed 0 bytes"},
		{name: "gc dry run", args: []string{"gc", "--root", root, "--dry-run"}, wantOut: "gc: would free"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI(tc.stdin, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Fatalf("output %q lacks %q", out, tc.wantOut)
			}
		})
	}
}
