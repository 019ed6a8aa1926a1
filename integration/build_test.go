package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// buildCLI runs `berth build` (reading a local context in place, or sending
// it as a tar) or `DOCKER_BUILDKIT=0 docker build` (the classic protocol)
// against the same berthd.
type buildCLI struct {
	name string
	run  func(args ...string) testutil.Result
}

// newBuildDaemon starts berthd on its own bridge (so it does not depend on
// a free default pool) with the busybox fixture. Builds need no bridge (RUN
// has loopback only) and the tests run their images with --network none, so
// nothing depends on the bridge staying up.
func newBuildDaemon(t *testing.T) *testutil.Daemon {
	d := testutil.StartDaemon(t, "--bridge", "bbuild0", "--bip", "10.213.0.1/24", "--iptables=false")
	t.Cleanup(func() { exec.Command("ip", "link", "del", "bbuild0").Run() })
	d.ImportBusybox()
	return d
}

func buildCLIs(t *testing.T, d *testutil.Daemon) []buildCLI {
	out := []buildCLI{{name: "berth", run: d.Berth}, {name: "berth-tar", run: func(args ...string) testutil.Result {
		// the berth CLI sending the context as a tar, as it does to a remote daemon
		return testutil.Run(t, []string{"BERTH_HOST=" + d.Host(), "BERTH_BUILD_SEND_CONTEXT=1"}, nil, testutil.Bin(t, "berth"), args...)
	}}}
	for _, p := range []string{"/usr/local/bin/docker", "/usr/bin/docker"} {
		if _, err := os.Stat(p); err == nil {
			cfg := filepath.Join(d.Root, "docker-config")
			os.MkdirAll(cfg, 0o700)
			out = append(out, buildCLI{name: "docker", run: func(args ...string) testutil.Result {
				return testutil.Run(t, []string{"DOCKER_HOST=" + d.Host(), "DOCKER_CONFIG=" + cfg, "DOCKER_CLI_HINTS=false", "DOCKER_BUILDKIT=0"}, nil, p, args...)
			}})
			break
		}
	}
	return out
}

// writeContext makes a build context directory from name -> content.
func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func inspectImage(t *testing.T, d *testutil.Daemon, ref string) map[string]any {
	t.Helper()
	r := must(t, d.Berth("image", "inspect", ref))
	var out []map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil || len(out) != 1 {
		t.Fatalf("inspect %s: %v\n%s", ref, err, r.Stdout)
	}
	return out[0]
}

func imageConfig(t *testing.T, d *testutil.Daemon, ref string) map[string]any {
	t.Helper()
	cfg, _ := inspectImage(t, d, ref)["Config"].(map[string]any)
	if cfg == nil {
		t.Fatalf("image %s has no Config", ref)
	}
	return cfg
}

var (
	stepRe  = regexp.MustCompile(`(?m)^Step (\d+)/(\d+) : `)
	builtRe = regexp.MustCompile(`(?m)^Successfully built ([0-9a-f]{12})$`)
)

const everyInstruction = `# a comment
ARG BASE=busybox
ARG GREETING=hello
FROM ${BASE}:latest AS build
ARG GREETING
ARG TARGETARCH
ENV APP_HOME=/app \
    MODE=test
WORKDIR $APP_HOME
COPY --chown=1000:1000 --chmod=640 greeting.txt ./
COPY src/ ./src/
ADD files.tar /unpacked/
RUN echo "$GREETING from $TARGETARCH" > out.txt && \
    cat greeting.txt >> out.txt
RUN <<EOF
echo heredoc > /app/heredoc.txt
EOF
RUN <<EOF
#!/bin/awk -f
BEGIN { print "shebang" > "/app/shebang.txt" }
EOF
COPY <<EOT /app/inline.txt
inline ${MODE}
EOT

FROM busybox AS unused
RUN exit 42

FROM busybox
LABEL org.example.name="every instruction" version=1
MAINTAINER someone@example.com
COPY --from=build /app/out.txt /app/heredoc.txt /app/inline.txt /app/shebang.txt /result/
COPY --from=build /app/src /result/src
COPY --from=build /unpacked /result/unpacked
USER nobody
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGTERM
SHELL ["/bin/sh", "-ec"]
HEALTHCHECK --interval=5s --timeout=3s CMD true
ONBUILD RUN echo triggered > /tmp/onbuild
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /result/out.txt"]
`

func tarOf(t *testing.T, files map[string]string) string {
	t.Helper()
	src := writeContext(t, files)
	out := filepath.Join(t.TempDir(), "files.tar")
	if r := testutil.Run(t, nil, nil, "tar", "-C", src, "-cf", out, "."); r.ExitCode != 0 {
		t.Fatalf("tar: %s", r)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBuildEveryInstruction(t *testing.T) {
	d := newBuildDaemon(t)
	files := map[string]string{
		"Dockerfile":    everyInstruction,
		"greeting.txt":  "greetings\n",
		"src/a.txt":     "a\n",
		"src/sub/b.txt": "b\n",
		"files.tar":     tarOf(t, map[string]string{"x/y.txt": "from tar\n"}),
	}
	for _, c := range buildCLIs(t, d) {
		t.Run(c.name, func(t *testing.T) {
			dir := writeContext(t, files)
			tag := "every-" + c.name + ":v1"
			// --no-cache: the second CLI must not reuse the first one's steps.
			r := c.run("build", "--no-cache", "-t", tag, "--build-arg", "GREETING=hi", "--label", "extra=yes", dir)
			if r.ExitCode != 0 {
				t.Fatalf("build: %s", r)
			}
			if strings.Contains(r.Stdout, "exit 42") {
				t.Fatalf("a stage the target does not need was built:\n%s", r.Stdout)
			}
			if m := stepRe.FindAllStringSubmatch(r.Stdout, -1); len(m) == 0 || m[0][1] != "1" {
				t.Fatalf("no step lines:\n%s", r.Stdout)
			}
			if !builtRe.MatchString(r.Stdout) || !strings.Contains(r.Stdout, "Successfully tagged "+tag) {
				t.Fatalf("missing final lines:\n%s", r.Stdout)
			}
			cfg := imageConfig(t, d, tag)
			if cfg["User"] != "nobody" || cfg["StopSignal"] != "SIGTERM" {
				t.Fatalf("user/stopsignal: %v", cfg)
			}
			labels, _ := cfg["Labels"].(map[string]any)
			if labels["org.example.name"] != "every instruction" || labels["version"] != "1" || labels["extra"] != "yes" {
				t.Fatalf("labels: %v", labels)
			}
			ports, _ := cfg["ExposedPorts"].(map[string]any)
			if _, ok := ports["8080/tcp"]; !ok {
				t.Fatalf("exposed ports: %v", ports)
			}
			if _, ok := ports["53/udp"]; !ok {
				t.Fatalf("exposed ports: %v", ports)
			}
			if vols, _ := cfg["Volumes"].(map[string]any); vols["/data"] == nil {
				t.Fatalf("volumes: %v", cfg["Volumes"])
			}
			if hc, _ := cfg["Healthcheck"].(map[string]any); hc == nil || hc["Interval"] != float64(5e9) {
				t.Fatalf("healthcheck: %v", cfg["Healthcheck"])
			}
			if ob, _ := cfg["OnBuild"].([]any); len(ob) != 1 {
				t.Fatalf("onbuild: %v", cfg["OnBuild"])
			}
			if sh, _ := json.Marshal(cfg["Shell"]); string(sh) != `["/bin/sh","-ec"]` {
				t.Fatalf("shell: %s", sh)
			}
			if ep, _ := json.Marshal(cfg["Entrypoint"]); string(ep) != `["/bin/sh","-c"]` {
				t.Fatalf("entrypoint: %s", ep)
			}
			r = must(t, d.Berth("run", "--rm", "--network", "none", tag))
			if r.Stdout != "hi from "+runtime.GOARCH+"\ngreetings\n" {
				t.Fatalf("RUN output in image: %q", r.Stdout)
			}
			r = must(t, d.Berth("run", "--rm", "--network", "none", "--entrypoint", "sh", tag, "-c",
				"cat /result/heredoc.txt /result/shebang.txt /result/inline.txt /result/src/a.txt /result/src/sub/b.txt /result/unpacked/x/y.txt"))
			if r.Stdout != "heredoc\nshebang\ninline test\na\nb\nfrom tar\n" {
				t.Fatalf("files: %q", r.Stdout)
			}
			// COPY --chown/--chmod in the first stage, built alone with --target.
			r = must(t, c.run("build", "-q", "--target", "build", dir))
			id := strings.TrimSpace(r.Stdout)
			if !strings.HasPrefix(id, "sha256:") {
				t.Fatalf("-q output: %q", r.Stdout)
			}
			r = must(t, d.Berth("run", "--rm", "--network", "none", id, "stat", "-c", "%u:%g %a", "/app/greeting.txt"))
			if strings.TrimSpace(r.Stdout) != "1000:1000 640" {
				t.Fatalf("chown/chmod: %q", r.Stdout)
			}
			// ONBUILD fires in a child build.
			child := writeContext(t, map[string]string{"Dockerfile": "FROM " + tag + "\nRUN cat /tmp/onbuild # " + c.name + "\n"})
			r = c.run("build", "-t", "child-"+c.name, child)
			if r.ExitCode != 0 || !strings.Contains(r.Stdout, "triggered") {
				t.Fatalf("onbuild trigger: %s", r)
			}
		})
	}
}

func countCached(out string) int { return strings.Count(out, " ---> Using cache") }

func TestBuildCache(t *testing.T) {
	d := newBuildDaemon(t)
	for _, c := range buildCLIs(t, d) {
		t.Run(c.name, func(t *testing.T) {
			dir := writeContext(t, map[string]string{
				"Dockerfile": "FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt # " + c.name + "\nCMD [\"cat\", \"/b.txt\"]\n",
				"a.txt":      "one " + c.name + "\n",
			})
			build := func(args ...string) (string, string) {
				t.Helper()
				r := must(t, c.run(append(append([]string{"build"}, args...), dir)...))
				m := builtRe.FindStringSubmatch(r.Stdout)
				if m == nil {
					t.Fatalf("no image id:\n%s", r.Stdout)
				}
				return r.Stdout, m[1]
			}
			out, id1 := build("-t", "cache-"+c.name)
			if sent := strings.Contains(out, "Sending build context"); sent != (c.name != "berth") {
				t.Fatalf("context sent = %v: berth reads a local directory in place, the others send a tar:\n%s", sent, out)
			}
			if countCached(out) != 0 {
				t.Fatalf("first build used the cache:\n%s", out)
			}
			out, id2 := build("-t", "cache-"+c.name)
			if countCached(out) != 3 || id1 != id2 {
				t.Fatalf("rebuild: want 3 cached steps and the same image (%s):\n%s", id1, out)
			}
			// A new mtime with the same content is still a hit.
			later := time.Now().Add(time.Hour)
			os.Chtimes(filepath.Join(dir, "a.txt"), later, later)
			if out, id := build(); countCached(out) != 3 || id != id1 {
				t.Fatalf("touched file: want all cached:\n%s", out)
			}
			// New content misses from the COPY on.
			os.WriteFile(filepath.Join(dir, "a.txt"), []byte("two "+c.name+"\n"), 0o644)
			out, id3 := build("-t", "cache-"+c.name)
			if countCached(out) != 0 || id3 == id1 {
				t.Fatalf("changed file: want no cached steps:\n%s", out)
			}
			if r := must(t, d.Berth("run", "--rm", "--network", "none", "cache-"+c.name)); r.Stdout != "two "+c.name+"\n" {
				t.Fatalf("rebuilt image: %q", r.Stdout)
			}
			out, _ = build("--no-cache")
			if countCached(out) != 0 {
				t.Fatalf("--no-cache used the cache:\n%s", out)
			}
			iid := filepath.Join(t.TempDir(), "iid")
			out, id4 := build("--iidfile", iid)
			b, err := os.ReadFile(iid)
			if err != nil || !strings.HasPrefix(string(b), "sha256:"+id4) {
				t.Fatalf("--iidfile: %q %v (built %s)", b, err, id4)
			}
			_ = out
		})
	}
	// prune forgets the cache
	r := must(t, d.Docker("builder", "prune", "-f"))
	_ = r
}

func TestBuildFailures(t *testing.T) {
	d := newBuildDaemon(t)
	cases := []struct {
		name, dockerfile string
		args             []string
		want             []string
		code             int // docker's exit status (the RUN's code); 0: any non-zero
	}{
		{"failing run", "FROM busybox\nRUN echo before-fail; exit 3\n", nil,
			[]string{"before-fail", "returned a non-zero code: 3", "line 2"}, 3},
		{"missing copy source", "FROM busybox\nCOPY nope.txt /\n", nil, []string{"nope.txt", "line 2"}, 0},
		{"unknown instruction", "FROM busybox\nFROBNICATE x\n", nil, []string{"unknown instruction", "line 2"}, 0},
		{"bad target", "FROM busybox AS a\nRUN true\n", []string{"--target", "nosuch"}, []string{"failed to reach build target nosuch"}, 0},
		{"other platform", "FROM busybox\n", []string{"--platform", "linux/s390x"}, []string{"s390x"}, 0},
		{"missing base", "FROM nosuchimage:1\n", nil, []string{"nosuchimage"}, 0},
	}
	for _, c := range buildCLIs(t, d) {
		for _, tc := range cases {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				dir := writeContext(t, map[string]string{"Dockerfile": tc.dockerfile})
				tag := "failed-" + c.name + ":x"
				r := c.run(append(append([]string{"build", "-t", tag}, tc.args...), dir)...)
				if r.ExitCode == 0 {
					t.Fatalf("build succeeded: %s", r)
				}
				if tc.code != 0 && c.name == "docker" && r.ExitCode != tc.code {
					t.Fatalf("exit status %d, want %d", r.ExitCode, tc.code)
				}
				all := r.Stdout + r.Stderr
				for _, w := range tc.want {
					if !strings.Contains(all, w) {
						t.Fatalf("output lacks %q: %s", w, r)
					}
				}
				if r := d.Berth("image", "inspect", tag); r.ExitCode == 0 {
					t.Fatalf("a failed build was tagged")
				}
				if r := must(t, d.Berth("ps", "-aq")); strings.TrimSpace(r.Stdout) != "" {
					t.Fatalf("containers left behind: %q", r.Stdout)
				}
			})
		}
	}
}

func TestBuildScratchAndIgnore(t *testing.T) {
	d := newBuildDaemon(t)
	bb, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Skip("no static busybox")
	}
	for _, c := range buildCLIs(t, d) {
		t.Run(c.name, func(t *testing.T) {
			dir := writeContext(t, map[string]string{
				"Dockerfile": "FROM scratch\nCOPY busybox /bin/busybox\nCOPY . /ctx/\n" +
					"RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox ls -R /ctx > /listing\"]\n" +
					"ENTRYPOINT [\"/bin/busybox\"]\nCMD [\"cat\", \"/listing\"]\n",
				"busybox":       string(bb),
				".dockerignore": "secret.txt\nlogs/\n!logs/keep.log\nbusybox\n",
				"secret.txt":    "s3cr3t\n",
				"logs/a.log":    "a\n",
				"logs/keep.log": "k\n",
				"app/main.txt":  "m\n",
			})
			os.Chmod(filepath.Join(dir, "busybox"), 0o755)
			// busybox is ignored for COPY . but named COPY sources must still be
			// readable: Docker sends ignored files to neither, so name it explicitly
			// outside the ignore list.
			os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("secret.txt\nlogs/\n!logs/keep.log\n"), 0o644)
			tag := "scratch-" + c.name
			must(t, c.run("build", "-t", tag, dir))
			r := must(t, d.Berth("run", "--rm", "--network", "none", tag))
			if strings.Contains(r.Stdout, "secret.txt") || strings.Contains(r.Stdout, "a.log") ||
				!strings.Contains(r.Stdout, "keep.log") || !strings.Contains(r.Stdout, "main.txt") {
				t.Fatalf(".dockerignore not applied: %q", r.Stdout)
			}
			if hist := must(t, d.Berth("history", "-q", tag)); hist.Stdout == "" {
				t.Fatalf("no history")
			}
		})
	}
}

func TestBuildStdin(t *testing.T) {
	d := newBuildDaemon(t)
	df := "FROM busybox\nRUN echo from-stdin > /s\nCMD [\"cat\", \"/s\"]\n"
	r := must(t, d.BerthIn(strings.NewReader(df), "build", "-t", "stdin-df", "-"))
	if !builtRe.MatchString(r.Stdout) {
		t.Fatalf("Dockerfile on stdin: %s", r)
	}
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY f /f\nCMD [\"cat\", \"/f\"]\n", "f": "tarred\n"})
	tarPath := filepath.Join(t.TempDir(), "ctx.tar.gz")
	if r := testutil.Run(t, nil, nil, "tar", "-C", dir, "-czf", tarPath, "."); r.ExitCode != 0 {
		t.Fatalf("tar: %s", r)
	}
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	must(t, d.BerthIn(f, "build", "-t", "stdin-tar", "-"))
	if r := must(t, d.Berth("run", "--rm", "--network", "none", "stdin-tar")); r.Stdout != "tarred\n" {
		t.Fatalf("gzip tar context: %q", r.Stdout)
	}
	r = must(t, d.BerthIn(strings.NewReader("FROM busybox\nCMD [\"cat\", \"/f\"]\nCOPY f /f\n"), "build", "-f", "-", "-t", "stdin-f", dir))
	if r := must(t, d.Berth("run", "--rm", "--network", "none", "stdin-f")); r.Stdout != "tarred\n" {
		t.Fatalf("-f -: %q", r.Stdout)
	}
}

func TestBuildCacheFromAndPrune(t *testing.T) {
	d := newBuildDaemon(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM busybox\nCOPY f /f\nENV X=1\nRUN cat /f > /g\nCMD [\"cat\", \"/g\"]\n",
		"f":          "cache-from\n",
	})
	must(t, d.Berth("build", "-t", "cf:1", dir))
	if r := must(t, d.Docker("builder", "prune", "-f")); !strings.Contains(r.Stdout, "Total reclaimed space") {
		t.Fatalf("builder prune: %s", r)
	}
	// The step cache is gone: nothing is reused...
	r := must(t, d.Berth("build", "--iidfile", filepath.Join(t.TempDir(), "x"), dir))
	if countCached(r.Stdout) != 0 {
		t.Fatalf("pruned cache still hit:\n%s", r.Stdout)
	}
	must(t, d.Docker("builder", "prune", "-f"))
	// ...unless an image is named as a cache source: its history matches.
	for _, c := range buildCLIs(t, d) {
		r = must(t, c.run("build", "--cache-from", "cf:1", "-t", "cf:2", dir))
		if countCached(r.Stdout) != 4 {
			t.Fatalf("%s --cache-from: want 4 cached steps:\n%s", c.name, r.Stdout)
		}
		if r := must(t, d.Berth("run", "--rm", "--network", "none", "cf:2")); r.Stdout != "cache-from\n" {
			t.Fatalf("image from cache: %q", r.Stdout)
		}
		must(t, d.Docker("builder", "prune", "-f"))
	}
}

// TestBuildDockerPy builds through docker-py, which finds the image ID in
// the classic stream ("Successfully built" / aux) and raises BuildError on
// an error message.
func TestBuildDockerPy(t *testing.T) {
	if exec.Command("python3", "-c", "import docker").Run() != nil {
		t.Skip("docker-py not installed")
	}
	d := newBuildDaemon(t)
	ok := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo py > /py\nCMD [\"cat\", \"/py\"]\n"})
	bad := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN exit 7\n"})
	script := `
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
img, logs = c.images.build(path=sys.argv[2], tag="py:1", rm=True)
print(img.id, img.tags)
try:
    c.images.build(path=sys.argv[3], tag="py:bad")
except docker.errors.BuildError as e:
    print("BuildError", e.msg)
`
	r := testutil.Run(t, nil, nil, "python3", "-c", script, d.Host(), ok, bad)
	if r.ExitCode != 0 || !regexp.MustCompile(`^sha256:[0-9a-f]{64} \['py:1'\]\n`).MatchString(r.Stdout) ||
		!strings.Contains(r.Stdout, "BuildError The command '/bin/sh -c exit 7' returned a non-zero code: 7") {
		t.Fatalf("docker-py: %s", r)
	}
	if r := must(t, d.Berth("run", "--rm", "--network", "none", "py:1")); r.Stdout != "py\n" {
		t.Fatalf("docker-py image: %q", r.Stdout)
	}
}
