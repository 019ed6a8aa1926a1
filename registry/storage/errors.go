package storage

import (
	"fmt"

	"github.com/berth-dev/berth/errdefs"
)

// Sentinels for the OCI error codes the repository rules can produce. Each
// wraps an errdefs class so callers outside the registry still read the
// class; the registry's HTTP layer maps them to OCI codes in one switch.
var (
	ErrBlobUnknown         = fmt.Errorf("blob unknown to registry: %w", errdefs.ErrNotFound)
	ErrBlobUploadUnknown   = fmt.Errorf("blob upload unknown to registry: %w", errdefs.ErrNotFound)
	ErrBlobUploadInvalid   = fmt.Errorf("blob upload invalid: %w", errdefs.ErrInvalidArgument)
	ErrRangeInvalid        = fmt.Errorf("requested range not satisfiable: %w", errdefs.ErrInvalidArgument)
	ErrDigestInvalid       = fmt.Errorf("provided digest did not match uploaded content: %w", errdefs.ErrInvalidArgument)
	ErrManifestUnknown     = fmt.Errorf("manifest unknown: %w", errdefs.ErrNotFound)
	ErrManifestInvalid     = fmt.Errorf("manifest invalid: %w", errdefs.ErrInvalidArgument)
	ErrManifestBlobUnknown = fmt.Errorf("manifest references a blob unknown to the repository: %w", errdefs.ErrInvalidArgument)
	ErrNameInvalid         = fmt.Errorf("invalid repository name: %w", errdefs.ErrInvalidArgument)
	ErrNameUnknown         = fmt.Errorf("repository name not known to registry: %w", errdefs.ErrNotFound)
	ErrTagInvalid          = fmt.Errorf("invalid tag: %w", errdefs.ErrInvalidArgument)
	ErrSizeInvalid         = fmt.Errorf("provided length did not match content length: %w", errdefs.ErrInvalidArgument)
	ErrTooLarge            = fmt.Errorf("content too large: %w", errdefs.ErrInvalidArgument)
	ErrUnsupported         = fmt.Errorf("the operation is unsupported: %w", errdefs.ErrNotImplemented)
)
