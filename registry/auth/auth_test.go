package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/errdefs"
)

func newAuthority(t *testing.T, public ...string) *Authority {
	t.Helper()
	a, err := New(t.TempDir(), "svc", func(_ context.Context, repo string) bool { return slices.Contains(public, repo) })
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := a.Users.Add(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func TestAllowed(t *testing.T) {
	a := newAuthority(t, "alice/pub")
	tests := []struct {
		user, repo string
		want       []string
	}{
		{"alice", "alice/app", []string{"pull", "push", "delete"}},
		{"alice", "alice/pub", []string{"pull", "push", "delete"}},
		{"bob", "alice/app", nil},
		{"bob", "alice/pub", []string{"pull"}},
		{"", "alice/pub", []string{"pull"}},
		{"", "alice/app", nil},
		{"alice", "alice", nil},      // a namespace needs a repository below it
		{"carol", "carol/app", nil},  // not an account
		{"alice", "alicex/app", nil}, // prefix is not ownership
		{"alice", "alice/deep/er/app", []string{"pull", "push", "delete"}},
	}
	for _, tc := range tests {
		got := a.Allowed(context.Background(), tc.user, tc.repo)
		if !slices.Equal(got, tc.want) {
			t.Errorf("Allowed(%q, %q) = %v, want %v", tc.user, tc.repo, got, tc.want)
		}
	}
}

func TestGrantAndVerify(t *testing.T) {
	a := newAuthority(t)
	scopes := ParseScopes([]string{"repository:alice/app:pull,push repository:bob/x:pull", "registry:catalog:*", "garbage"})
	if len(scopes) != 3 {
		t.Fatalf("ParseScopes = %+v", scopes)
	}
	access := a.Grant(context.Background(), "alice", scopes)
	tok, _, err := a.Issue("alice", access)
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" || !c.Allows("repository", "alice/app", "push") || c.Allows("repository", "bob/x", "pull") {
		t.Fatalf("claims %+v", c)
	}
	// Tampered, foreign and expired tokens are refused.
	parts := strings.Split(tok, ".")
	bad := parts[0] + "." + parts[1] + "x." + parts[2]
	other := newAuthority(t)
	foreign, _, _ := other.Issue("alice", access)
	a.TTL = -time.Hour
	expired, _, _ := a.Issue("alice", access)
	for name, tk := range map[string]string{"tampered": bad, "foreign key": foreign, "expired": expired, "empty": ""} {
		if _, err := a.Verify(tk); !errors.Is(err, errdefs.ErrUnauthorized) {
			t.Errorf("%s token: err = %v", name, err)
		}
	}
}

func TestUsers(t *testing.T) {
	a := newAuthority(t)
	u := a.Users
	tests := []struct {
		name string
		fn   func() error
		ok   bool
	}{
		{"right password", func() error { return u.Verify("alice", "alice-pw") }, true},
		{"right password again (cached)", func() error { return u.Verify("alice", "alice-pw") }, true},
		{"wrong password", func() error { return u.Verify("alice", "nope") }, false},
		{"unknown user", func() error { return u.Verify("carol", "x") }, false},
		{"duplicate add", func() error { return u.Add("alice", "x") }, false},
		{"bad name", func() error { return u.Add("Alice!", "x") }, false},
		{"passwd", func() error { return u.SetPassword("alice", "new-pw") }, true},
		{"old password now wrong", func() error { return u.Verify("alice", "alice-pw") }, false},
		{"new password", func() error { return u.Verify("alice", "new-pw") }, true},
		{"rm", func() error { return u.Remove("bob") }, true},
		{"removed cannot log in", func() error { return u.Verify("bob", "bob-pw") }, false},
		{"rm twice", func() error { return u.Remove("bob") }, false},
	}
	for _, tc := range tests {
		if err := tc.fn(); (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
