package image

import (
	"context"
	"io"
	"runtime"
	"time"

	"github.com/berth-dev/berth/errdefs"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// CommitOptions describe a `docker commit`.
type CommitOptions struct {
	// Snapshot is the container's active snapshot key (its writable layer).
	Snapshot string
	// Image is the id of the image the container was created from ("" for
	// none); its layers, config and history are the base.
	Image digest.Digest
	// Config, when set, replaces the base image's runtime config (the
	// daemon passes the container's merged config, as docker does).
	Config *dockerspec.DockerOCIImageConfig
	// Changes are Dockerfile instructions applied last (see ApplyChanges).
	Changes []string
	// Author and Comment go into the config and the new history entry;
	// CreatedBy is the history's command (docker uses the container's Cmd).
	Author, Comment, CreatedBy string
	// Ref names the new image ("" leaves it untagged).
	Ref string
	// Layer, when set, is the new layer's tar, made by the caller instead of
	// taken from Snapshot's changes (a build's COPY writes it directly).
	Layer io.Reader
}

// Commit makes an image of a container: its base image plus one new layer
// holding the changes in its writable snapshot. The caller pauses the
// container if it wants a consistent copy.
func (s *Store) Commit(ctx context.Context, opts CommitOptions) (*Image, error) {
	var tags []string
	if opts.Ref != "" {
		if _, err := ParseTag(opts.Ref); err != nil {
			return nil, err
		}
		tags = []string{opts.Ref}
	}
	var cfg dockerspec.DockerOCIImage
	var layers []Layer
	if opts.Image != "" {
		base, err := s.Get(ctx, opts.Image.String())
		if err != nil {
			return nil, err
		}
		cfg = base.Config
		if layers, err = s.Layers(ctx, base); err != nil {
			return nil, err
		}
	} else {
		cfg.Platform = ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"}
	}
	if opts.Config != nil {
		cfg.Config = *opts.Config
	}
	if err := ApplyChanges(&cfg.Config, opts.Changes); err != nil {
		return nil, err
	}
	parent := ""
	if n := len(layers); n > 0 {
		parent = layers[n-1].ChainID
	}
	layer := opts.Layer
	if layer == nil {
		in, err := s.sn.Stat(ctx, opts.Snapshot)
		if err != nil {
			return nil, err
		}
		if in.Parent != parent {
			return nil, errdefs.InvalidArgument("commit: snapshot %s is not based on image %s", opts.Snapshot, opts.Image)
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(s.sn.Diff(ctx, opts.Snapshot, pw)) }()
		defer pr.CloseWithError(io.ErrClosedPipe)
		layer = pr
	}
	l, err := s.ApplyLayer(ctx, parent, layer)
	if err != nil {
		return nil, err
	}
	layers = append(layers, l)

	now := time.Now().UTC()
	cfg.Created = &now
	if opts.Author != "" {
		cfg.Author = opts.Author
	}
	cfg.History = append(cfg.History, ocispec.History{
		Created:   &now,
		CreatedBy: opts.CreatedBy,
		Author:    opts.Author,
		Comment:   opts.Comment,
	})
	if cfg.OS == "" {
		cfg.OS = "linux"
	}
	if cfg.Architecture == "" {
		cfg.Architecture = runtime.GOARCH
	}
	return s.Create(ctx, cfg, layers, CreateOptions{Tags: tags, Parent: opts.Image})
}
