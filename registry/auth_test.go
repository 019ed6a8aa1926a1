package registry_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/registry/auth"
	"github.com/berth-dev/berth/registry/storage"
	"github.com/berth-dev/berth/registry/storage/driver/inmemory"
	digest "github.com/opencontainers/go-digest"
)

func newAuthServer(t *testing.T) (*httptest.Server, *storage.Store) {
	t.Helper()
	store, err := storage.New(inmemory.New())
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(t.TempDir(), "berth-registry", func(ctx context.Context, repo string) bool {
		v, _ := store.GetVisibility(ctx, repo)
		return v == storage.Public
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := a.Users.Add(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	h, err := registry.New(registry.WithStore(store), registry.WithAuth(a), registry.WithAccessLog(false))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, store
}

var challengeRe = regexp.MustCompile(`(\w+)="([^"]*)"`)

// do performs a request the way Docker does: on a 401 it follows the
// challenge to the token endpoint (with basic auth when user is set) and
// retries once.
func do(t *testing.T, method, u, user, pass, body string) (int, string) {
	t.Helper()
	send := func(tok string) *http.Response {
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, u, r)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := send("")
	if resp.StatusCode == http.StatusUnauthorized {
		resp.Body.Close()
		params := map[string]string{}
		for _, m := range challengeRe.FindAllStringSubmatch(resp.Header.Get("WWW-Authenticate"), -1) {
			params[m[1]] = m[2]
		}
		q := url.Values{"service": {params["service"]}}
		if params["scope"] != "" {
			q["scope"] = []string{params["scope"]}
		}
		req, _ := http.NewRequest("GET", params["realm"]+"?"+q.Encode(), nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		tr, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var tok struct{ Token string }
		json.NewDecoder(tr.Body).Decode(&tok)
		tr.Body.Close()
		if tr.StatusCode != http.StatusOK {
			return tr.StatusCode, "token endpoint refused"
		}
		resp = send(tok.Token)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

func TestAccessControl(t *testing.T) {
	srv, store := newAuthServer(t)
	blob := "private bytes"
	d := digest.FromString(blob)
	up := func(repo string) string { return srv.URL + "/v2/" + repo + "/blobs/uploads/?digest=" + d.String() }
	get := func(repo string) string { return srv.URL + "/v2/" + repo + "/blobs/" + d.String() }

	steps := []struct {
		name             string
		method, url      string
		user, pass, body string
		code             int
	}{
		{"anonymous ping needs a token", "GET", srv.URL + "/v2/", "", "", "", 200},
		{"owner pushes", "POST", up("alice/app"), "alice", "alice-pw", blob, 201},
		{"wrong password refused", "GET", get("alice/app"), "alice", "wrong", "", 401},
		{"owner pulls private", "GET", get("alice/app"), "alice", "alice-pw", "", 200},
		{"anonymous cannot pull private", "GET", get("alice/app"), "", "", "", 401},
		{"other account cannot pull private", "GET", get("alice/app"), "bob", "bob-pw", "", 401},
		{"other account cannot push", "POST", up("alice/other"), "bob", "bob-pw", blob, 401},
		{"nobody owns a bare namespace", "POST", up("library/x"), "alice", "alice-pw", blob, 401},
		{"other account cannot delete", "DELETE", get("alice/app"), "bob", "bob-pw", "", 401},
		{"anonymous mount cannot steal a private blob", "POST", srv.URL + "/v2/bob/steal/blobs/uploads/?mount=" + d.String(), "bob", "bob-pw", "", 202},
	}
	for _, s := range steps {
		if code, body := do(t, s.method, s.url, s.user, s.pass, s.body); code != s.code {
			t.Errorf("%s: %s %s = %d, want %d (%s)", s.name, s.method, s.url, code, s.code, body)
		}
	}
	// Private repositories are invisible in the catalog.
	if _, body := do(t, "GET", srv.URL+"/v2/_catalog", "bob", "bob-pw", ""); strings.Contains(body, "alice/app") {
		t.Errorf("bob's catalog shows alice/app: %s", body)
	}
	if _, body := do(t, "GET", srv.URL+"/v2/_catalog", "alice", "alice-pw", ""); !strings.Contains(body, "alice/app") {
		t.Errorf("alice's catalog lacks alice/app: %s", body)
	}

	if err := store.SetVisibility(context.Background(), "alice/app", storage.Public); err != nil {
		t.Fatal(err)
	}
	if _, body := do(t, "GET", srv.URL+"/v2/_catalog", "", "", ""); !strings.Contains(body, "alice/app") {
		t.Errorf("anonymous catalog lacks public alice/app: %s", body)
	}
	for _, s := range []struct {
		name       string
		user, pass string
		method     string
		code       int
	}{
		{"anonymous pulls public", "", "", "GET", 200},
		{"other account pulls public", "bob", "bob-pw", "GET", 200},
		{"other account still cannot delete public", "bob", "bob-pw", "DELETE", 401},
		{"owner deletes", "alice", "alice-pw", "DELETE", 202},
	} {
		if code, body := do(t, s.method, get("alice/app"), s.user, s.pass, ""); code != s.code {
			t.Errorf("%s: %d, want %d (%s)", s.name, code, s.code, body)
		}
	}
}
