package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// startBerthRegistry runs berth-registry on a free loopback port; with
// auth it has the account alice/secret. It returns host:port.
func startBerthRegistry(t *testing.T, auth bool, extra ...string) string {
	t.Helper()
	bin := testutil.Bin(t, "berth-registry")
	root := t.TempDir()
	if auth {
		cmd := exec.Command(bin, "user", "add", "alice", "--password-stdin", "--root", root)
		cmd.Stdin = strings.NewReader("secret\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("user add: %v\n%s", err, out)
		}
	}
	addr := freeAddr(t)
	args := []string{"serve", "--addr", addr, "--root", root}
	if auth {
		args = append(args, "--auth")
	}
	args = append(args, extra...)
	startServer(t, exec.Command(bin, args...), addr)
	return addr
}

// startDistribution runs Debian's docker-registry (distribution 2.8), or skips.
func startDistribution(t *testing.T) string {
	t.Helper()
	bin := "/usr/bin/docker-registry"
	if _, err := os.Stat(bin); err != nil {
		t.Skip("docker-registry not installed")
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	startServer(t, exec.Command(bin, "serve", filepath.Join(dir, "config.yml")), addr)
	return addr
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startServer(t *testing.T, cmd *exec.Cmd, addr string) {
	t.Helper()
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	for i := 0; i < 200; i++ {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-done:
			t.Fatalf("%s exited: %s", cmd.Path, log.String())
		case <-time.After(25 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not answer on %s", cmd.Path, addr)
}

// pushPullRoundTrip pushes busybox to repo with the docker CLI, removes it,
// and pulls it back by tag and by digest with both CLIs.
func pushPullRoundTrip(t *testing.T, d *testutil.Daemon, repo string) {
	must(t, d.Docker("tag", "busybox", repo+":v1"))
	r := must(t, d.Docker("push", repo+":v1"))
	if !strings.Contains(r.Stdout, "v1: digest: sha256:") || !strings.Contains(r.Stdout, "Pushed") {
		t.Fatalf("push output:\n%s", r.Stdout)
	}
	dgst := strings.Fields(r.Stdout[strings.Index(r.Stdout, "v1: digest: ")+len("v1: digest: "):])[0]
	r = must(t, d.Docker("push", repo+":v1"))
	if !strings.Contains(r.Stdout, "Layer already exists") {
		t.Fatalf("second push should find the layer:\n%s", r.Stdout)
	}
	// berth's own push: same image, same manifest, so the same digest.
	must(t, d.Berth("tag", "busybox", repo+":v2"))
	r = must(t, d.Berth("push", repo+":v2"))
	if !strings.Contains(r.Stdout, "v2: digest: "+dgst) || !strings.Contains(r.Stdout, "Layer already exists") {
		t.Fatalf("berth push output:\n%s", r.Stdout)
	}
	for _, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			must(t, c.run("rmi", repo+":v1"))
			r := must(t, c.run("pull", repo+":v1"))
			if !strings.Contains(r.Stdout, "Status: Downloaded newer image for "+repo+":v1") || !strings.Contains(r.Stdout, "Digest: "+dgst) {
				t.Fatalf("pull output:\n%s", r.Stdout)
			}
			r = must(t, c.run("run", "--rm", repo+":v1", "echo", "pulled"))
			if r.Stdout != "pulled\n" {
				t.Fatalf("run output %q", r.Stdout)
			}
			r = must(t, c.run("pull", repo+"@"+dgst))
			if !strings.Contains(r.Stdout, "Image is up to date") {
				t.Fatalf("pull by digest output:\n%s", r.Stdout)
			}
			r = must(t, c.run("image", "inspect", "-f", "{{json .RepoDigests}}", repo+":v1"))
			if !strings.Contains(r.Stdout, repo+"@"+dgst) {
				t.Fatalf("repo digests %s", r.Stdout)
			}
		})
	}
	// pull -a: every tag the registry lists.
	must(t, d.Docker("rmi", repo+":v1", repo+":v2"))
	must(t, d.Docker("pull", "-a", repo))
	for _, tag := range []string{"v1", "v2"} {
		must(t, d.Docker("image", "inspect", repo+":"+tag))
	}
}

func TestPushPullBerthRegistry(t *testing.T) {
	d := newDaemon(t)
	testutil.DockerCLI(t)
	pushPullRoundTrip(t, d, startBerthRegistry(t, false)+"/team/busybox")
}

func TestPushPullDistribution(t *testing.T) {
	d := newDaemon(t)
	testutil.DockerCLI(t)
	addr := startDistribution(t)
	pushPullRoundTrip(t, d, addr+"/team/busybox")
	// A second repository gets the layer by a cross-repository mount.
	must(t, d.Docker("tag", "busybox", addr+"/other/busybox:v1"))
	r := must(t, d.Docker("push", addr+"/other/busybox:v1"))
	if !strings.Contains(r.Stdout, "Mounted from team/busybox") {
		t.Fatalf("push to a second repository should mount:\n%s", r.Stdout)
	}
}

func TestPullPushLoginWithAccounts(t *testing.T) {
	d := newDaemon(t)
	testutil.DockerCLI(t)
	addr := startBerthRegistry(t, true)
	repo := addr + "/alice/busybox"
	must(t, d.Docker("tag", "busybox", repo+":v1"))
	if r := d.DockerIn(strings.NewReader("wrong\n"), "login", "-u", "alice", "--password-stdin", addr); r.ExitCode == 0 ||
		!strings.Contains(r.Stderr, "incorrect username or password") {
		t.Fatalf("login with a wrong password: %s", r)
	}
	r := must(t, d.DockerIn(strings.NewReader("secret\n"), "login", "-u", "alice", "--password-stdin", addr))
	if !strings.Contains(r.Stdout, "Login Succeeded") {
		t.Fatalf("login: %s", r)
	}
	// The berth CLI, with its own config directory.
	cfg := t.TempDir()
	berth := func(stdin string, args ...string) testutil.Result {
		return d.BerthIn(strings.NewReader(stdin), append([]string{"--config", cfg}, args...)...)
	}
	if r := berth("wrong\n", "login", "-u", "alice", "--password-stdin", addr); r.ExitCode == 0 {
		t.Fatalf("berth login with a wrong password: %s", r)
	}
	must(t, berth("secret\n", "login", "-u", "alice", "--password-stdin", addr))
	must(t, d.Berth("tag", "busybox", addr+"/alice/berth:v1"))
	must(t, berth("", "push", addr+"/alice/berth:v1"))
	must(t, d.Berth("rmi", addr+"/alice/berth:v1"))
	must(t, berth("", "pull", addr+"/alice/berth:v1"))
	must(t, berth("", "logout", addr))
	must(t, d.Berth("rmi", addr+"/alice/berth:v1"))
	if r := berth("", "pull", addr+"/alice/berth:v1"); r.ExitCode == 0 || !strings.Contains(r.Stderr, "pull access denied") {
		t.Fatalf("berth pull after logout: %s", r)
	}
	must(t, d.Docker("push", repo+":v1"))
	// A second repository of the account gets the layer by a mount, the token covering both.
	must(t, d.Docker("tag", "busybox", addr+"/alice/copy:v1"))
	if r := must(t, d.Docker("push", addr+"/alice/copy:v1")); !strings.Contains(r.Stdout, "Mounted from alice/busybox") {
		t.Fatalf("push to a second repository should mount:\n%s", r.Stdout)
	}
	must(t, d.Docker("rmi", repo+":v1"))
	must(t, d.Docker("pull", repo+":v1"))
	must(t, d.Docker("logout", addr))
	must(t, d.Docker("rmi", repo+":v1"))
	r = d.Docker("pull", repo+":v1")
	if r.ExitCode == 0 || !strings.Contains(r.Stderr, "pull access denied for "+repo+", repository does not exist or may require 'docker login'") {
		t.Fatalf("anonymous pull of a private repository: %s", r)
	}
	// The API answers with a status before streaming.
	resp := apiPost(t, d, "/images/create?fromImage="+repo+"&tag=v1")
	if resp != http.StatusNotFound {
		t.Fatalf("anonymous pull status %d, want 404", resp)
	}
	if code := apiPost(t, d, "/images/"+repo+"/push?tag=v1"); code != http.StatusNotFound && code != http.StatusUnauthorized {
		t.Fatalf("push of a missing image status %d", code)
	}
}

func apiPost(t *testing.T, d *testutil.Daemon, path string) int {
	t.Helper()
	resp, err := d.HTTPClient().Post("http://berth"+path, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// fakeRegistry serves fixed manifests and blobs over the distribution API
// and counts blob requests; hooks let a test break it.
type fakeRegistry struct {
	mu        sync.Mutex
	manifests map[string][]byte // tag or digest -> body
	types     map[string]string
	blobs     map[digest.Digest][]byte
	gets      map[digest.Digest]int
	// corrupt serves these blobs with one byte changed.
	corrupt map[digest.Digest]bool
	// cut makes the first GET of these blobs stop half way.
	cut map[digest.Digest]bool
	// block holds GETs of these blobs until the channel closes.
	block map[digest.Digest]chan struct{}
	delay time.Duration
	srv   *httptest.Server
}

func newFakeRegistry(t *testing.T) *fakeRegistry {
	f := &fakeRegistry{manifests: map[string][]byte{}, types: map[string]string{}, blobs: map[digest.Digest][]byte{},
		gets: map[digest.Digest]int{}, corrupt: map[digest.Digest]bool{}, cut: map[digest.Digest]bool{},
		block: map[digest.Digest]chan struct{}{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeRegistry) host() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/v2/" {
		return
	}
	if i := strings.Index(p, "/manifests/"); i > 0 {
		ref := p[i+len("/manifests/"):]
		f.mu.Lock()
		b, ok := f.manifests[ref]
		mt := f.types[ref]
		f.mu.Unlock()
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`))
			return
		}
		w.Header().Set("Content-Type", mt)
		w.Header().Set("Docker-Content-Digest", digest.FromBytes(b).String())
		w.Write(b)
		return
	}
	if i := strings.Index(p, "/blobs/"); i > 0 {
		d := digest.Digest(p[i+len("/blobs/"):])
		f.mu.Lock()
		b, ok := f.blobs[d]
		f.gets[d]++
		n := f.gets[d]
		corrupt, cut := f.corrupt[d], f.cut[d] && n == 1
		delay, block := f.delay, f.block[d]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		time.Sleep(delay)
		if block != nil {
			select {
			case <-block:
			case <-r.Context().Done():
				return
			}
		}
		if corrupt {
			b = append([]byte{}, b...)
			b[len(b)/2] ^= 0xff
		}
		start := 0
		if rg := r.Header.Get("Range"); strings.HasPrefix(rg, "bytes=") {
			start, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(b)-1, len(b)))
			w.Header().Set("Content-Length", strconv.Itoa(len(b)-start))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		}
		if cut {
			w.Write(b[start : start+(len(b)-start)/2])
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		w.Write(b[start:])
		return
	}
	w.WriteHeader(http.StatusNotFound)
}

func (f *fakeRegistry) blobGets(d digest.Digest) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets[d]
}

// addImage stores a one-or-more-layer image for arch and returns its
// manifest descriptor and the layer digests.
func (f *fakeRegistry) addImage(t *testing.T, arch string, files ...map[string]string) (ocispec.Descriptor, []digest.Digest) {
	t.Helper()
	var layers []ocispec.Descriptor
	var diffIDs []digest.Digest
	for _, fs := range files {
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		for name, content := range fs {
			if name == compressionKey {
				continue
			}
			tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
			tw.Write([]byte(content))
		}
		tw.Close()
		diffIDs = append(diffIDs, digest.FromBytes(tb.Bytes()))
		var blob []byte
		mt := ocispec.MediaTypeImageLayerGzip
		switch fs[compressionKey] {
		case "zstd":
			zw, _ := zstd.NewWriter(nil)
			blob, mt = zw.EncodeAll(tb.Bytes(), nil), ocispec.MediaTypeImageLayerZstd
		case "none":
			blob, mt = tb.Bytes(), ocispec.MediaTypeImageLayer
		default:
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(tb.Bytes())
			zw.Close()
			blob = gz.Bytes()
		}
		d := digest.FromBytes(blob)
		f.blobs[d] = blob
		layers = append(layers, ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(blob))})
	}
	cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: arch},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}, Config: ocispec.ImageConfig{Cmd: []string{"sh"}}})
	cd := digest.FromBytes(cfg)
	f.blobs[cd] = cfg
	m, _ := json.Marshal(ocispec.Manifest{Versioned: ocispecVersioned, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(cfg))}, Layers: layers})
	md := digest.FromBytes(m)
	f.manifests[md.String()] = m
	f.types[md.String()] = ocispec.MediaTypeImageManifest
	var ds []digest.Digest
	for _, l := range layers {
		ds = append(ds, l.Digest)
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: md, Size: int64(len(m)),
		Platform: &ocispec.Platform{OS: "linux", Architecture: arch}}, ds
}

// compressionKey in a layer's file map picks its compression: "zstd", "none" (default gzip).
const compressionKey = "\x00compression"

func (f *fakeRegistry) tag(tag string, desc ocispec.Descriptor) {
	f.manifests[tag] = f.manifests[desc.Digest.String()]
	f.types[tag] = desc.MediaType
}

func TestPullIndexTwoPlatforms(t *testing.T) {
	d := testutil.StartDaemon(t)
	f := newFakeRegistry(t)
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	host, _ := f.addImage(t, runtime.GOARCH, map[string]string{"arch": runtime.GOARCH})
	foreign, _ := f.addImage(t, other, map[string]string{"arch": other})
	idx, _ := json.Marshal(ocispec.Index{Versioned: ocispecVersioned, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{foreign, host}})
	f.manifests["multi"] = idx
	f.types["multi"] = ocispec.MediaTypeImageIndex
	ref := f.host() + "/multi/app:multi"
	must(t, d.Berth("pull", ref))
	r := must(t, d.Berth("image", "inspect", "-f", "{{.Architecture}}", ref))
	if strings.TrimSpace(r.Stdout) != runtime.GOARCH {
		t.Fatalf("default pull chose %q, want the host's %s", r.Stdout, runtime.GOARCH)
	}
	must(t, d.Berth("pull", "--platform", "linux/"+other, ref))
	r = must(t, d.Berth("image", "inspect", "-f", "{{.Architecture}} {{json .RepoDigests}}", ref))
	if !strings.HasPrefix(r.Stdout, other+" ") || !strings.Contains(r.Stdout, digest.FromBytes(idx).String()) {
		t.Fatalf("--platform pull: %s (want %s and the index digest as repo digest)", r.Stdout, other)
	}
	if r := d.Berth("pull", "--platform", "linux/s390x", ref); r.ExitCode == 0 || !strings.Contains(r.Stderr, "no matching manifest for linux/s390x") {
		t.Fatalf("pull of a missing platform: %s", r)
	}
}

func TestPullWrongDigestRefused(t *testing.T) {
	d := testutil.StartDaemon(t)
	f := newFakeRegistry(t)
	desc, layers := f.addImage(t, runtime.GOARCH, map[string]string{"a": strings.Repeat("a", 100000)})
	f.tag("latest", desc)
	f.corrupt[layers[0]] = true
	r := d.Berth("pull", f.host()+"/bad/app")
	if r.ExitCode == 0 || !strings.Contains(r.Stdout+r.Stderr, "refusing it") {
		t.Fatalf("pull of a corrupt layer: %s", r)
	}
	if out := must(t, d.Berth("images", "-q")).Stdout; out != "" {
		t.Fatalf("images after a refused pull: %q", out)
	}
	if _, err := os.Stat(filepath.Join(d.DataRoot, "content", "blobs", "sha256", layers[0].Encoded())); err == nil {
		t.Fatal("the corrupt layer was stored")
	}
	ingest, _ := os.ReadDir(filepath.Join(d.DataRoot, "content", "ingest"))
	if len(ingest) != 0 {
		t.Fatalf("ingest files left: %v", ingest)
	}
}

func TestPullInterruptedResumes(t *testing.T) {
	d := testutil.StartDaemon(t)
	f := newFakeRegistry(t)
	desc, layers := f.addImage(t, runtime.GOARCH, map[string]string{"big": strings.Repeat("0123456789abcdef", 1<<16)}, map[string]string{"small": "x"})
	f.tag("latest", desc)
	f.cut[layers[0]] = true
	must(t, d.Berth("pull", f.host()+"/cut/app"))
	if n := f.blobGets(layers[0]); n != 2 {
		t.Fatalf("layer fetched %d times, want 2 (cut, then resumed)", n)
	}
	must(t, d.Berth("image", "inspect", f.host()+"/cut/app"))
}

func TestPullConcurrentSharesLayers(t *testing.T) {
	d := testutil.StartDaemon(t)
	f := newFakeRegistry(t)
	desc, layers := f.addImage(t, runtime.GOARCH, map[string]string{"one": "1"}, map[string]string{"two": "2"}, map[string]string{"three": "3"})
	f.tag("latest", desc)
	f.delay = 300 * time.Millisecond // keep both pulls in flight together
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(ctx, testutil.Bin(t, "berth"), "-H", d.Host(), "pull", f.host()+"/shared/app")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Logf("pull: %v\n%s", err, out)
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatal("a concurrent pull failed")
	}
	for _, l := range layers {
		if n := f.blobGets(l); n != 1 {
			t.Errorf("layer %s downloaded %d times, want 1", l, n)
		}
	}
	r := must(t, d.Berth("pull", f.host()+"/shared/app"))
	if strings.Count(r.Stdout, "Already exists") != 3 {
		t.Fatalf("third pull should find every layer:\n%s", r.Stdout)
	}
}

var ocispecVersioned = specs.Versioned{SchemaVersion: 2}

func TestPullDockerHubNameThroughMirror(t *testing.T) {
	f := newFakeRegistry(t)
	desc, _ := f.addImage(t, runtime.GOARCH, map[string]string{"hello": "world"})
	f.tag("latest", desc)
	d := testutil.StartDaemon(t, "--registry-mirror", f.srv.URL)
	r := must(t, d.Berth("pull", "busybox"))
	if !strings.Contains(r.Stdout, "latest: Pulling from library/busybox") || !strings.Contains(r.Stdout, "Status: Downloaded newer image for busybox:latest") ||
		!strings.Contains(r.Stdout, "docker.io/library/busybox:latest") {
		t.Fatalf("pull through the mirror:\n%s", r.Stdout)
	}
	r = must(t, d.Berth("image", "inspect", "-f", "{{json .RepoDigests}}", "busybox"))
	if !strings.Contains(r.Stdout, "busybox@"+desc.Digest.String()) {
		t.Fatalf("repo digests %s", r.Stdout)
	}
}

func TestPullCancelledThenResumed(t *testing.T) {
	d := testutil.StartDaemon(t)
	f := newFakeRegistry(t)
	desc, layers := f.addImage(t, runtime.GOARCH, map[string]string{"first": strings.Repeat("1", 50000)}, map[string]string{"second": "2"})
	f.tag("latest", desc)
	release := make(chan struct{})
	f.block[layers[1]] = release
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.Bin(t, "berth"), "-H", d.Host(), "pull", f.host()+"/cancel/app")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the first layer is in the content store, then drop the client.
	first := filepath.Join(d.DataRoot, "content", "blobs", "sha256", layers[0].Encoded())
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(first); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first layer never arrived")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	cmd.Wait()
	close(release)
	must(t, d.Berth("pull", f.host()+"/cancel/app"))
	if n := f.blobGets(layers[0]); n != 1 {
		t.Fatalf("first layer fetched %d times, want 1 (kept from the cancelled pull)", n)
	}
	must(t, d.Berth("image", "inspect", f.host()+"/cancel/app"))
	ingest, _ := os.ReadDir(filepath.Join(d.DataRoot, "content", "ingest"))
	if len(ingest) != 0 {
		t.Fatalf("ingest files left: %v", ingest)
	}
}

func TestPullLayerCompressions(t *testing.T) {
	d := testutil.StartDaemon(t)
	f := newFakeRegistry(t)
	desc, _ := f.addImage(t, runtime.GOARCH,
		map[string]string{"etc/gz": "gzip layer"},
		map[string]string{"etc/zst": "zstd layer", compressionKey: "zstd"},
		map[string]string{"etc/plain": "plain layer", compressionKey: "none"})
	f.tag("latest", desc)
	r := must(t, d.Berth("pull", f.host()+"/comp/app"))
	if strings.Count(r.Stdout, "Pull complete") != 3 {
		t.Fatalf("pull output:\n%s", r.Stdout)
	}
	r = must(t, d.Berth("image", "inspect", "-f", "{{len .RootFS.Layers}}", f.host()+"/comp/app"))
	if strings.TrimSpace(r.Stdout) != "3" {
		t.Fatalf("layers: %s", r.Stdout)
	}
	// Pushed back elsewhere, each layer keeps its blob (no recompression) and the manifest its digest.
	reg := startBerthRegistry(t, false)
	must(t, d.Berth("tag", f.host()+"/comp/app", reg+"/comp/app:v1"))
	r = must(t, d.Berth("push", reg+"/comp/app:v1"))
	if !strings.Contains(r.Stdout, "v1: digest: "+desc.Digest.String()) {
		t.Fatalf("push should keep the manifest digest %s:\n%s", desc.Digest, r.Stdout)
	}
}

func TestPushAuxMessage(t *testing.T) {
	d := newDaemon(t)
	reg := startBerthRegistry(t, false)
	must(t, d.Berth("tag", "busybox", reg+"/aux/busybox:v1"))
	req, _ := http.NewRequest(http.MethodPost, "http://berth/images/"+reg+"/aux/busybox/push?tag=v1", nil)
	req.Header.Set("X-Registry-Auth", "e30") // base64url of {}, unpadded
	resp, err := d.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var statuses []string
	var aux struct {
		Tag, Digest string
		Size        int
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var m struct {
			Status string          `json:"status"`
			Aux    json.RawMessage `json:"aux"`
			Error  string          `json:"error"`
		}
		if err := dec.Decode(&m); err != nil {
			break
		}
		if m.Error != "" {
			t.Fatalf("push error: %s", m.Error)
		}
		if m.Status != "" {
			statuses = append(statuses, m.Status)
		}
		if m.Aux != nil {
			json.Unmarshal(m.Aux, &aux)
		}
	}
	if aux.Tag != "v1" || !strings.HasPrefix(aux.Digest, "sha256:") || aux.Size <= 0 {
		t.Fatalf("aux %+v", aux)
	}
	want := fmt.Sprintf("v1: digest: %s size: %d", aux.Digest, aux.Size)
	if len(statuses) == 0 || statuses[0] != "The push refers to repository ["+reg+"/aux/busybox]" || statuses[len(statuses)-1] != want {
		t.Fatalf("statuses %q, want first the repository and last %q", statuses, want)
	}
}

// selfSigned writes a certificate for 127.0.0.1 that nobody trusts.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// A loopback registry is insecure: berthd finds that it speaks TLS and uses
// it without verifying the certificate, token realm included.
func TestPushPullLoopbackTLSWithAccounts(t *testing.T) {
	d := newDaemon(t)
	cert, key := selfSigned(t)
	addr := startBerthRegistry(t, true, "--tls-cert", cert, "--tls-key", key)
	cfg := t.TempDir()
	berth := func(stdin string, args ...string) testutil.Result {
		return d.BerthIn(strings.NewReader(stdin), append([]string{"--config", cfg}, args...)...)
	}
	must(t, berth("secret\n", "login", "-u", "alice", "--password-stdin", addr))
	must(t, d.Berth("tag", "busybox", addr+"/alice/tls:v1"))
	must(t, berth("", "push", addr+"/alice/tls:v1"))
	must(t, d.Berth("rmi", addr+"/alice/tls:v1"))
	r := must(t, berth("", "pull", addr+"/alice/tls:v1"))
	if !strings.Contains(r.Stdout, "Downloaded newer image") {
		t.Fatalf("pull over TLS:\n%s", r.Stdout)
	}
}
