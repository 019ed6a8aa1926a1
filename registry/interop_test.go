package registry_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	regBinOnce sync.Once
	regBin     string
	regBinDir  string
	regBinErr  error
)

// TestMain removes the binary built for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if regBinDir != "" {
		os.RemoveAll(regBinDir)
	}
	os.Exit(code)
}

// registryBin is the berth-registry binary: from $BERTH_BIN or built once.
func registryBin(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("BERTH_BIN"); dir != "" {
		if p := filepath.Join(dir, "berth-registry"); fileExists(p) {
			return p
		}
	}
	regBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-registry-bin-")
		if err != nil {
			regBinErr = err
			return
		}
		regBinDir = dir
		regBin = filepath.Join(dir, "berth-registry")
		cmd := exec.Command("go", "build", "-o", regBin, "./cmd/berth-registry")
		cmd.Dir = testutil.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			regBinErr = fmt.Errorf("build berth-registry: %v\n%s", err, out)
		}
	})
	if regBinErr != nil {
		t.Fatal(regBinErr)
	}
	return regBin
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// regProc is a running `berth-registry serve`.
type regProc struct {
	t    *testing.T
	bin  string
	root string
	addr string
}

// startRegistry runs the binary on a free loopback port with accounts alice
// and bob; it is stopped (SIGTERM) when the test ends.
func startRegistry(t *testing.T, extra ...string) *regProc {
	t.Helper()
	bin := registryBin(t)
	root := t.TempDir()
	for _, u := range []string{"alice", "bob"} {
		if r := testutil.Run(t, nil, strings.NewReader(u+"-pw\n"), bin, "user", "add", u, "--password-stdin", "--root", root); r.ExitCode != 0 {
			t.Fatalf("user add %s: %s", u, r)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	logf, err := os.Create(filepath.Join(t.TempDir(), "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--addr", addr, "--root", root}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("registry log (tail):\n%s", tail(string(b), 30))
		}
	})
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i > 200 {
			t.Fatalf("registry did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &regProc{t: t, bin: bin, root: root, addr: addr}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (r *regProc) cli(args ...string) testutil.Result {
	r.t.Helper()
	return testutil.Run(r.t, nil, nil, r.bin, append(args, "--root", r.root)...)
}

// writeOCILayout writes a one-layer busybox image as an OCI layout tagged tag
// and returns the manifest digest.
func writeOCILayout(t *testing.T, dir, tag string) digest.Digest {
	t.Helper()
	bb, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Skip("busybox-static not installed")
	}
	var tarBuf bytes.Buffer
	if err := testutil.WriteBusyboxTar(&tarBuf, bb, []string{"sh", "echo", "cat", "ls"}); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarBuf.Bytes())
	zw.Close()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		if err := os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	layer := put(gz.Bytes())
	cfg, _ := json.Marshal(v1.Image{
		Platform: v1.Platform{OS: "linux", Architecture: "amd64"},
		Config:   v1.ImageConfig{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}},
		RootFS:   v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(tarBuf.Bytes())}},
	})
	cd := put(cfg)
	man, _ := json.Marshal(v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: cd, Size: int64(len(cfg))},
		Layers:    []v1.Descriptor{{MediaType: v1.MediaTypeImageLayerGzip, Digest: layer, Size: int64(gz.Len())}},
	})
	md := put(man)
	idx, _ := json.Marshal(v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: []v1.Descriptor{{MediaType: v1.MediaTypeImageManifest, Digest: md, Size: int64(len(man)),
			Annotations: map[string]string{v1.AnnotationRefName: tag}}},
	})
	os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	return md
}

func skopeo(t *testing.T, args ...string) testutil.Result {
	t.Helper()
	return testutil.Run(t, nil, nil, "skopeo", args...)
}

func TestSkopeoInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test skipped in -short mode")
	}
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo not installed")
	}
	reg := startRegistry(t, "--auth")
	src := t.TempDir()
	md := writeOCILayout(t, src, "v1")
	ref := "docker://" + reg.addr + "/alice/busybox:v1"
	tlsOff := "--dest-tls-verify=false"

	if r := skopeo(t, "copy", tlsOff, "--dest-creds", "alice:wrong", "oci:"+src+":v1", ref); r.ExitCode == 0 {
		t.Fatalf("copy with a wrong password succeeded")
	}
	if r := skopeo(t, "copy", tlsOff, "--dest-creds", "bob:bob-pw", "oci:"+src+":v1", ref); r.ExitCode == 0 {
		t.Fatalf("bob pushed into alice's namespace")
	}
	if r := skopeo(t, "copy", tlsOff, "--dest-creds", "alice:alice-pw", "oci:"+src+":v1", ref); r.ExitCode != 0 {
		t.Fatalf("copy in: %s", r)
	}
	r := skopeo(t, "inspect", "--tls-verify=false", "--creds", "alice:alice-pw", "--raw", ref)
	if r.ExitCode != 0 || digest.FromString(r.Stdout) != md {
		t.Fatalf("inspect by owner: manifest %s, want %s: %s", digest.FromString(r.Stdout), md, r)
	}
	for _, creds := range [][]string{{"--no-creds"}, {"--creds", "bob:bob-pw"}} {
		args := append([]string{"inspect", "--tls-verify=false"}, creds...)
		if r := skopeo(t, append(args, ref)...); r.ExitCode == 0 {
			t.Errorf("private repository visible with %v", creds)
		}
	}
	dst := t.TempDir()
	if r := skopeo(t, "copy", "--src-tls-verify=false", "--src-creds", "alice:alice-pw", ref, "oci:"+dst+":v1"); r.ExitCode != 0 {
		t.Fatalf("copy out: %s", r)
	}
	if !fileExists(filepath.Join(dst, "blobs", "sha256", md.Encoded())) {
		t.Fatalf("copied-out layout lacks manifest %s", md)
	}

	if r := reg.cli("repo", "visibility", "alice/busybox", "public"); r.ExitCode != 0 {
		t.Fatalf("visibility: %s", r)
	}
	if r := skopeo(t, "inspect", "--tls-verify=false", "--no-creds", ref); r.ExitCode != 0 {
		t.Fatalf("public repository not pullable anonymously: %s", r)
	}
	anon := t.TempDir()
	if r := skopeo(t, "copy", "--src-tls-verify=false", "--src-no-creds", ref, "oci:"+anon+":v1"); r.ExitCode != 0 {
		t.Fatalf("anonymous copy out of public repository: %s", r)
	}
	if r := skopeo(t, "list-tags", "--tls-verify=false", "--no-creds", "docker://"+reg.addr+"/alice/busybox"); r.ExitCode != 0 || !strings.Contains(r.Stdout, `"v1"`) {
		t.Fatalf("list-tags: %s", r)
	}
	if r := skopeo(t, "delete", "--tls-verify=false", "--creds", "bob:bob-pw", ref); r.ExitCode == 0 {
		t.Fatalf("bob deleted alice's public image")
	}
}

// dockerd is Debian's docker.io daemon on its own roots and socket.
type dockerd struct {
	t      *testing.T
	root   string
	socket string
	cfg    string
}

func startDockerd(t *testing.T, registryAddr string) *dockerd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("dockerd interop needs root")
	}
	if testing.Short() {
		t.Skip("interop test skipped in -short mode")
	}
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		t.Skip("dockerd (docker.io) not installed")
	}
	testutil.DockerCLI(t)
	root, err := os.MkdirTemp("", "berth-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	d := &dockerd{t: t, root: root, socket: filepath.Join(root, "docker.sock"), cfg: filepath.Join(root, "config")}
	os.MkdirAll(d.cfg, 0o700)
	logf, _ := os.Create(filepath.Join(root, "dockerd.log"))
	cmd := exec.Command(bin,
		"--data-root", filepath.Join(root, "data"),
		"--exec-root", filepath.Join(root, "exec"),
		"--pidfile", filepath.Join(root, "dockerd.pid"),
		"-H", "unix://"+d.socket,
		"--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
		"--insecure-registry", registryAddr,
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("dockerd log (tail):\n%s", tail(string(b), 40))
		}
		testutil.UnmountUnder(root)
		os.RemoveAll(root)
	})
	for i := 0; ; i++ {
		if r := d.docker(nil, "version", "--format", "{{.Server.Version}}"); r.ExitCode == 0 {
			break
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("dockerd exited:\n%s", tail(string(b), 40))
		default:
		}
		if i > 120 {
			t.Fatal("dockerd did not come up in 60s")
		}
		time.Sleep(500 * time.Millisecond)
	}
	return d
}

func (d *dockerd) docker(stdin *strings.Reader, args ...string) testutil.Result {
	d.t.Helper()
	env := []string{"DOCKER_HOST=unix://" + d.socket, "DOCKER_CONFIG=" + d.cfg, "DOCKER_CLI_HINTS=false"}
	if stdin == nil {
		return testutil.Run(d.t, env, nil, testutil.DockerCLI(d.t), args...)
	}
	return testutil.Run(d.t, env, stdin, testutil.DockerCLI(d.t), args...)
}

func TestDockerDaemonInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test skipped in -short mode")
	}
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo not installed (used to build the test image archive)")
	}
	reg := startRegistry(t, "--auth")
	d := startDockerd(t, reg.addr)

	// The image reaches the daemon through docker load of an archive.
	layout := t.TempDir()
	writeOCILayout(t, layout, "v1")
	image := reg.addr + "/alice/hello:v1"
	archive := filepath.Join(t.TempDir(), "img.tar")
	if r := skopeo(t, "copy", "oci:"+layout+":v1", "docker-archive:"+archive+":"+image); r.ExitCode != 0 {
		t.Fatalf("make archive: %s", r)
	}
	if r := d.docker(nil, "load", "-i", archive); r.ExitCode != 0 {
		t.Fatalf("docker load: %s", r)
	}

	if r := d.docker(strings.NewReader("wrong\n"), "login", reg.addr, "-u", "alice", "--password-stdin"); r.ExitCode == 0 {
		t.Fatalf("login with a wrong password succeeded")
	}
	if r := d.docker(nil, "push", image); r.ExitCode == 0 {
		t.Fatalf("anonymous push succeeded")
	}
	if r := d.docker(strings.NewReader("bob-pw\n"), "login", reg.addr, "-u", "bob", "--password-stdin"); r.ExitCode != 0 {
		t.Fatalf("bob login: %s", r)
	}
	if r := d.docker(nil, "push", image); r.ExitCode == 0 {
		t.Fatalf("bob pushed into alice's namespace")
	}
	if r := d.docker(strings.NewReader("alice-pw\n"), "login", reg.addr, "-u", "alice", "--password-stdin"); r.ExitCode != 0 {
		t.Fatalf("alice login: %s", r)
	}
	if r := d.docker(nil, "push", image); r.ExitCode != 0 {
		t.Fatalf("docker push: %s", r)
	}
	if r := d.docker(nil, "rmi", image); r.ExitCode != 0 {
		t.Fatalf("docker rmi: %s", r)
	}
	if r := d.docker(nil, "pull", image); r.ExitCode != 0 {
		t.Fatalf("docker pull: %s", r)
	}
	if r := d.docker(nil, "image", "inspect", image); r.ExitCode != 0 {
		t.Fatalf("pulled image missing: %s", r)
	}

	// Another account cannot pull the private repository; neither can anyone
	// logged out; once public, anyone can.
	d.docker(nil, "rmi", image)
	if r := d.docker(strings.NewReader("bob-pw\n"), "login", reg.addr, "-u", "bob", "--password-stdin"); r.ExitCode != 0 {
		t.Fatalf("bob login: %s", r)
	}
	if r := d.docker(nil, "pull", image); r.ExitCode == 0 {
		t.Fatalf("bob pulled alice's private repository")
	}
	if r := d.docker(nil, "logout", reg.addr); r.ExitCode != 0 {
		t.Fatalf("logout: %s", r)
	}
	if r := d.docker(nil, "pull", image); r.ExitCode == 0 {
		t.Fatalf("anonymous pull of a private repository succeeded")
	}
	if r := reg.cli("repo", "visibility", "alice/hello", "public"); r.ExitCode != 0 {
		t.Fatalf("visibility: %s", r)
	}
	if r := d.docker(nil, "pull", image); r.ExitCode != 0 {
		t.Fatalf("anonymous pull of a public repository: %s", r)
	}
}
