package builder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/berth-dev/berth/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/opencontainers/go-digest"
)

// Builder runs builds for one daemon. It is safe for concurrent builds.
type Builder struct {
	backend Backend
	root    string
	cache   *Cache
}

// New returns a builder whose cache and temporary contexts live under root.
func New(backend Backend, root string) (*Builder, error) {
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o700); err != nil {
		return nil, errdefs.System("create builder directory %s: %w", root, err)
	}
	// Contexts left by a build that was killed with the daemon.
	if ents, err := os.ReadDir(filepath.Join(root, "tmp")); err == nil {
		for _, e := range ents {
			os.RemoveAll(filepath.Join(root, "tmp", e.Name()))
		}
	}
	c, err := OpenCache(filepath.Join(root, "cache.db"))
	if err != nil {
		return nil, err
	}
	return &Builder{backend: backend, root: root, cache: c}, nil
}

// Close releases the cache database.
func (b *Builder) Close() error { return b.cache.Close() }

// Options are the parameters of one build (POST /build's query).
type Options struct {
	Dockerfile  string             // path in the context; default "Dockerfile"
	Tags        []string           // names for the result
	BuildArgs   map[string]*string // --build-arg; a nil value means "from the environment" (already resolved by the client)
	Labels      map[string]string  // --label, added to the final image
	Target      string             // stage to stop at; default the last
	NoCache     bool
	Pull        bool                    // pull FROM images even when present
	Auth        map[string]RegistryAuth // registry host -> credentials for pulls
	Quiet       bool                    // only errors (and the buffered output before one)
	CacheFrom   []string                // images trusted as cache sources
	NetworkMode string                  // "", "default", "bridge" or "none": RUN gets loopback only
	Platform    string                  // "" or the host's os/arch
}

// Output receives a build's progress.
type Output struct {
	// Stream gets docker's classic step lines and RUN output.
	Stream io.Writer
	// Aux gets the built image's ID before "Successfully built".
	Aux func(id digest.Digest)
}

// Result is a finished build.
type Result struct {
	ID   digest.Digest
	Tags []string
}

// Build runs the Dockerfile in src and tags the result. On failure nothing
// is tagged and every container the build made is removed.
func (b *Builder) Build(ctx context.Context, src Source, opts Options, out Output) (*Result, error) {
	if out.Stream == nil {
		out.Stream = io.Discard
	}
	var quietBuf *bytes.Buffer
	if opts.Quiet {
		quietBuf = &bytes.Buffer{}
		defer func(w io.Writer) {
			if quietBuf != nil {
				w.Write(quietBuf.Bytes())
			}
		}(out.Stream)
	}
	real := out.Stream
	if quietBuf != nil {
		out.Stream = quietBuf
	}
	res, err := b.build(ctx, src, opts, &syncWriter{w: out.Stream}, out.Aux)
	if err == nil && quietBuf != nil {
		quietBuf = nil // success: -q shows only the ID, as dockerd does
		fmt.Fprintln(real, res.ID)
	}
	return res, err
}

func (b *Builder) build(ctx context.Context, src Source, opts Options, stream io.Writer, aux func(digest.Digest)) (*Result, error) {
	if err := checkPlatform(opts.Platform); err != nil {
		return nil, err
	}
	switch opts.NetworkMode {
	case "", "default", "bridge", "none":
	default:
		return nil, errdefs.InvalidArgument("network mode %q is not supported for builds: RUN gets loopback only", opts.NetworkMode)
	}
	var tags []string
	for _, t := range opts.Tags {
		n, err := reference.ParseNormalizedNamed(t)
		if err != nil {
			return nil, errdefs.InvalidArgument("invalid tag %q: %v", t, err)
		}
		if _, ok := n.(reference.Digested); ok {
			return nil, errdefs.InvalidArgument("invalid tag %q: a tag cannot hold a digest", t)
		}
		tags = append(tags, reference.FamiliarString(reference.TagNameOnly(n)))
	}
	bc, err := openContext(ctx, src, filepath.Join(b.root, "tmp"), b.cache)
	if err != nil {
		return nil, err
	}
	defer bc.Close()
	dfName := opts.Dockerfile
	if dfName == "" {
		dfName = "Dockerfile"
	}
	df, err := bc.readDockerfile(dfName)
	if err != nil {
		return nil, err
	}
	parsed, err := parser.Parse(bytes.NewReader(df))
	if err != nil {
		return nil, errdefs.InvalidArgument("dockerfile parse error: %w", err)
	}
	stages, metaArgs, err := instructions.Parse(parsed.AST, nil)
	if err != nil {
		return nil, errdefs.InvalidArgument("%w", err)
	}
	if len(stages) == 0 {
		return nil, errdefs.InvalidArgument("the Dockerfile (%s) cannot be empty", dfName)
	}
	run := &buildRun{
		b: b, bc: bc, opts: opts, out: stream, escape: parsed.EscapeToken,
		stages: stages, usedArgs: map[string]bool{},
	}
	for _, ref := range opts.CacheFrom {
		img, err := b.backend.GetImage(ctx, ref)
		if err != nil {
			fmt.Fprintf(stream, "[Warning] --cache-from image %s: %v\n", ref, err)
			continue
		}
		run.cacheFrom = append(run.cacheFrom, img)
	}
	if err := run.resolveMeta(metaArgs); err != nil {
		return nil, err
	}
	plan, err := run.plan()
	if err != nil {
		return nil, err
	}
	id, err := run.execute(ctx, plan)
	bc.saveHashes()
	if err != nil {
		return nil, err
	}
	run.warnUnusedArgs()
	if aux != nil {
		aux(id)
	}
	fmt.Fprintf(stream, "Successfully built %s\n", shortID(id))
	for _, t := range tags {
		if err := b.backend.TagImage(ctx, id, t); err != nil {
			return nil, err
		}
		fmt.Fprintf(stream, "Successfully tagged %s\n", t)
	}
	return &Result{ID: id, Tags: tags}, nil
}

func checkPlatform(p string) error {
	if p == "" {
		return nil
	}
	os_, rest, _ := strings.Cut(strings.ToLower(p), "/")
	arch, _, _ := strings.Cut(rest, "/")
	if os_ == "linux" && (arch == "" || arch == runtime.GOARCH) {
		return nil
	}
	return errdefs.InvalidArgument("platform %q is not supported: berthd builds for the host platform (linux/%s) only", p, runtime.GOARCH)
}

func shortID(id digest.Digest) string {
	h := id.Encoded()
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// syncWriter serialises writes from parallel stages.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// PruneResult is what Prune removed.
type PruneResult struct {
	CachesDeleted []string // image IDs of cached steps that were removed
	Forgotten     int      // cache records dropped (steps and file hashes)
}

// Prune forgets the build cache and removes the images of cached steps
// that nothing else uses (no name, no container, no child image).
func (b *Builder) Prune(ctx context.Context) (PruneResult, error) {
	rep, err := b.cache.Prune()
	if err != nil {
		return PruneResult{}, err
	}
	res := PruneResult{CachesDeleted: []string{}, Forgotten: len(rep.Steps) + rep.Hashes}
	// Children before parents: retry until a pass removes nothing.
	left := rep.Steps
	for len(left) > 0 {
		var next []digest.Digest
		for _, id := range left {
			if err := b.backend.DeleteImage(ctx, id); err != nil {
				if !errdefs.IsNotFound(err) {
					next = append(next, id)
				}
				continue
			}
			res.CachesDeleted = append(res.CachesDeleted, id.String())
		}
		if len(next) == len(left) {
			break
		}
		left = next
	}
	return res, nil
}
