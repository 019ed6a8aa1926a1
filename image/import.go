package image

import (
	"context"
	"io"
	"runtime"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Import makes a one-layer image from a filesystem tar (uncompressed, gzip,
// zstd or bzip2; sniffed), as `docker import` does. changes are Dockerfile
// instructions applied to the config (see ApplyChanges); message becomes the
// history comment; ref names the image ("" leaves it untagged).
func (s *Store) Import(ctx context.Context, r io.Reader, ref string, changes []string, message string) (*Image, error) {
	var tags []string
	if ref != "" {
		if _, err := ParseTag(ref); err != nil {
			return nil, err
		}
		tags = []string{ref}
	}
	var cfg dockerspec.DockerOCIImage
	if err := ApplyChanges(&cfg.Config, changes); err != nil {
		return nil, err
	}
	l, err := s.ApplyLayer(ctx, "", r)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	if message == "" {
		message = "Imported from -"
	}
	cfg.Created = &now
	cfg.Platform = ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"}
	cfg.History = []ocispec.History{{Created: &now, Comment: message}}
	return s.Create(ctx, cfg, []Layer{l}, CreateOptions{Tags: tags})
}
