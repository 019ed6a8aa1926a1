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

	"github.com/berth-dev/berth/internal/testutil"
)

// buildCLI runs `berth build` or `DOCKER_BUILDKIT=0 docker build` (the
// classic protocol) against the same berthd.
type buildCLI struct {
	name string
	run  func(args ...string) testutil.Result
}

// newBuildDaemon starts berthd on its own bridge (so it does not depend on
// a free default pool) with the busybox fixture.
func newBuildDaemon(t *testing.T) *testutil.Daemon {
	d := testutil.StartDaemon(t, "--bridge", "bbuild0", "--bip", "10.213.0.1/24", "--iptables=false")
	t.Cleanup(func() { exec.Command("ip", "link", "del", "bbuild0").Run() })
	d.ImportBusybox()
	return d
}

func buildCLIs(t *testing.T, d *testutil.Daemon) []buildCLI {
	out := []buildCLI{{name: "berth", run: d.Berth}}
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
COPY <<EOT /app/inline.txt
inline ${MODE}
EOT

FROM busybox AS unused
RUN exit 42

FROM busybox
LABEL org.example.name="every instruction" version=1
MAINTAINER someone@example.com
COPY --from=build /app/out.txt /app/heredoc.txt /app/inline.txt /result/
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
			r = must(t, d.Berth("run", "--rm", tag))
			if r.Stdout != "hi from "+runtime.GOARCH+"\ngreetings\n" {
				t.Fatalf("RUN output in image: %q", r.Stdout)
			}
			r = must(t, d.Berth("run", "--rm", "--entrypoint", "sh", tag, "-c",
				"cat /result/heredoc.txt /result/inline.txt /result/src/a.txt /result/src/sub/b.txt /result/unpacked/x/y.txt"))
			if r.Stdout != "heredoc\ninline test\na\nb\nfrom tar\n" {
				t.Fatalf("files: %q", r.Stdout)
			}
			// COPY --chown/--chmod in the first stage, built alone with --target.
			r = must(t, c.run("build", "-q", "--target", "build", dir))
			id := strings.TrimSpace(r.Stdout)
			if !strings.HasPrefix(id, "sha256:") {
				t.Fatalf("-q output: %q", r.Stdout)
			}
			r = must(t, d.Berth("run", "--rm", id, "stat", "-c", "%u:%g %a", "/app/greeting.txt"))
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
