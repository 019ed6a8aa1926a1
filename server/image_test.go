package server

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/internal/testutil"
)

func mustRun(t *testing.T, r testutil.Result) string {
	t.Helper()
	if r.ExitCode != 0 {
		t.Fatalf("command failed: %s", r)
	}
	return r.Stdout
}

func systemCheck(t *testing.T, d *testutil.Daemon, repair bool) image.CheckResult {
	t.Helper()
	url := "http://berth/berth/system/check"
	if repair {
		url += "?repair=1"
	}
	resp, err := d.HTTPClient().Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res image.CheckResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("system check: %d %v", resp.StatusCode, err)
	}
	return res
}

// TestImageCommandsWithDockerCLI drives every image command through the
// real docker CLI and checks what a user sees.
func TestImageCommandsWithDockerCLI(t *testing.T) {
	d := testutil.StartDaemon(t)
	testutil.DockerCLI(t)
	bb := testutil.BusyboxTar(t)
	id := strings.TrimSpace(mustRun(t, d.Docker("import", "-c", `CMD ["sh"]`, "-c", "LABEL team=a", "-m", "first", bb, "busybox:latest")))
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("import printed %q", id)
	}
	mustRun(t, d.Docker("tag", "busybox", "registry.local:5000/team/app:v1"))
	mustRun(t, d.Docker("import", bb))

	steps := []struct {
		args     []string
		exit     int
		contains []string
		absent   []string
	}{
		{[]string{"images"}, 0, []string{"busybox", "latest", id[7:19], "registry.local:5000/team/app", "<none>"}, nil},
		{[]string{"images", "-q", "--filter", "dangling=false"}, 0, []string{id[7:19]}, nil},
		{[]string{"images", "--filter", "reference=busy*", "--format", "{{.Repository}}:{{.Tag}}"}, 0, []string{"busybox:latest"}, []string{"team/app"}},
		{[]string{"images", "--filter", "label=team=a", "-q"}, 0, []string{id[7:19]}, nil},
		{[]string{"images", "--filter", "bogus=1"}, 1, nil, nil},
		{[]string{"images", "--digests"}, 0, []string{"DIGEST"}, nil},
		{[]string{"image", "inspect", "-f", "{{.Id}} {{.Config.Cmd}} {{.Comment}} {{.Os}}", "busybox"}, 0, []string{id + " [sh] first linux"}, nil},
		{[]string{"image", "inspect", "nope"}, 1, nil, nil},
		{[]string{"history", "busybox"}, 0, []string{id[7:19], "first"}, nil},
		{[]string{"history", "--no-trunc", "-q", "registry.local:5000/team/app:v1"}, 0, []string{id}, nil},
		{[]string{"rmi", "nope:1"}, 1, nil, nil},
		{[]string{"rmi", id[7:19]}, 1, nil, nil}, // two names: must be forced
		{[]string{"rmi", "registry.local:5000/team/app:v1"}, 0, []string{"Untagged: registry.local:5000/team/app:v1"}, []string{"Deleted"}},
		{[]string{"system", "df"}, 0, []string{"Images", "2"}, nil},
		{[]string{"image", "prune", "-f"}, 0, []string{"Deleted Images", "deleted: sha256:"}, []string{id}},
		{[]string{"images", "-q"}, 0, []string{id[7:19]}, nil},
	}
	for _, s := range steps {
		r := d.Docker(s.args...)
		if r.ExitCode != s.exit && !(s.exit == 1 && r.ExitCode != 0) {
			t.Fatalf("docker %v: exit %d, want %d\n%s", s.args, r.ExitCode, s.exit, r)
		}
		out := r.Stdout + r.Stderr
		for _, c := range s.contains {
			if !strings.Contains(out, c) {
				t.Errorf("docker %v: output lacks %q:\n%s", s.args, c, out)
			}
		}
		for _, c := range s.absent {
			if strings.Contains(out, c) {
				t.Errorf("docker %v: output has %q:\n%s", s.args, c, out)
			}
		}
	}

	// save, rmi, load: the same image comes back.
	archive := filepath.Join(d.Root, "bb.tar")
	mustRun(t, d.Docker("save", "-o", archive, "busybox"))
	if out := mustRun(t, d.Docker("rmi", "busybox")); !strings.Contains(out, "Deleted: "+id) {
		t.Errorf("rmi output %q", out)
	}
	f, _ := os.Open(archive)
	out := mustRun(t, d.DockerIn(f, "load"))
	f.Close()
	if !strings.Contains(out, "Loaded image: busybox:latest") {
		t.Errorf("load output %q", out)
	}
	if got := strings.TrimSpace(mustRun(t, d.Docker("image", "inspect", "-f", "{{.Id}}", "busybox"))); got != id {
		t.Errorf("loaded id %s, want %s", got, id)
	}
	// A container keeps its image from plain rmi.
	mustRun(t, d.Docker("create", "--name", "user", "busybox", "true"))
	if r := d.Docker("rmi", id); r.ExitCode == 0 || !strings.Contains(r.Stderr, "must be forced") && !strings.Contains(r.Stderr, "must force") {
		t.Errorf("rmi of a used image: %s", r)
	}
	mustRun(t, d.Docker("rm", "user"))
	mustRun(t, d.Docker("image", "prune", "-a", "-f"))
	if out := mustRun(t, d.Docker("images", "-q")); strings.TrimSpace(out) != "" {
		t.Errorf("images left after prune -a: %q", out)
	}
	if res := systemCheck(t, d, false); len(res.Problems) != 0 {
		t.Errorf("check: %+v", res.Problems)
	}
	if entries, _ := os.ReadDir(filepath.Join(d.DataRoot, "content", "blobs", "sha256")); len(entries) != 0 {
		t.Errorf("%d blobs left after everything was removed", len(entries))
	}
	if entries, _ := os.ReadDir(filepath.Join(d.DataRoot, "snapshots")); len(entries) != 0 {
		t.Errorf("%d snapshot dirs left after everything was removed", len(entries))
	}
}

// bigImageArchive makes a docker-format archive of three layers with many
// files (about 24 MB), so that a load takes long enough to be killed midway.
func bigImageArchive(t *testing.T, d *testutil.Daemon, tag string) string {
	t.Helper()
	var layers [][]byte
	for l := 0; l < 3; l++ {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for i := 0; i < 400; i++ {
			data := make([]byte, 20000)
			rand.Read(data)
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("l%d/f%d", l, i), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Unix(1, 0)})
			tw.Write(data)
		}
		tw.Close()
		layers = append(layers, buf.Bytes())
	}
	path := filepath.Join(d.Root, strings.ReplaceAll(tag, ":", "_")+".tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Import each layer as its own image, then stitch a 3-layer archive.
	tw := tar.NewWriter(f)
	var diffIDs []string
	var names []string
	for i, l := range layers {
		name := fmt.Sprintf("layer%d/layer.tar", i)
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(l)), Typeflag: tar.TypeReg})
		tw.Write(l)
		diffIDs = append(diffIDs, fmt.Sprintf("sha256:%x", sha256Sum(l)))
		names = append(names, name)
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": time.Now().UTC(),
		"config": map[string]any{"Cmd": []string{"sh"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	cfgName := fmt.Sprintf("%x.json", sha256Sum(cfg))
	tw.WriteHeader(&tar.Header{Name: cfgName, Mode: 0o644, Size: int64(len(cfg)), Typeflag: tar.TypeReg})
	tw.Write(cfg)
	mf, _ := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{tag}, "Layers": names}})
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o644, Size: int64(len(mf)), Typeflag: tar.TypeReg})
	tw.Write(mf)
	tw.Close()
	return path
}

// TestCrashDuringLoadAndRmi kills berthd with SIGKILL at many points of a
// load, an rmi and an import, restarts it, and checks that the store is clean and
// no committed image was lost.
func TestCrashDuringLoadAndRmi(t *testing.T) {
	d := testutil.StartDaemon(t)
	testutil.DockerCLI(t)
	bb := testutil.BusyboxTar(t)
	mustRun(t, d.Docker("import", bb, "keep:1"))
	keepID := strings.TrimSpace(mustRun(t, d.Docker("image", "inspect", "-f", "{{.Id}}", "keep:1")))
	archive := bigImageArchive(t, d, "big:1")

	restartAndCheck := func(what string) {
		t.Helper()
		d.Restart()
		if res := systemCheck(t, d, false); len(res.Problems) != 0 {
			t.Fatalf("after a crash during %s, check found: %+v", what, res.Problems)
		}
		if got := strings.TrimSpace(mustRun(t, d.Docker("image", "inspect", "-f", "{{.Id}}", "keep:1"))); got != keepID {
			t.Fatalf("after a crash during %s: keep:1 is %q", what, got)
		}
	}
	for _, delay := range []time.Duration{0, 2 * time.Millisecond, 10 * time.Millisecond, 30 * time.Millisecond, 80 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond} {
		f, _ := os.Open(archive)
		cmd := exec.Command(testutil.DockerCLI(t), "load")
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host(), "DOCKER_CONFIG="+filepath.Join(d.Root, "docker-config"))
		cmd.Stdin, cmd.Stdout, cmd.Stderr = f, io.Discard, io.Discard
		cmd.Start()
		time.Sleep(delay)
		d.Kill9()
		cmd.Wait()
		f.Close()
		restartAndCheck(fmt.Sprintf("load (+%s)", delay))
		// Whether big:1 made it or not, it must be whole: loading again works.
		f, _ = os.Open(archive)
		mustRun(t, d.DockerIn(f, "load"))
		f.Close()

		cmd = exec.Command(testutil.DockerCLI(t), "rmi", "big:1")
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host(), "DOCKER_CONFIG="+filepath.Join(d.Root, "docker-config"))
		cmd.Start()
		time.Sleep(delay / 4)
		d.Kill9()
		cmd.Wait()
		restartAndCheck(fmt.Sprintf("rmi (+%s)", delay/4))
		if r := d.Docker("image", "inspect", "big:1"); r.ExitCode == 0 {
			mustRun(t, d.Docker("rmi", "big:1"))
		}

		// import: the archive itself as a filesystem tar.
		cmd = exec.Command(testutil.DockerCLI(t), "import", archive, "imported:1")
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host(), "DOCKER_CONFIG="+filepath.Join(d.Root, "docker-config"))
		cmd.Start()
		time.Sleep(delay)
		d.Kill9()
		cmd.Wait()
		restartAndCheck(fmt.Sprintf("import (+%s)", delay))
		if r := d.Docker("image", "inspect", "imported:1"); r.ExitCode == 0 {
			mustRun(t, d.Docker("rmi", "imported:1"))
		}
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// TestImageEndpointErrors checks status codes and bodies clients rely on.
func TestImageEndpointErrors(t *testing.T) {
	d := testutil.StartDaemon(t)
	c := d.HTTPClient()
	bb, _ := os.ReadFile(testutil.BusyboxTar(t))
	cases := []struct {
		method, path string
		body         []byte
		code         int
		contains     string
	}{
		{"POST", "/v1.44/images/create?fromSrc=-&repo=bb&tag=1", bb, 200, `"status":"sha256:`},
		{"POST", "/images/create?fromSrc=-&repo=bb&changes=RUN%20x", bb, 400, "not a valid change command"},
		{"POST", "/images/create?fromSrc=-&repo=BAD", bb, 400, "invalid reference format"},
		{"POST", "/images/create", nil, 400, "fromImage or fromSrc"},
		{"GET", "/images/nope/json", nil, 404, `{"message":"No such image: nope"}`},
		{"GET", "/images/bb:1/json", nil, 200, `"RepoTags":["bb:1"]`},
		{"GET", "/v1.47/images/docker.io/library/bb:1/json", nil, 200, `"Id":"sha256:`},
		{"GET", "/images/get?names=nope", nil, 404, "No such image: nope"},
		{"GET", "/images/bb:1/get", nil, 200, "manifest.json"},
		{"POST", "/images/load", []byte("garbage that is not a tar archive"), 400, ""},
		{"POST", "/images/bb:1/tag?repo=other&tag=2", nil, 201, ""},
		{"POST", "/images/bb:1/tag", nil, 400, ""},
		{"POST", "/images/nope/tag?repo=x", nil, 404, "No such image: nope"},
		{"GET", "/images/json?filters=%7B%22reference%22%3A%7B%22other%22%3Atrue%7D%7D", nil, 200, `"RepoTags":["other:2"]`},
		{"GET", "/images/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D", nil, 400, "invalid filter"},
		{"GET", "/images/bb:1/history", nil, 200, `"Tags":[`},
		{"DELETE", "/images/other:2", nil, 200, `[{"Untagged":"other:2"}]`},
		{"DELETE", "/images/nope", nil, 404, "No such image: nope"},
		{"GET", "/system/df", nil, 200, `"LayersSize":`},
		{"POST", "/berth/system/check?repair=1", nil, 200, `"Problems":[]`},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, "http://berth"+tc.path, bytes.NewReader(tc.body))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.contains) {
			t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.path, resp.StatusCode, body, tc.code, tc.contains)
		}
		if tc.code >= 400 && resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: error Content-Type %q", tc.method, tc.path, resp.Header.Get("Content-Type"))
		}
	}
}
