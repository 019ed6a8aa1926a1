package distribution

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/berth-dev/berth/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseChallenges(t *testing.T) {
	tests := []struct {
		in   string
		want challenge
	}{
		{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"`,
			challenge{"bearer", map[string]string{"realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:library/busybox:pull"}}},
		{`Basic realm="Registry Realm"`, challenge{"basic", map[string]string{"realm": "Registry Realm"}}},
		{`Bearer realm=http://127.0.0.1:5000/token,service=reg`, challenge{"bearer", map[string]string{"realm": "http://127.0.0.1:5000/token", "service": "reg"}}},
		{`Bearer realm="a\"b", scope="x y"`, challenge{"bearer", map[string]string{"realm": `a"b`, "scope": "x y"}}},
		{`Basic`, challenge{"basic", map[string]string{}}},
	}
	for _, tt := range tests {
		got := parseChallenges([]string{tt.in})
		if len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
			t.Errorf("parseChallenges(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestNormalizeServer(t *testing.T) {
	tests := map[string]string{
		"":                             "docker.io",
		"https://index.docker.io/v1/":  "docker.io",
		"registry-1.docker.io":         "docker.io",
		"docker.io":                    "docker.io",
		"127.0.0.1:5000":               "127.0.0.1:5000",
		"http://127.0.0.1:5000/":       "127.0.0.1:5000",
		"https://registry.example/v2/": "registry.example",
		"registry.example/path":        "registry.example",
	}
	for in, want := range tests {
		if got := NormalizeServer(in); got != want {
			t.Errorf("NormalizeServer(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"linux/amd64", "linux/amd64", false},
		{"linux/arm64", "linux/arm64/v8", false},
		{"linux/aarch64", "linux/arm64/v8", false},
		{"linux/arm/v7", "linux/arm/v7", false},
		{"LINUX/X86_64", "linux/amd64", false},
		{"a/b/c/d", "", true},
		{"/amd64", "", true},
	}
	for _, tt := range tests {
		p, err := ParsePlatform(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParsePlatform(%q) error %v", tt.in, err)
			continue
		}
		if err == nil && FormatPlatform(p) != tt.want {
			t.Errorf("ParsePlatform(%q) = %s, want %s", tt.in, FormatPlatform(p), tt.want)
		}
	}
}

func TestPickManifest(t *testing.T) {
	d := func(s string) digest.Digest { return digest.FromString(s) }
	idx := ocispec.Index{Manifests: []ocispec.Descriptor{
		{Digest: d("attest"), Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"}},
		{Digest: d("armv6"), Platform: &ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}},
		{Digest: d("armv7"), Platform: &ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{Digest: d("amd64"), Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		{Digest: d("arm64"), Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}},
	}}
	raw, _ := json.Marshal(idx)
	tests := []struct {
		want ocispec.Platform
		pick string
	}{
		{ocispec.Platform{OS: "linux", Architecture: "amd64"}, "amd64"},
		{ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "arm64"},
		{ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "armv7"},
		{ocispec.Platform{OS: "linux", Architecture: "s390x"}, ""},
		{ocispec.Platform{OS: "windows", Architecture: "amd64"}, ""},
	}
	for _, tt := range tests {
		got, ok := pickManifest(raw, tt.want)
		if tt.pick == "" {
			if ok {
				t.Errorf("pickManifest(%s) = %s, want none", FormatPlatform(tt.want), got.Digest)
			}
			continue
		}
		if !ok || got.Digest != d(tt.pick) {
			t.Errorf("pickManifest(%s) = %v %v, want %s", FormatPlatform(tt.want), got.Digest, ok, tt.pick)
		}
	}
}

func TestInsecure(t *testing.T) {
	s, err := New(nil, Config{InsecureRegistries: []string{"myreg:5000", "10.1.0.0/16", "http://other.example/"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]bool{
		"127.0.0.1:5000":   true,
		"127.3.4.5":        true,
		"[::1]:5000":       true,
		"localhost:5000":   true,
		"myreg:5000":       true,
		"myreg:5001":       false,
		"10.1.2.3:443":     true,
		"10.2.0.1":         false,
		"other.example":    true,
		"registry.example": false,
	}
	for host, want := range tests {
		if got := s.insecure(host); got != want {
			t.Errorf("insecure(%q) = %v, want %v", host, got, want)
		}
	}
	if _, err := New(nil, Config{Mirrors: []string{"mirror.example"}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("a mirror without a scheme: %v", err)
	}
}

func TestProgressBar(t *testing.T) {
	tests := []struct {
		p    Progress
		want string
	}{
		{Progress{Current: 0, Total: 100}, ""},
		{Progress{Current: 50, Total: 0}, ""},
		{Progress{Current: 50, Total: 100}, "[=========================>                        ]      50B/100B"},
		{Progress{Current: 100, Total: 100}, "[==================================================]     100B/100B"},
	}
	for _, tt := range tests {
		if got := tt.p.Bar(); got != tt.want {
			t.Errorf("Bar(%d/%d) = %q, want %q", tt.p.Current, tt.p.Total, got, tt.want)
		}
	}
}

func TestUploadURL(t *testing.T) {
	r := &repoClient{ep: endpoint{host: "127.0.0.1:5000", scheme: "http"}}
	d := digest.FromString("x")
	tests := map[string]string{
		"/v2/a/blobs/uploads/123?_state=s":             "http://127.0.0.1:5000/v2/a/blobs/uploads/123?_state=s&digest=" + d.String(),
		"http://other:1/v2/a/blobs/uploads/123":        "http://other:1/v2/a/blobs/uploads/123?digest=" + d.String(),
		"https://up.example/upload?token=t&digest=old": "https://up.example/upload?digest=" + d.String() + "&token=t",
	}
	for loc, want := range tests {
		got, err := r.uploadURL(loc, d)
		if err != nil || strings.ReplaceAll(got, "%3A", ":") != want {
			t.Errorf("uploadURL(%q) = %q, %v; want %q", loc, got, err, want)
		}
	}
	if _, err := r.uploadURL("", d); err == nil {
		t.Error("an empty Location must fail")
	}
}

// tokenRegistry answers /v2/ with a bearer challenge and grants a token to
// alice:secret (or anyone when anonymous is set).
func tokenRegistry(t *testing.T, anonymous bool) (*httptest.Server, *[]string) {
	var scopes []string
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			u, p, ok := r.BasicAuth()
			if !(anonymous && !ok) && (u != "alice" || p != "secret") {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			scopes = append(scopes, r.URL.Query()["scope"]...)
			json.NewEncoder(w).Encode(map[string]any{"token": "tok-" + u, "expires_in": 300})
		case r.Header.Get("Authorization") == "" || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer tok-"):
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+srv.URL+`/token",service="test"`)
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.Write([]byte("{}"))
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &scopes
}

func TestBearerFlow(t *testing.T) {
	srv, scopes := tokenRegistry(t, false)
	s, _ := New(nil, Config{})
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	tests := []struct {
		name  string
		creds Credentials
		code  int
	}{
		{"good", Credentials{Username: "alice", Password: "secret"}, http.StatusOK},
		{"bad", Credentials{Username: "alice", Password: "wrong"}, 0},
		{"anonymous", Credentials{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := s.repo(endpoint{host: host, scheme: "http"}, "alice/app", tt.creds, "pull")
			resp, err := rc.do(ctx, http.MethodGet, "/v2/alice/app/tags/list", nil, nil)
			if tt.code == 0 {
				if !errors.Is(err, errdefs.ErrUnauthorized) {
					t.Fatalf("got %v, want an Unauthorized error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d", resp.StatusCode)
			}
		})
	}
	if len(*scopes) == 0 || (*scopes)[0] != "repository:alice/app:pull" {
		t.Errorf("token scopes %v", *scopes)
	}
	status, _, err := s.Login(ctx, srv.URL, Credentials{Username: "alice", Password: "secret"})
	if err != nil || status != "Login Succeeded" {
		t.Errorf("Login = %q, %v", status, err)
	}
	if _, _, err := s.Login(ctx, host, Credentials{Username: "alice", Password: "nope"}); !errors.Is(err, errdefs.ErrUnauthorized) ||
		!strings.Contains(err.Error(), "incorrect username or password") {
		t.Errorf("Login with a bad password: %v", err)
	}
}

func TestBasicFlow(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "bob" || p != "pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="reg"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte("{}"))
	}))
	defer srv.Close()
	s, _ := New(nil, Config{})
	host := strings.TrimPrefix(srv.URL, "http://")
	rc := s.repo(endpoint{host: host, scheme: "http"}, "bob/app", Credentials{Username: "bob", Password: "pw"}, "pull")
	resp, err := rc.do(context.Background(), http.MethodGet, "/v2/", nil, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("basic auth: %v %v", resp, err)
	}
	resp.Body.Close()
	if status, _, err := s.Login(context.Background(), host, Credentials{Username: "bob", Password: "pw"}); err != nil || status != "Login Succeeded" {
		t.Errorf("Login = %q, %v", status, err)
	}
	if _, _, err := s.Login(context.Background(), host, Credentials{Username: "bob", Password: "x"}); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Errorf("Login with a bad password: %v", err)
	}
}
