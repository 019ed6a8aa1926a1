package registry_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

type pushed struct {
	repo, tag string
	manifest  digest.Digest
	blobs     []digest.Digest
}

// pushImage pushes a random two-layer image the way clients do: blobs
// first (each in its own upload), the manifest last.
func pushImage(addr, repo, tag string) (pushed, error) {
	p := pushed{repo: repo, tag: tag}
	var descs []string
	for i := range 3 {
		b := make([]byte, 4096+i)
		rand.Read(b)
		d := digest.FromBytes(b)
		resp, err := http.Post(fmt.Sprintf("http://%s/v2/%s/blobs/uploads/", addr, repo), "", nil)
		if err != nil {
			return p, err
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		req, _ := http.NewRequest("PUT", "http://"+addr+loc+"?digest="+d.String(), bytes.NewReader(b))
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			return p, err
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			return p, fmt.Errorf("blob put %s: %d", repo, resp.StatusCode)
		}
		p.blobs = append(p.blobs, d)
		mt := "application/vnd.oci.image.layer.v1.tar"
		if i == 0 {
			mt = "application/vnd.oci.image.config.v1+json"
		}
		descs = append(descs, fmt.Sprintf(`{"mediaType":"%s","digest":"%s","size":%d}`, mt, d, len(b)))
	}
	man := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}`, descs[0], strings.Join(descs[1:], ","))
	p.manifest = digest.FromString(man)
	req, _ := http.NewRequest("PUT", fmt.Sprintf("http://%s/v2/%s/manifests/%s", addr, repo, tag), strings.NewReader(man))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return p, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		return p, fmt.Errorf("manifest put %s:%s: %d %s", repo, tag, resp.StatusCode, b)
	}
	return p, nil
}

// pullImage fetches the tag and every blob, verifying digests.
func pullImage(addr string, p pushed) error {
	get := func(path string, want digest.Digest) error {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET %s: %d", path, resp.StatusCode)
		}
		got, err := want.Algorithm().FromReader(resp.Body)
		if err != nil || got != want {
			return fmt.Errorf("GET %s: digest %s, want %s (%v)", path, got, want, err)
		}
		return nil
	}
	if err := get("/v2/"+p.repo+"/manifests/"+p.tag, p.manifest); err != nil {
		return err
	}
	for _, b := range p.blobs {
		if err := get("/v2/"+p.repo+"/blobs/"+b.String(), b); err != nil {
			return err
		}
	}
	return nil
}

func TestGCWhileServing(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped in -short mode")
	}
	reg := startRegistry(t)
	var kept, dropped []pushed
	for i := range 6 {
		p, err := pushImage(reg.addr, fmt.Sprintf("team/app%d", i%2), fmt.Sprintf("old%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			kept = append(kept, p)
			continue
		}
		req, _ := http.NewRequest("DELETE", fmt.Sprintf("http://%s/v2/%s/manifests/%s", reg.addr, p.repo, p.tag), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 202 {
			t.Fatalf("untag %s:%s: %v %v", p.repo, p.tag, err, resp)
		}
		resp.Body.Close()
		dropped = append(dropped, p)
	}
	// Make everything so far older than the grace period.
	old := time.Now().Add(-2 * time.Hour)
	filepath.WalkDir(reg.root, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			os.Chtimes(p, old, old)
		}
		return nil
	})

	// Push new images while collections run.
	var mu sync.Mutex
	var fresh []pushed
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				p, err := pushImage(reg.addr, fmt.Sprintf("team/app%d", w%2), fmt.Sprintf("new-%d-%d", w, i))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				fresh = append(fresh, p)
				mu.Unlock()
			}
		}()
	}
	var reports []string
	for range 3 {
		r := reg.cli("gc", "--grace", "1h")
		if r.ExitCode != 0 {
			t.Fatalf("gc: %s", r)
		}
		reports = append(reports, strings.TrimSpace(r.Stdout))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("push during gc: %v", err)
	}
	t.Logf("gc reports:\n%s", strings.Join(reports, "\n"))
	freed := regexp.MustCompile(`freed (\d+) bytes: (\d+) blobs`).FindStringSubmatch(reports[0])
	if freed == nil || freed[1] == "0" {
		t.Fatalf("first gc freed nothing: %q", reports[0])
	}
	for _, p := range append(kept, fresh...) {
		if err := pullImage(reg.addr, p); err != nil {
			t.Errorf("tagged image %s:%s damaged by gc: %v", p.repo, p.tag, err)
		}
	}
	for _, p := range dropped {
		resp, err := http.Get("http://" + reg.addr + "/v2/" + p.repo + "/manifests/" + p.manifest.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("untagged manifest %s survived gc: %d", p.manifest, resp.StatusCode)
		}
	}
	if r := reg.cli("gc", "--dry-run", "--grace", "0s"); r.ExitCode != 0 || !strings.Contains(r.Stdout, "would free") {
		t.Fatalf("dry run: %s", r)
	}
}

// TestGCInterval: `serve --gc-interval` collects by itself.
func TestGCInterval(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped in -short mode")
	}
	// A grace period keeps a collection that runs between the blob uploads and
	// the manifest put from taking the blobs of the push in flight.
	reg := startRegistry(t, "--gc-interval", "100ms", "--gc-grace", "2s")
	p, err := pushImage(reg.addr, "team/tmp", "v1")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("DELETE", fmt.Sprintf("http://%s/v2/team/tmp/manifests/%s", reg.addr, p.manifest), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("delete manifest: %v %v", err, resp)
	}
	resp.Body.Close()
	blob := filepath.Join(reg.root, "blobs", "sha256", p.blobs[1].Encoded()[:2], p.blobs[1].Encoded(), "data")
	for i := 0; fileExists(blob); i++ {
		if i > 600 {
			t.Fatalf("unreferenced blob %s still on disk after a minute of --gc-interval 100ms", p.blobs[1])
		}
		time.Sleep(100 * time.Millisecond)
	}
}
