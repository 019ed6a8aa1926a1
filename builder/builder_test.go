package builder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/snapshot"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeBackend is an in-memory daemon: images are configs plus a directory
// of files; RUN steps "succeed" unless their command mentions "fail".
type fakeBackend struct {
	t          *testing.T
	mu         sync.Mutex
	n          int
	images     map[digest.Digest]*Image
	files      map[digest.Digest]string // image -> directory with its files
	tags       map[string]digest.Digest
	containers map[string]digest.Digest
	cmds       map[string]string // container -> its command
}

var _ Backend = (*fakeBackend)(nil)

func newFake(t *testing.T) *fakeBackend {
	f := &fakeBackend{t: t, images: map[digest.Digest]*Image{}, files: map[digest.Digest]string{},
		tags: map[string]digest.Digest{}, containers: map[string]digest.Digest{}, cmds: map[string]string{}}
	f.newImage("", dockerspec.DockerOCIImageConfig{}, "busybox:latest", nil)
	return f
}

func (f *fakeBackend) newImage(parent digest.Digest, cfg dockerspec.DockerOCIImageConfig, tag string, fn func(string) error) (digest.Digest, error) {
	f.mu.Lock()
	f.n++
	id := digest.FromString(fmt.Sprint("image ", f.n))
	parentDir := f.files[parent]
	f.mu.Unlock()
	dir := f.t.TempDir()
	if parent != "" {
		if err := os.CopyFS(dir, os.DirFS(parentDir)); err != nil {
			return "", err
		}
	}
	if fn != nil {
		if err := fn(dir); err != nil {
			return "", err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[id] = &Image{ID: id, Config: dockerspec.DockerOCIImage{Config: cfg}}
	f.files[id] = dir
	if tag != "" {
		f.tags[tag] = id
	}
	return id, nil
}

func (f *fakeBackend) GetImage(ctx context.Context, ref string) (*Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.tags[ref]; ok {
		ref = id.String()
	} else if id, ok := f.tags[ref+":latest"]; ok {
		ref = id.String()
	}
	if img, ok := f.images[digest.Digest(ref)]; ok {
		return img, nil
	}
	return nil, errdefs.NotFound("No such image: %s", ref)
}

func (f *fakeBackend) CreateBuildContainer(ctx context.Context, img digest.Digest, cfg *container.Config) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	id := fmt.Sprintf("%064x", f.n)
	f.containers[id] = img
	f.cmds[id] = strings.Join(cfg.Cmd, " ")
	return id, nil
}

func (f *fakeBackend) RunContainer(ctx context.Context, id string, stdout, stderr io.Writer) (int, error) {
	f.mu.Lock()
	cmd := f.cmds[id]
	f.mu.Unlock()
	fmt.Fprintf(stdout, "ran %s\n", cmd)
	if strings.Contains(cmd, "fail") {
		return 3, nil
	}
	return 0, nil
}

func (f *fakeBackend) RemoveContainer(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.containers, id)
	return nil
}

func (f *fakeBackend) CommitContainer(ctx context.Context, id string, cfg *dockerspec.DockerOCIImageConfig, createdBy string) (digest.Digest, error) {
	f.mu.Lock()
	parent := f.containers[id]
	f.mu.Unlock()
	return f.newImage(parent, *cfg, "", nil)
}

func (f *fakeBackend) CommitFiles(ctx context.Context, parent digest.Digest, cfg *dockerspec.DockerOCIImageConfig, createdBy string, fn func(root string) error) (digest.Digest, error) {
	return f.newImage(parent, *cfg, "", fn)
}

func (f *fakeBackend) CommitLayer(ctx context.Context, parent digest.Digest, cfg *dockerspec.DockerOCIImageConfig, createdBy string, write func(w io.Writer) error) (digest.Digest, error) {
	return f.newImage(parent, *cfg, "", func(root string) error {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(write(pw)) }()
		defer pr.CloseWithError(io.ErrClosedPipe)
		return snapshot.CopyIn(ctx, root, "/", pr, snapshot.CopyInOptions{KeepOwner: os.Geteuid() == 0, UID: os.Geteuid(), GID: os.Getegid()})
	})
}

func (f *fakeBackend) MountImage(ctx context.Context, id digest.Digest, fn func(root string) error) error {
	f.mu.Lock()
	dir, ok := f.files[id]
	f.mu.Unlock()
	if !ok {
		return errdefs.NotFound("no image %s", id)
	}
	return fn(dir)
}

func (f *fakeBackend) CreateImage(ctx context.Context, parent digest.Digest, cfg *dockerspec.DockerOCIImageConfig, createdBy string) (digest.Digest, error) {
	return f.newImage(parent, *cfg, "", nil)
}

func (f *fakeBackend) TagImage(ctx context.Context, id digest.Digest, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tags[ref] = id
	return nil
}

func (f *fakeBackend) DeleteImage(ctx context.Context, id digest.Digest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.images, id)
	return nil
}

func (f *fakeBackend) PullImage(ctx context.Context, ref string, auth map[string]RegistryAuth, out io.Writer) (*Image, error) {
	if ref == "registry.test/pullme:1" {
		fmt.Fprintf(out, "pulled %s\n", ref)
		id, err := f.newImage("", dockerspec.DockerOCIImageConfig{}, ref, nil)
		if err != nil {
			return nil, err
		}
		return f.GetImage(ctx, id.String())
	}
	return nil, errdefs.NotFound("pull access denied for %s", ref)
}

func (f *fakeBackend) RestoreCachedImage(ctx context.Context, parent, source digest.Digest, layer int, cfg *dockerspec.DockerOCIImageConfig, h ocispec.History) (digest.Digest, error) {
	return f.newImage(parent, *cfg, "", nil)
}

func TestMatchCacheFrom(t *testing.T) {
	hist := func(created ...string) []ocispec.History {
		var out []ocispec.History
		for _, c := range created {
			out = append(out, ocispec.History{CreatedBy: strings.TrimPrefix(c, "meta:"), EmptyLayer: strings.HasPrefix(c, "meta:")})
		}
		return out
	}
	img := func(id string, h []ocispec.History, layers ...string) *Image {
		im := &Image{ID: digest.FromString(id)}
		im.Config.History = h
		for _, l := range layers {
			im.Config.RootFS.DiffIDs = append(im.Config.RootFS.DiffIDs, digest.FromString(l))
		}
		return im
	}
	base := img("base", hist("ADD rootfs"), "l0")
	src := img("src", hist("ADD rootfs", "COPY a", "meta:ENV x", "RUN b"), "l0", "l1", "l2")
	other := img("other", hist("ADD other", "COPY a"), "x0", "x1")
	mid := img("mid", hist("ADD rootfs", "COPY a", "meta:ENV x"), "l0", "l1")
	tests := []struct {
		name      string
		parent    *Image
		createdBy string
		want      *Image
		layer     int
	}{
		{"next layer step", base, "COPY a", src, 1},
		{"empty layer step", img("afterCopy", hist("ADD rootfs", "COPY a"), "l0", "l1"), "ENV x", src, -1},
		{"last step", mid, "RUN b", src, 2},
		{"different step", base, "COPY z", nil, 0},
		{"different base", img("b2", hist("ADD other2"), "y0"), "COPY a", nil, 0},
		{"scratch parent", nil, "ADD other", other, 0},
	}
	for _, tc := range tests {
		got, layer, ok := matchCacheFrom(tc.parent, []*Image{other, src}, tc.createdBy)
		if tc.want == nil {
			if ok {
				t.Errorf("%s: matched %v", tc.name, got.ID)
			}
			continue
		}
		if !ok || got != tc.want || layer != tc.layer {
			t.Errorf("%s: got %v layer %d ok %v", tc.name, got, layer, ok)
		}
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func build(t *testing.T, b *Builder, dir string, opts Options) (string, *Result, error) {
	t.Helper()
	var out bytes.Buffer
	res, err := b.Build(context.Background(), Source{Dir: dir}, opts, Output{Stream: &out})
	return out.String(), res, err
}

func TestBuildWithFakeBackend(t *testing.T) {
	f := newFake(t)
	b, err := New(f, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := writeFiles(t, map[string]string{
		"Dockerfile": `ARG V=1
FROM busybox AS base
ARG V
ENV A=$V
COPY a.txt /app/
RUN echo $A

FROM base AS unused
RUN fail-if-built

FROM scratch
COPY --from=base /app/a.txt /a
WORKDIR /w
CMD ["x"]
`,
		"a.txt": "hello",
	})
	tests := []struct {
		name       string
		opts       Options
		edit       func()
		wantCached int
		wantSteps  int
		wantErr    string
	}{
		{name: "cold", opts: Options{Tags: []string{"app:1"}}, wantSteps: 9},
		{name: "all cached", opts: Options{Tags: []string{"app:1"}}, wantCached: 7, wantSteps: 9},
		{name: "build arg changes ENV and RUN", opts: Options{BuildArgs: map[string]*string{"V": ptr("2")}}, wantCached: 1, wantSteps: 9},
		{name: "content change", edit: func() { os.WriteFile(filepath.Join(dir, "a.txt"), []byte("HELLO"), 0o644) }, wantCached: 2, wantSteps: 9},
		{name: "no cache", opts: Options{NoCache: true}, wantCached: 0, wantSteps: 9},
		{name: "target", opts: Options{Target: "base"}, wantCached: 4, wantSteps: 5},
		{name: "bad target", opts: Options{Target: "nope"}, wantErr: "failed to reach build target nope"},
		{name: "failing run", opts: Options{Target: "unused", Tags: []string{"bad:1"}}, wantErr: "returned a non-zero code: 3"},
		{name: "platform", opts: Options{Platform: "windows/amd64"}, wantErr: "not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.edit != nil {
				tc.edit()
			}
			out, res, err := build(t, b, dir, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q\n%s", err, tc.wantErr, out)
				}
				for _, tag := range tc.opts.Tags {
					if _, ok := f.tags[tag]; ok {
						t.Fatalf("failed build tagged %s", tag)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("build: %v\n%s", err, out)
			}
			if n := strings.Count(out, "Using cache"); n != tc.wantCached {
				t.Fatalf("%d cached steps, want %d:\n%s", n, tc.wantCached, out)
			}
			if n := len(regexp.MustCompile(`(?m)^Step \d+/`+fmt.Sprint(tc.wantSteps)+` : `).FindAllString(out, -1)); n != tc.wantSteps {
				t.Fatalf("%d step lines of %d, want:\n%s", n, tc.wantSteps, out)
			}
			if strings.Contains(out, "fail-if-built") {
				t.Fatalf("unneeded stage built:\n%s", out)
			}
			if !strings.Contains(out, "Successfully built "+shortID(res.ID)) {
				t.Fatalf("no final line:\n%s", out)
			}
			for _, tag := range tc.opts.Tags {
				if f.tags[tag] != res.ID {
					t.Fatalf("tag %s not set", tag)
				}
			}
		})
	}
	if len(f.containers) != 0 {
		t.Fatalf("containers left: %v", f.containers)
	}
}

func ptr(s string) *string { return &s }

func TestBuildQuiet(t *testing.T) {
	f := newFake(t)
	b, err := New(f, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo hi\n"})
	out, res, err := build(t, b, dir, Options{Quiet: true})
	if err != nil || out != res.ID.String()+"\n" {
		t.Fatalf("quiet success: %q %v", out, err)
	}
	dir = writeFiles(t, map[string]string{"Dockerfile": "FROM busybox\nRUN fail\n"})
	out, _, err = build(t, b, dir, Options{Quiet: true})
	if err == nil || !strings.Contains(out, "ran /bin/sh -c fail") {
		t.Fatalf("quiet failure must show the output: %q %v", out, err)
	}
}

func TestCopyIntoLayer(t *testing.T) {
	f := newFake(t)
	b, err := New(f, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tests := []struct {
		name       string
		dockerfile string
		files      map[string]string
		ignore     string
		want       []string // paths that must exist in the result
		absent     []string
		wantErr    string
	}{
		{name: "file to dir", dockerfile: "COPY a /d/", files: map[string]string{"a": "1"}, want: []string{"d/a"}},
		{name: "file rename", dockerfile: "COPY a /d/b", files: map[string]string{"a": "1"}, want: []string{"d/b"}},
		{name: "dir contents", dockerfile: "COPY src /s", files: map[string]string{"src/x/y": "1"}, want: []string{"s/x/y"}, absent: []string{"s/src"}},
		{name: "wildcard", dockerfile: "COPY *.txt /t/", files: map[string]string{"a.txt": "1", "b.txt": "2", "c.md": "3"}, want: []string{"t/a.txt", "t/b.txt"}, absent: []string{"t/c.md"}},
		{name: "ignored", dockerfile: "COPY . /c/", files: map[string]string{"keep": "1", "skip.log": "2", "d/skip.log": "3"}, ignore: "**/*.log\n", want: []string{"c/keep", "c/d"}, absent: []string{"c/skip.log", "c/d/skip.log"}},
		{name: "ignored source", dockerfile: "COPY skip.log /", files: map[string]string{"skip.log": "1"}, ignore: "*.log\n", wantErr: "excluded by .dockerignore"},
		{name: "missing", dockerfile: "COPY nope /", wantErr: "file not found"},
		{name: "escape", dockerfile: "COPY ../../../etc/hostname /h", want: []string{}, wantErr: "file not found"},
		{name: "many to file", dockerfile: "COPY a b /x", files: map[string]string{"a": "1", "b": "2"}, wantErr: "must be a directory and end with a /"},
		{name: "workdir relative", dockerfile: "WORKDIR /w\nCOPY a rel/", files: map[string]string{"a": "1"}, want: []string{"w/rel/a"}},
		{name: "from an image that is pulled", dockerfile: "COPY --from=registry.test/pullme:1 / /p/", want: []string{"p"}},
		{name: "from a missing image", dockerfile: "COPY --from=nosuch:2 / /p/", wantErr: "pull access denied"},
		{name: "workdir is created", dockerfile: "WORKDIR /x/y\nWORKDIR z", want: []string{"x/y/z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"Dockerfile": "FROM busybox\n" + tc.dockerfile + "\n"}
			for k, v := range tc.files {
				files[k] = v
			}
			if tc.ignore != "" {
				files[".dockerignore"] = tc.ignore
			}
			dir := writeFiles(t, files)
			out, res, err := build(t, b, dir, Options{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q\n%s", err, tc.wantErr, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("build: %v\n%s", err, out)
			}
			root := f.files[res.ID]
			for _, p := range tc.want {
				if _, err := os.Stat(filepath.Join(root, p)); err != nil {
					t.Fatalf("%s missing: %v", p, err)
				}
			}
			for _, p := range tc.absent {
				if _, err := os.Stat(filepath.Join(root, p)); err == nil {
					t.Fatalf("%s must not be copied", p)
				}
			}
		})
	}
}

func TestFileHashCache(t *testing.T) {
	c, err := OpenCache(filepath.Join(t.TempDir(), "cache.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := writeFiles(t, map[string]string{"f": "aaaa"})
	p := filepath.Join(dir, "f")
	digestOf := func() digest.Digest {
		bc := &buildContext{dir: dir, fs: dirFS{root: dir}, cache: c, pending: map[string]fileStat{}}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := bc.fileDigests([]string{"f"}, []os.FileInfo{fi})
		if err != nil {
			t.Fatal(err)
		}
		bc.saveHashes()
		return ds[0]
	}
	first := digestOf()
	if first != digest.FromString("aaaa") {
		t.Fatalf("digest %s", first)
	}
	// Same size, same mtime, same inode: the cached digest is used, so the
	// file is not read (its new content does not show).
	fi, _ := os.Stat(p)
	f, _ := os.OpenFile(p, os.O_WRONLY, 0)
	f.WriteString("bbbb")
	f.Close()
	os.Chtimes(p, fi.ModTime(), fi.ModTime())
	if got := digestOf(); got != first {
		t.Fatalf("unchanged stat must reuse the cached digest, got %s", got)
	}
	// A new mtime makes it read again.
	os.Chtimes(p, fi.ModTime().Add(1e9), fi.ModTime().Add(1e9))
	if got := digestOf(); got != digest.FromString("bbbb") {
		t.Fatalf("changed stat must rehash, got %s", got)
	}
}

func TestExpandPorts(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{"80", "80/tcp", false},
		{"53/udp", "53/udp", false},
		{"8000-8002/tcp", "8000/tcp 8001/tcp 8002/tcp", false},
		{"x", "", true},
		{"9-1", "", true},
	}
	for _, tc := range tests {
		got, err := expandPorts(tc.in)
		if (err != nil) != tc.err || strings.Join(got, " ") != tc.want {
			t.Errorf("expandPorts(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestCheckPlatform(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{{"", true}, {"linux", true}, {"linux/" + goarch(), true}, {"linux/s390x", false}, {"windows/amd64", false}} {
		if err := checkPlatform(tc.p); (err == nil) != tc.ok {
			t.Errorf("checkPlatform(%q) = %v", tc.p, err)
		}
	}
}

func TestLooksLikeTar(t *testing.T) {
	var buf bytes.Buffer
	writeTarFile(t, &buf, "a", "x")
	for _, tc := range []struct {
		name string
		in   []byte
		want bool
	}{
		{"tar", buf.Bytes()[:512], true},
		{"dockerfile", bytes.Repeat([]byte("FROM busybox\n"), 50)[:512], false},
		{"empty", nil, true},
	} {
		if got := looksLikeTar(tc.in); got != tc.want {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
}

func TestTarContextStaysInside(t *testing.T) {
	var buf bytes.Buffer
	writeTarEntries(t, &buf, []tarEntry{
		{name: "../../escape", body: "x"},
		{name: "link", link: "/"},
		{name: "up", link: "../../../etc"},
		{name: "Dockerfile", body: "FROM busybox\n"},
		{name: "d/f", body: "in d"},
	})
	tmp := t.TempDir()
	c, err := OpenCache(filepath.Join(tmp, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bc, err := openContext(context.Background(), Source{Tar: &buf}, tmp, c)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	for _, tc := range []struct{ in, want string }{
		{"escape", "escape"},
		{"link/d/f", "d/f"},
		{"up/passwd", "etc/passwd"},
		{"/d/../d/f", "d/f"},
	} {
		if got, err := bc.fs.Resolve(tc.in); err != nil || got != tc.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := bc.fs.Lstat("etc/passwd"); err == nil {
		t.Fatal("a path outside the context resolved to a file")
	}
	ds, err := bc.fileDigests([]string{"Dockerfile"}, nil)
	if err != nil || ds[0] != digest.FromString("FROM busybox\n") {
		t.Fatalf("digest of spooled file: %v %v", ds, err)
	}
	f, err := bc.fs.Open("d/f")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	if string(b) != "in d" {
		t.Fatalf("content %q", b)
	}
	matches, err := glob(bc.fs, "*/f")
	if err != nil || strings.Join(matches, ",") != "d/f" {
		t.Fatalf("glob: %v %v", matches, err)
	}
}

func TestBuildPull(t *testing.T) {
	f := newFake(t)
	b, err := New(f, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tests := []struct {
		name, from string
		pull       bool
		wantOut    string
		wantErr    string
	}{
		{name: "missing base is pulled", from: "registry.test/pullme:1", wantOut: "pulled registry.test/pullme:1"},
		{name: "missing everywhere", from: "nosuch:1", wantErr: "not found locally, and the pull failed"},
		{name: "--pull fails like docker when the registry has no such image", from: "busybox", pull: true, wantErr: "pull access denied"},
		{name: "local base without --pull", from: "busybox", wantOut: "Step 1/1 : FROM busybox"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + tc.from + "\n"})
			out, _, err := build(t, b, dir, Options{Pull: tc.pull})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !strings.Contains(out, tc.wantOut) {
				t.Fatalf("out %q, err %v", out, err)
			}
		})
	}
}

func TestParallelStages(t *testing.T) {
	f := newFake(t)
	b, err := New(f, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	df := `FROM busybox AS a
RUN echo a1
RUN echo a2
FROM busybox AS b
RUN echo b1
RUN echo %s
FROM busybox
COPY --from=a / /a
COPY --from=b / /b
`
	tests := []struct {
		name, bLast, wantErr string
	}{
		{"ordered output", "b2", ""},
		{"one stage fails", "fail-b", "returned a non-zero code: 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"Dockerfile": fmt.Sprintf(df, tc.bLast)})
			out, _, err := build(t, b, dir, Options{NoCache: true})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q\n%s", err, tc.wantErr, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("build: %v\n%s", err, out)
			}
			steps := regexp.MustCompile(`(?m)^Step (\d+)/9 : `).FindAllStringSubmatch(out, -1)
			for i, m := range steps {
				if m[1] != fmt.Sprint(i+1) {
					t.Fatalf("steps out of order:\n%s", out)
				}
			}
			if len(steps) != 9 || strings.Index(out, "ran /bin/sh -c echo a2") > strings.Index(out, "Step 4/9") {
				t.Fatalf("stage output not whole and in order:\n%s", out)
			}
		})
	}
}

func TestFromPlatform(t *testing.T) {
	f := newFake(t)
	b, err := New(f, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, tc := range []struct {
		from    string
		wantErr bool
	}{
		{"FROM --platform=$BUILDPLATFORM busybox", false},
		{"FROM --platform=linux/" + goarch() + " busybox", false},
		{"FROM --platform=linux/s390x busybox", true},
	} {
		dir := writeFiles(t, map[string]string{"Dockerfile": tc.from + "\n"})
		out, _, err := build(t, b, dir, Options{})
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err %v\n%s", tc.from, err, out)
		}
	}
}
