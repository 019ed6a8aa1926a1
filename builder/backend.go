package builder

import (
	"context"
	"io"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is what the builder needs to know about an image.
type Image struct {
	ID     digest.Digest
	Config dockerspec.DockerOCIImage
}

// Backend is the daemon as the builder sees it. Every image the builder
// makes is a child of the image it starts from; containers it creates are
// removed by the builder.
type Backend interface {
	// GetImage resolves a name, ID or digest reference; NotFound if absent.
	GetImage(ctx context.Context, ref string) (*Image, error)
	// CreateBuildContainer creates (does not start) a container of image
	// with cfg as its complete config and only loopback networking.
	CreateBuildContainer(ctx context.Context, image digest.Digest, cfg *container.Config) (string, error)
	// RunContainer starts a created container, copies its output to stdout
	// and stderr until it exits, and returns its exit code.
	RunContainer(ctx context.Context, id string, stdout, stderr io.Writer) (int, error)
	// RemoveContainer removes a container and its writable layer, killing it
	// if it still runs.
	RemoveContainer(ctx context.Context, id string) error
	// CommitContainer makes an image of the container's image plus one layer
	// of its writable layer's changes, with cfg as the runtime config.
	CommitContainer(ctx context.Context, id string, cfg *dockerspec.DockerOCIImageConfig, createdBy string) (digest.Digest, error)
	// CommitFiles prepares a writable layer on parent ("" for an empty
	// filesystem), mounts it, lets fn change the files under root, and
	// commits it as a new image with cfg.
	CommitFiles(ctx context.Context, parent digest.Digest, cfg *dockerspec.DockerOCIImageConfig, createdBy string, fn func(root string) error) (digest.Digest, error)
	// CommitLayer makes a new image of parent ("" for none) plus one layer
	// whose tar write produces, with cfg.
	CommitLayer(ctx context.Context, parent digest.Digest, cfg *dockerspec.DockerOCIImageConfig, createdBy string, write func(w io.Writer) error) (digest.Digest, error)
	// MountImage mounts image's files read-only for fn.
	MountImage(ctx context.Context, image digest.Digest, fn func(root string) error) error
	// CreateImage makes an image with parent's layers ("" for none), cfg as
	// its runtime config and an empty-layer history entry createdBy.
	CreateImage(ctx context.Context, parent digest.Digest, cfg *dockerspec.DockerOCIImageConfig, createdBy string) (digest.Digest, error)
	// RestoreCachedImage makes the image a --cache-from source implies for
	// one step: parent's layers plus the source's layer at index layer (none
	// when layer < 0), cfg, and parent's history plus h.
	RestoreCachedImage(ctx context.Context, parent, source digest.Digest, layer int, cfg *dockerspec.DockerOCIImageConfig, h ocispec.History) (digest.Digest, error)
	// TagImage points the name ref at image.
	TagImage(ctx context.Context, image digest.Digest, ref string) error
	// DeleteImage removes an untagged image nothing else uses (prune).
	DeleteImage(ctx context.Context, image digest.Digest) error
	// PullImage fetches ref from its registry with the credentials auth
	// holds for it (anonymous otherwise), reporting progress lines to out.
	PullImage(ctx context.Context, ref string, auth map[string]RegistryAuth, out io.Writer) (*Image, error)
}

// RegistryAuth is one registry's credentials from X-Registry-Config.
type RegistryAuth struct {
	Username, Password, IdentityToken, RegistryToken string
}
