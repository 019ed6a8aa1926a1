package cli

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/registry"
)

func TestCredentialHelperChoice(t *testing.T) {
	tests := []struct {
		config, key, want string
	}{
		{`{}`, "reg:5000", ""},
		{`{"credsStore":"pass"}`, "reg:5000", "pass"},
		{`{"credsStore":"pass","credHelpers":{"reg:5000":"ecr-login"}}`, "reg:5000", "ecr-login"},
		{`{"credsStore":"pass","credHelpers":{"reg:5000":"ecr-login"}}`, "other", "pass"},
		{`{"credHelpers":{"reg:5000":"ecr-login"}}`, "other", ""},
		{`{"credsStore":42}`, "reg:5000", ""},
	}
	for _, tt := range tests {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tt.config), &m); err != nil {
			t.Fatal(err)
		}
		if got := credentialHelper(m, tt.key); got != tt.want {
			t.Errorf("credentialHelper(%s, %s) = %q, want %q", tt.config, tt.key, got, tt.want)
		}
	}
}

// fakeHelper installs docker-credential-fake on $PATH: a shell script that
// keeps one file per server in dir, as a real helper keeps a keychain.
func fakeHelper(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	script := `#!/bin/sh
store=` + dir + `/store
mkdir -p "$store"
case "$1" in
get) key=$(cat | tr '/:' '__'); [ -f "$store/$key" ] || { echo "credentials not found in native keychain"; exit 1; }; cat "$store/$key" ;;
store) body=$(cat); key=$(printf '%s' "$body" | sed 's/.*"ServerURL":"\([^"]*\)".*/\1/' | tr '/:' '__'); printf '%s' "$body" >"$store/$key" ;;
erase) key=$(cat | tr '/:' '__'); [ -f "$store/$key" ] || { echo "credentials not found in native keychain"; exit 1; }; rm "$store/$key" ;;
*) exit 2 ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-fake"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestCredentialHelperRoundTrip(t *testing.T) {
	fakeHelper(t)
	tests := []struct {
		key string
		ac  registry.AuthConfig
	}{
		{"127.0.0.1:5000", registry.AuthConfig{ServerAddress: "127.0.0.1:5000", Username: "alice", Password: "s3cret"}},
		{DefaultRegistryKey, registry.AuthConfig{ServerAddress: DefaultRegistryKey, IdentityToken: "refresh-token"}},
	}
	for _, tt := range tests {
		if got, err := helperGet("fake", tt.key); err != nil || got != (registry.AuthConfig{ServerAddress: tt.key}) {
			t.Fatalf("get before store = %+v, %v; want empty", got, err)
		}
		if err := helperStore("fake", tt.key, tt.ac); err != nil {
			t.Fatal(err)
		}
		got, err := helperGet("fake", tt.key)
		if err != nil || got != tt.ac {
			t.Fatalf("get = %+v, %v; want %+v", got, err, tt.ac)
		}
		if err := helperErase("fake", tt.key); err != nil {
			t.Fatal(err)
		}
		if err := helperErase("fake", tt.key); err != nil {
			t.Fatalf("erasing twice: %v", err)
		}
		if got, _ := helperGet("fake", tt.key); got.Username != "" || got.IdentityToken != "" {
			t.Fatalf("get after erase = %+v", got)
		}
	}
	if _, err := helperGet("missing-helper", "x"); err == nil {
		t.Fatal("a helper that is not installed must be an error")
	}
}

// TestCredentialsUseConfiguredHelper proves the CLI reads credentials
// through the helper config.json names instead of its auths map.
func TestCredentialsUseConfiguredHelper(t *testing.T) {
	fakeHelper(t)
	dir := t.TempDir()
	t.Setenv("BERTH_CONFIG", dir)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"credsStore":"fake","auths":{"127.0.0.1:5000":{}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	want := registry.AuthConfig{ServerAddress: "127.0.0.1:5000", Username: "bob", Password: "pw"}
	if err := helperStore("fake", "127.0.0.1:5000", want); err != nil {
		t.Fatal(err)
	}
	c := New(strings.NewReader(""), io.Discard, io.Discard)
	if got := c.credentials("127.0.0.1:5000"); got != want {
		t.Fatalf("credentials = %+v, want %+v", got, want)
	}
}
