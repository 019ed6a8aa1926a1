package cli

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/jsonmessage"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/opts"
)

type buildOptions struct {
	tags       []string
	file       string
	buildArgs  []string
	labels     []string
	target     string
	network    string
	quiet      bool
	noCache    bool
	pull       bool
	rm         bool
	forceRm    bool
	iidFile    string
	platform   string
	cacheFrom  []string
	addHosts   []string
	shmSize    opts.MemBytes
	memory     opts.MemBytes
	memorySwap opts.MemBytes
}

func newBuildCommand(c *CLI) *cobra.Command {
	var o buildOptions
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] PATH | -",
		Short: "Build an image from a Dockerfile",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runBuild(cmd, args[0], o)
		},
	}
	flags := cmd.Flags()
	flags.StringArrayVarP(&o.tags, "tag", "t", nil, `Name and optionally a tag in the "name:tag" format`)
	flags.StringVarP(&o.file, "file", "f", "", `Name of the Dockerfile (default: "PATH/Dockerfile")`)
	flags.StringArrayVar(&o.buildArgs, "build-arg", nil, "Set build-time variables")
	flags.StringArrayVar(&o.labels, "label", nil, "Set metadata for an image")
	flags.StringVar(&o.target, "target", "", "Set the target build stage to build")
	flags.StringVar(&o.network, "network", "default", "Set the networking mode for the RUN instructions during build")
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress the build output and print image ID on success")
	flags.BoolVar(&o.noCache, "no-cache", false, "Do not use cache when building the image")
	flags.BoolVar(&o.pull, "pull", false, "Always attempt to pull a newer version of the image")
	flags.BoolVar(&o.rm, "rm", true, "Remove intermediate containers after a successful build")
	flags.BoolVar(&o.forceRm, "force-rm", false, "Always remove intermediate containers")
	flags.StringVar(&o.iidFile, "iidfile", "", "Write the image ID to the file")
	flags.StringVar(&o.platform, "platform", "", "Set platform if server is multi-platform capable")
	flags.StringArrayVar(&o.cacheFrom, "cache-from", nil, "Images to consider as cache sources")
	flags.StringArrayVar(&o.addHosts, "add-host", nil, "Add a custom host-to-IP mapping (host:ip)")
	flags.Var(&o.shmSize, "shm-size", "Size of /dev/shm")
	flags.VarP(&o.memory, "memory", "m", "Memory limit")
	flags.Var(&o.memorySwap, "memory-swap", "Swap limit equal to memory plus swap: -1 to enable unlimited swap")
	return cmd
}

// buildArgsMap turns --build-arg values into the API's map; a bare NAME takes the client's value
// when it has one and is sent as null (the Dockerfile's default) otherwise, as docker does.
func buildArgsMap(values []string) map[string]*string {
	m := make(map[string]*string, len(values))
	for _, v := range values {
		k, val, ok := strings.Cut(v, "=")
		if ok {
			val := val
			m[k] = &val
			continue
		}
		if env, set := os.LookupEnv(k); set {
			m[k] = &env
		} else {
			m[k] = nil
		}
	}
	return m
}

func (c *CLI) runBuild(cmd *cobra.Command, contextArg string, o buildOptions) error {
	var buildCtx io.Reader
	dockerfileName := o.file
	switch {
	case contextArg == "-":
		if o.file != "" && o.file != "-" {
			return errors.New("dockerfile can only be read from stdin when the context is a directory")
		}
		r, name, err := contextFromStdin(c.in)
		if err != nil {
			return err
		}
		buildCtx, dockerfileName = r, name
	default:
		st, err := os.Stat(contextArg)
		if err != nil {
			return fmt.Errorf("unable to prepare context: path %q not found", contextArg)
		}
		if !st.IsDir() {
			return fmt.Errorf("unable to prepare context: context must be a directory: %s", contextArg)
		}
		var dfContent []byte
		if o.file == "-" {
			if dfContent, err = io.ReadAll(c.in); err != nil {
				return err
			}
		}
		if handled, err := c.buildLocalDir(cmd, contextArg, o); handled {
			return err
		}
		r, name, err := contextFromDir(contextArg, o.file, dfContent)
		if err != nil {
			return err
		}
		buildCtx, dockerfileName = r, name
	}

	return c.sendBuild(cmd, buildCtx, dockerfileName, "", o)
}

// buildLocalDir is berth's fast path for a directory context when berthd
// listens on a local unix socket: the daemon reads the directory in place
// (remote=dir:<abs path>), so an unchanged context is neither sent nor
// re-read (its file hashes are cached by path, size, mtime and inode).
// handled is false, and the caller sends a tar, when the path does not
// apply or the daemon refuses it (e.g. dockerd). BERTH_BUILD_SEND_CONTEXT=1
// turns it off.
func (c *CLI) buildLocalDir(cmd *cobra.Command, dir string, o buildOptions) (handled bool, err error) {
	if o.file == "-" || !strings.HasPrefix(c.Host(), "unix://") || os.Getenv("BERTH_BUILD_SEND_CONTEXT") != "" {
		return false, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false, nil
	}
	df := ""
	if o.file != "" {
		if df, err = filepath.Abs(o.file); err != nil {
			return false, nil
		}
	}
	api, err := c.Client()
	if err != nil {
		return false, nil
	}
	if sv, err := api.ServerVersion(cmd.Context(), client.ServerVersionOptions{}); err != nil || sv.Platform.Name != "Berth Engine" {
		return false, nil
	}
	err = c.sendBuild(cmd, http.NoBody, df, "dir:"+abs, o)
	if err != nil && (cerrdefs.IsPermissionDenied(err) || strings.Contains(err.Error(), "context directory")) {
		return false, nil // the daemon cannot read the directory: send the context instead
	}
	return true, err
}

// sendBuild posts the build and renders its output stream.
func (c *CLI) sendBuild(cmd *cobra.Command, buildCtx io.Reader, dockerfileName, remote string, o buildOptions) error {
	ctx := cmd.Context()
	api, err := c.Client()
	if err != nil {
		return err
	}
	if !o.quiet && remote == "" {
		buildCtx = &contextCounter{r: buildCtx, done: func(n int64) {
			fmt.Fprintf(c.out, "Sending build context to Berth daemon  %s\n", units.HumanSize(float64(n)))
		}}
	}
	labels := opts.ConvertKVStringsToMap(o.labels)
	if len(o.labels) == 0 {
		labels = nil
	}
	bo := client.ImageBuildOptions{
		Tags: o.tags, SuppressOutput: o.quiet, NoCache: o.noCache, Remove: o.rm || o.forceRm,
		ForceRemove: o.forceRm, PullParent: o.pull, NetworkMode: o.network, ShmSize: o.shmSize.Value(),
		Memory: o.memory.Value(), MemorySwap: o.memorySwap.Value(), Dockerfile: dockerfileName,
		BuildArgs: buildArgsMap(o.buildArgs), Labels: labels, CacheFrom: o.cacheFrom,
		ExtraHosts: o.addHosts, Target: o.target, Version: build.BuilderV1,
		AuthConfigs: map[string]registry.AuthConfig{}, RemoteContext: remote,
	}
	if o.platform != "" {
		p, err := parsePlatform(o.platform)
		if err != nil {
			return err
		}
		bo.Platforms = []ocispec.Platform{*p}
	}
	res, err := api.ImageBuild(ctx, buildCtx, bo)
	if err != nil {
		return err
	}
	defer res.Body.Close()

	var imageID string
	aux := func(m jsonstream.Message) {
		var result struct{ ID string }
		if m.Aux != nil && json.Unmarshal(*m.Aux, &result) == nil && result.ID != "" {
			imageID = result.ID
		}
	}
	var out io.Writer = c.out
	var quietBuf bytes.Buffer
	if o.quiet {
		out = &quietBuf
	}
	fd, isTerm := terminalFd(out)
	err = jsonmessage.DisplayJSONMessagesStream(res.Body, out, uintptr(fd), isTerm, aux)
	if err != nil {
		var jerr *jsonstream.Error
		if errors.As(err, &jerr) {
			if o.quiet {
				// show what the build printed, so the failure can be understood
				_, _ = io.Copy(c.err, &quietBuf)
			}
			code := jerr.Code
			if code == 0 {
				code = 1
			}
			return StatusError{Status: jerr.Message, StatusCode: code}
		}
		return err
	}
	if imageID == "" && o.quiet {
		// the classic builder answers -q with the id as its only output
		imageID = strings.TrimSpace(quietBuf.String())
	}
	if o.quiet {
		fmt.Fprintln(c.out, imageID)
	}
	if o.iidFile != "" && imageID != "" {
		if err := os.WriteFile(o.iidFile, []byte(imageID), 0o666); err != nil {
			return fmt.Errorf("cannot write the image ID to %s: %w", o.iidFile, err)
		}
	}
	return nil
}

// contextCounter reports the size of the build context once it has all been sent.
type contextCounter struct {
	r    io.Reader
	n    int64
	done func(int64)
}

func (c *contextCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if errors.Is(err, io.EOF) && c.done != nil {
		c.done(c.n)
		c.done = nil
	}
	return n, err
}

// contextFromStdin takes a tar (plain or compressed: the daemon unpacks it) or a lone Dockerfile from stdin.
func contextFromStdin(in io.Reader) (io.Reader, string, error) {
	br := bufio.NewReader(in)
	head, _ := br.Peek(512)
	if isArchive(head) {
		return br, "", nil
	}
	df, err := io.ReadAll(br)
	if err != nil {
		return nil, "", err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o600, Size: int64(len(df)), Typeflag: tar.TypeReg}); err != nil {
		return nil, "", err
	}
	if _, err := tw.Write(df); err != nil {
		return nil, "", err
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	return &buf, "Dockerfile", nil
}

// isArchive recognises tar, gzip, bzip2, xz and zstd headers.
func isArchive(h []byte) bool {
	switch {
	case bytes.HasPrefix(h, []byte{0x1f, 0x8b}), bytes.HasPrefix(h, []byte("BZh")),
		bytes.HasPrefix(h, []byte{0xfd, '7', 'z', 'X', 'Z', 0}), bytes.HasPrefix(h, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return true
	case len(h) >= 262 && (string(h[257:262]) == "ustar"):
		return true
	}
	return false
}

// contextFromDir tars dir without what .dockerignore excludes (the Dockerfile and .dockerignore are
// always sent). A Dockerfile outside the context, or read from stdin, is added under a generated name.
func contextFromDir(dir, file string, dfContent []byte) (io.Reader, string, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	var patterns []string
	if f, err := os.Open(filepath.Join(root, ".dockerignore")); err == nil {
		patterns, err = ignorefile.ReadAll(f)
		_ = f.Close()
		if err != nil {
			return nil, "", fmt.Errorf("reading .dockerignore: %w", err)
		}
	}
	dfName := "Dockerfile"
	var extra []byte // a Dockerfile that must be added to the archive
	switch {
	case file == "-":
		dfName, extra = ".dockerfile.berth-stdin", dfContent
	case file != "":
		abs, err := filepath.Abs(file)
		if err != nil {
			return nil, "", err
		}
		rel, err := filepath.Rel(root, abs)
		if err == nil && !strings.HasPrefix(rel, "..") {
			dfName = filepath.ToSlash(rel)
		} else {
			if extra, err = os.ReadFile(abs); err != nil {
				return nil, "", fmt.Errorf("unable to prepare context: %w", err)
			}
			dfName = ".dockerfile.berth-outside"
		}
	}
	if extra == nil {
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(dfName))); err != nil {
			return nil, "", fmt.Errorf("unable to prepare context: unable to evaluate symlinks in Dockerfile path: %w", err)
		}
	}
	// the daemon needs the Dockerfile and .dockerignore even when they are ignored
	patterns = append(patterns, "!"+dfName, "!.dockerignore")
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, "", fmt.Errorf("invalid .dockerignore pattern: %w", err)
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeContextTar(pw, root, pm, dfName, extra))
	}()
	return pr, dfName, nil
}

// mayReinclude reports whether an exclusion ("!") pattern could match below dir.
func mayReinclude(pm *patternmatcher.PatternMatcher, dir string) bool {
	for _, p := range pm.Patterns() {
		if !p.Exclusion() {
			continue
		}
		text := p.String()
		if strings.HasPrefix(text, dir+"/") || strings.ContainsAny(strings.SplitN(text, "/", 2)[0], "*?[") {
			return true
		}
	}
	return false
}

func writeContextTar(w io.Writer, root string, pm *patternmatcher.PatternMatcher, extraName string, extra []byte) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		skip, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if skip {
			// an ignored directory is skipped whole unless a "!" pattern may re-include something in it
			if d.IsDir() && !mayReinclude(pm, rel) {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = rel
		if info.IsDir() {
			hdr.Name += "/"
		}
		// ownership of the build context is not meaningful to the build
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			_ = f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if extra != nil {
		if err := tw.WriteHeader(&tar.Header{Name: extraName, Mode: 0o600, Size: int64(len(extra)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(extra); err != nil {
			return err
		}
	}
	return tw.Close()
}
