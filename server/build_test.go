package server

import (
	"encoding/base64"
	"testing"
)

func TestBuildAuth(t *testing.T) {
	js := `{"localhost:5000":{"username":"u","password":"p"},"https://index.docker.io/v1/":{"identitytoken":"tok"}}`
	tests := []struct {
		name, header string
		wantUser     string
		wantN        int
	}{
		{"empty", "", "", 0},
		{"base64url padded", base64.URLEncoding.EncodeToString([]byte(js)), "u", 2},
		{"base64url unpadded", base64.RawURLEncoding.EncodeToString([]byte(js)), "u", 2},
		{"garbage", "!!!", "", 0},
		{"not json", base64.URLEncoding.EncodeToString([]byte("nope")), "", 0},
	}
	for _, tc := range tests {
		got := buildAuth(tc.header)
		if len(got) != tc.wantN || got["localhost:5000"].Username != tc.wantUser {
			t.Errorf("%s: %+v", tc.name, got)
		}
	}
}
