package server

import (
	"encoding/base64"
	"net/http/httptest"
	"testing"

	"github.com/berth-dev/berth/distribution"
)

func TestRegistryAuth(t *testing.T) {
	js := `{"username":"alice","password":"p+/w=","serveraddress":"127.0.0.1:5000"}`
	tests := []struct {
		name, header string
		want         distribution.Credentials
	}{
		{"empty", "", distribution.Credentials{}},
		{"url padded", base64.URLEncoding.EncodeToString([]byte(js)), distribution.Credentials{Username: "alice", Password: "p+/w="}},
		{"url raw", base64.RawURLEncoding.EncodeToString([]byte(js)), distribution.Credentials{Username: "alice", Password: "p+/w="}},
		{"std", base64.StdEncoding.EncodeToString([]byte(js)), distribution.Credentials{Username: "alice", Password: "p+/w="}},
		{"auth field", base64.URLEncoding.EncodeToString([]byte(`{"auth":"` + base64.StdEncoding.EncodeToString([]byte("bob:pw:x")) + `"}`)),
			distribution.Credentials{Username: "bob", Password: "pw:x"}},
		{"identity token", base64.URLEncoding.EncodeToString([]byte(`{"username":"u","identitytoken":"tok"}`)),
			distribution.Credentials{Username: "u", IdentityToken: "tok"}},
		{"garbage", "!!!", distribution.Credentials{}},
		{"not json", base64.URLEncoding.EncodeToString([]byte("nope")), distribution.Credentials{}},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", "/images/create", nil)
		if tt.header != "" {
			r.Header.Set("X-Registry-Auth", tt.header)
		}
		if got := registryAuth(r); got != tt.want {
			t.Errorf("%s: registryAuth = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestPlatformParam(t *testing.T) {
	tests := []struct {
		q, want string
		err     bool
	}{
		{"", "", false},
		{"linux/arm64", "linux/arm64/v8", false},
		{"linux/arm/v7", "linux/arm/v7", false},
		{`{"os":"linux","architecture":"amd64"}`, "linux/amd64", false},
		{`{"architecture":"riscv64"}`, "linux/riscv64", false},
		{`{bad`, "", true},
		{"a/b/c/d", "", true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", "/images/create", nil)
		q := r.URL.Query()
		q.Set("platform", tt.q)
		r.URL.RawQuery = q.Encode()
		p, err := platformParam(r)
		if (err != nil) != tt.err {
			t.Errorf("platformParam(%q) error %v", tt.q, err)
			continue
		}
		got := ""
		if p != nil {
			got = distribution.FormatPlatform(*p)
		}
		if !tt.err && got != tt.want {
			t.Errorf("platformParam(%q) = %q, want %q", tt.q, got, tt.want)
		}
	}
}
