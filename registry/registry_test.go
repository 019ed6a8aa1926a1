package registry_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/registry/storage"
	"github.com/berth-dev/berth/registry/storage/driver/inmemory"
	digest "github.com/opencontainers/go-digest"
)

func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	store, err := storage.New(inmemory.New())
	if err != nil {
		t.Fatal(err)
	}
	h, err := registry.New(registry.WithStore(store), registry.WithAccessLog(false))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

type step struct {
	name    string
	method  string
	url     string
	header  map[string]string
	body    string
	code    int
	want    map[string]string // response headers that must match exactly
	errCode string            // OCI error code expected in the body
	inBody  string            // substring expected in the body
}

func run(t *testing.T, srv *httptest.Server, steps []step) {
	t.Helper()
	for _, s := range steps {
		var body io.Reader
		if s.body != "" {
			body = strings.NewReader(s.body)
		}
		req, err := http.NewRequest(s.method, srv.URL+s.url, body)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		for k, v := range s.header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != s.code {
			t.Errorf("%s: %s %s = %d, want %d; body %s", s.name, s.method, s.url, resp.StatusCode, s.code, b)
			continue
		}
		for k, v := range s.want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s: header %s = %q, want %q", s.name, k, got, v)
			}
		}
		if s.errCode != "" {
			var e struct {
				Errors []struct{ Code, Message string }
			}
			if err := json.Unmarshal(b, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code != s.errCode {
				t.Errorf("%s: error body %s, want code %s", s.name, b, s.errCode)
			}
		}
		if s.inBody != "" && !strings.Contains(string(b), s.inBody) {
			t.Errorf("%s: body %s lacks %q", s.name, b, s.inBody)
		}
	}
}

func TestDistributionAPI(t *testing.T) {
	srv := newTestServer(t)
	layer := "0123456789abcdefghij"
	ld := digest.FromString(layer)
	config := `{"architecture":"amd64","os":"linux"}`
	cd := digest.FromString(config)
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`, cd, len(config), ld, len(layer))
	md := digest.FromString(manifest)
	artifact := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/x-sig","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":%d},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%d}}`, cd, len(config), md, len(manifest))
	ad := digest.FromString(artifact)

	run(t, srv, []step{
		{name: "ping", method: "GET", url: "/v2/", code: 200, want: map[string]string{"Docker-Distribution-API-Version": "registry/2.0"}},
		{name: "healthz", method: "GET", url: "/healthz", code: 200},
		{name: "bad name", method: "GET", url: "/v2/Bad_Name/tags/list", code: 400, errCode: "NAME_INVALID"},
		{name: "unknown repo tags", method: "GET", url: "/v2/a/b/tags/list", code: 404, errCode: "NAME_UNKNOWN"},
		{name: "missing blob", method: "GET", url: "/v2/a/b/blobs/" + ld.String(), code: 404, errCode: "BLOB_UNKNOWN"},
		{name: "bad digest", method: "GET", url: "/v2/a/b/blobs/sha256:nothex", code: 400, errCode: "DIGEST_INVALID"},
		{name: "monolithic post", method: "POST", url: "/v2/a/b/blobs/uploads/?digest=" + ld.String(), body: layer, code: 201,
			want: map[string]string{"Location": "/v2/a/b/blobs/" + ld.String(), "Docker-Content-Digest": ld.String()}},
		{name: "monolithic post, wrong digest", method: "POST", url: "/v2/a/b/blobs/uploads/?digest=" + cd.String(), body: layer, code: 400, errCode: "DIGEST_INVALID"},
		{name: "head blob", method: "HEAD", url: "/v2/a/b/blobs/" + ld.String(), code: 200, want: map[string]string{"Content-Length": "20"}},
		{name: "range", method: "GET", url: "/v2/a/b/blobs/" + ld.String(), header: map[string]string{"Range": "bytes=2-4"}, code: 206,
			want: map[string]string{"Content-Range": "bytes 2-4/20", "Content-Length": "3"}, inBody: "234"},
		{name: "suffix range", method: "GET", url: "/v2/a/b/blobs/" + ld.String(), header: map[string]string{"Range": "bytes=-3"}, code: 206, inBody: "hij"},
		{name: "bad range", method: "GET", url: "/v2/a/b/blobs/" + ld.String(), header: map[string]string{"Range": "bytes=30-40"}, code: 416,
			want: map[string]string{"Content-Range": "bytes */20"}},
		{name: "not in other repo", method: "HEAD", url: "/v2/c/d/blobs/" + ld.String(), code: 404},
		{name: "mount", method: "POST", url: "/v2/c/d/blobs/uploads/?mount=" + ld.String() + "&from=a/b", code: 201},
		{name: "mounted", method: "HEAD", url: "/v2/c/d/blobs/" + ld.String(), code: 200},
		{name: "mount missing falls back to upload", method: "POST", url: "/v2/c/d/blobs/uploads/?mount=" + cd.String() + "&from=a/b", code: 202},
		{name: "manifest with missing config", method: "PUT", url: "/v2/a/b/manifests/v1", body: manifest,
			header: map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, code: 400, errCode: "MANIFEST_BLOB_UNKNOWN"},
		{name: "config", method: "POST", url: "/v2/a/b/blobs/uploads/?digest=" + cd.String(), body: config, code: 201},
		{name: "manifest by tag", method: "PUT", url: "/v2/a/b/manifests/v1", body: manifest,
			header: map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, code: 201,
			want: map[string]string{"Docker-Content-Digest": md.String(), "Location": "/v2/a/b/manifests/" + md.String()}},
		{name: "manifest wrong digest", method: "PUT", url: "/v2/a/b/manifests/" + cd.String(), body: manifest, code: 400, errCode: "DIGEST_INVALID"},
		{name: "manifest not json", method: "PUT", url: "/v2/a/b/manifests/v2", body: "nope", code: 400, errCode: "MANIFEST_INVALID"},
		{name: "bad tag", method: "PUT", url: "/v2/a/b/manifests/-bad", body: manifest, code: 400, errCode: "TAG_INVALID"},
		{name: "second tag", method: "PUT", url: "/v2/a/b/manifests/v2", body: manifest, code: 201},
		{name: "get by tag", method: "GET", url: "/v2/a/b/manifests/v1", code: 200,
			want: map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json", "Docker-Content-Digest": md.String()}, inBody: `"schemaVersion":2`},
		{name: "head by digest", method: "HEAD", url: "/v2/a/b/manifests/" + md.String(), code: 200},
		{name: "tags", method: "GET", url: "/v2/a/b/tags/list", code: 200, inBody: `"tags":["v1","v2"]`},
		{name: "tags page", method: "GET", url: "/v2/a/b/tags/list?n=1", code: 200, inBody: `"tags":["v1"]`,
			want: map[string]string{"Link": `</v2/a/b/tags/list?last=v1&n=1>; rel="next"`}},
		{name: "tags after", method: "GET", url: "/v2/a/b/tags/list?n=1&last=v1", code: 200, inBody: `"tags":["v2"]`},
		{name: "catalog", method: "GET", url: "/v2/_catalog", code: 200, inBody: `{"repositories":["a/b","c/d"]}`},
		{name: "artifact with subject", method: "PUT", url: "/v2/a/b/manifests/" + ad.String(), body: artifact, code: 201,
			want: map[string]string{"OCI-Subject": md.String()}},
		{name: "referrers", method: "GET", url: "/v2/a/b/referrers/" + md.String(), code: 200, inBody: ad.String(),
			want: map[string]string{"Content-Type": "application/vnd.oci.image.index.v1+json"}},
		{name: "referrers filtered out", method: "GET", url: "/v2/a/b/referrers/" + md.String() + "?artifactType=application/x-other", code: 200,
			inBody: `"manifests":[]`, want: map[string]string{"OCI-Filters-Applied": "artifactType"}},
		{name: "delete tag", method: "DELETE", url: "/v2/a/b/manifests/v2", code: 202},
		{name: "deleted tag", method: "GET", url: "/v2/a/b/manifests/v2", code: 404, errCode: "MANIFEST_UNKNOWN"},
		{name: "delete manifest", method: "DELETE", url: "/v2/a/b/manifests/" + md.String(), code: 202},
		{name: "its tags went too", method: "GET", url: "/v2/a/b/manifests/v1", code: 404},
		{name: "delete blob", method: "DELETE", url: "/v2/a/b/blobs/" + ld.String(), code: 202},
		{name: "blob gone from repo", method: "HEAD", url: "/v2/a/b/blobs/" + ld.String(), code: 404},
		{name: "still in mounted repo", method: "HEAD", url: "/v2/c/d/blobs/" + ld.String(), code: 200},
		{name: "method", method: "PATCH", url: "/v2/a/b/manifests/v1", code: 405, errCode: "UNSUPPORTED"},
	})
}

func TestChunkedUpload(t *testing.T) {
	srv := newTestServer(t)
	data := strings.Repeat("x", 10) + strings.Repeat("y", 10)
	d := digest.FromString(data)
	resp, err := http.Post(srv.URL+"/v2/r/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("POST = %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	run(t, srv, []step{
		{name: "status empty", method: "GET", url: loc, code: 204, want: map[string]string{"Range": "0-0"}},
		{name: "first chunk", method: "PATCH", url: loc, body: data[:10], header: map[string]string{"Content-Range": "0-9"}, code: 202,
			want: map[string]string{"Range": "0-9", "Location": loc}},
		{name: "out of order", method: "PATCH", url: loc, body: data[:5], header: map[string]string{"Content-Range": "15-19"}, code: 416,
			want: map[string]string{"Range": "0-9"}},
		{name: "wrong length", method: "PATCH", url: loc, body: data[10:12], header: map[string]string{"Content-Range": "10-19"}, code: 416},
		{name: "status", method: "GET", url: loc, code: 204, want: map[string]string{"Range": "0-9"}},
		{name: "last chunk with put", method: "PUT", url: loc + "?digest=" + d.String(), body: data[10:], header: map[string]string{"Content-Range": "10-19"}, code: 201,
			want: map[string]string{"Docker-Content-Digest": d.String()}},
		{name: "upload gone", method: "GET", url: loc, code: 404, errCode: "BLOB_UPLOAD_UNKNOWN"},
		{name: "blob there", method: "GET", url: "/v2/r/blobs/" + d.String(), code: 200, inBody: data},
		{name: "bogus upload id", method: "PATCH", url: "/v2/r/blobs/uploads/../../x", code: 404},
	})
}

func TestNewNeedsStorage(t *testing.T) {
	if _, err := registry.New(); err == nil {
		t.Fatal("New() without storage succeeded")
	}
}

func TestAccessLog(t *testing.T) {
	var buf bytes.Buffer
	store, err := storage.New(inmemory.New())
	if err != nil {
		t.Fatal(err)
	}
	h, err := registry.New(registry.WithStore(store), registry.WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v2/a/b/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var line struct {
		Msg, Method, Path string
		Status            int
		Bytes             int64
		Remote            string
		DurationMS        float64 `json:"duration_ms"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &line); err != nil {
		t.Fatalf("access log is not one JSON line: %q: %v", buf.String(), err)
	}
	if line.Msg != "access" || line.Method != "GET" || line.Path != "/v2/a/b/tags/list" || line.Status != 404 || line.Bytes == 0 || line.Remote == "" {
		t.Fatalf("access log line %+v", line)
	}
}
