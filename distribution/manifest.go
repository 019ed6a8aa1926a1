package distribution

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	goruntime "runtime"
	"strings"

	"github.com/berth-dev/berth/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's media types, beside the OCI ones in ocispec.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mediaTypeDockerSchema1      = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageIndex, MediaTypeDockerManifestList,
	ocispec.MediaTypeImageManifest, MediaTypeDockerManifest,
}, ", ")

// maxManifestSize bounds what a registry may send as a manifest or config.
const maxManifestSize = 8 << 20

// fetched is a manifest or index as the registry served it.
type fetched struct {
	raw       []byte
	digest    digest.Digest
	mediaType string
}

// manifestHead is the part of a manifest or index that says which it is.
type manifestHead struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	Config        ocispec.Descriptor   `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
}

func isIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// getManifest fetches a manifest by tag or digest and verifies its digest:
// against the reference's digest, else against Docker-Content-Digest.
func (r *repoClient) getManifest(ctx context.Context, ref string, want digest.Digest) (*fetched, error) {
	resp, err := r.do(ctx, http.MethodGet, "/v2/"+r.name+"/manifests/"+ref, http.Header{"Accept": {manifestAccept}}, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, manifestError(resp, r.name, ref)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
	if err != nil {
		return nil, errdefs.Unavailable("read manifest %s:%s: %w", r.name, ref, err)
	}
	if len(raw) > maxManifestSize {
		return nil, errdefs.InvalidArgument("manifest %s:%s: larger than %d bytes", r.name, ref, maxManifestSize)
	}
	if want == "" {
		if h := resp.Header.Get("Docker-Content-Digest"); h != "" {
			if d, err := digest.Parse(h); err == nil {
				want = d
			}
		}
	}
	got := digest.FromBytes(raw)
	if want != "" {
		if err := want.Validate(); err != nil {
			return nil, errdefs.InvalidArgument("manifest %s:%s: %w", r.name, ref, err)
		}
		if want.Algorithm().FromBytes(raw) != want {
			return nil, errdefs.InvalidArgument("manifest %s:%s: content does not match digest %s: refusing it", r.name, ref, want)
		}
		got = want
	}
	var head manifestHead
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, errdefs.InvalidArgument("manifest %s:%s: %w", r.name, ref, err)
	}
	mt := head.MediaType
	if mt == "" {
		mt = strings.TrimSpace(strings.Split(resp.Header.Get("Content-Type"), ";")[0])
	}
	if mt == mediaTypeDockerSchema1 || head.SchemaVersion == 1 {
		return nil, errdefs.InvalidArgument("manifest %s:%s: Docker Image Format v1 and Docker Image manifest version 2, schema 1 are not supported", r.name, ref)
	}
	if mt == "" || mt == "application/json" {
		if head.Manifests != nil {
			mt = ocispec.MediaTypeImageIndex
		} else {
			mt = ocispec.MediaTypeImageManifest
		}
	}
	return &fetched{raw: raw, digest: got, mediaType: mt}, nil
}

func manifestError(resp *http.Response, name, ref string) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	code := registryCode(b)
	switch {
	case resp.StatusCode == http.StatusNotFound && (code == "MANIFEST_UNKNOWN" || code == "TAG_INVALID"):
		return errdefs.NotFound("manifest for %s not found: manifest unknown: manifest unknown", joinRef(name, ref))
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return errdefs.NotFound("repository does not exist or may require 'docker login': denied: requested access to the resource is denied")
	}
	return errdefs.Unavailable("fetch manifest %s: %s", joinRef(name, ref), resp.Status)
}

func joinRef(name, ref string) string {
	if strings.Contains(ref, ":") {
		return name + "@" + ref
	}
	return name + ":" + ref
}

// ParsePlatform parses "os[/arch[/variant]]"; "" is the host's platform.
func ParsePlatform(s string) (ocispec.Platform, error) {
	p := ocispec.Platform{OS: "linux", Architecture: goruntime.GOARCH}
	if s == "" {
		if p.Architecture == "arm64" {
			p.Variant = "v8"
		}
		return p, nil
	}
	parts := strings.Split(strings.ToLower(s), "/")
	if len(parts) > 3 || parts[0] == "" {
		return p, errdefs.InvalidArgument("invalid platform %q: want os[/arch[/variant]]", s)
	}
	p.OS = parts[0]
	if len(parts) > 1 {
		p.Architecture = parts[1]
	}
	if len(parts) > 2 {
		p.Variant = parts[2]
	}
	switch p.Architecture {
	case "x86_64", "x86-64":
		p.Architecture = "amd64"
	case "aarch64":
		p.Architecture, p.Variant = "arm64", "v8"
	}
	if p.Architecture == "arm64" && p.Variant == "" {
		p.Variant = "v8"
	}
	return p, nil
}

// FormatPlatform is os/arch[/variant].
func FormatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// matchPlatform says whether an index entry's platform serves want.
func matchPlatform(have *ocispec.Platform, want ocispec.Platform) bool {
	if have == nil {
		return false
	}
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	hv := have.Variant
	if have.Architecture == "arm64" && hv == "" {
		hv = "v8"
	}
	return want.Variant == "" || hv == want.Variant
}

// pickManifest chooses the index entry for want: an exact variant first.
func pickManifest(raw []byte, want ocispec.Platform) (ocispec.Descriptor, bool) {
	var idx ocispec.Index
	if json.Unmarshal(raw, &idx) != nil {
		return ocispec.Descriptor{}, false
	}
	var best *ocispec.Descriptor
	for i, m := range idx.Manifests {
		if !matchPlatform(m.Platform, want) {
			continue
		}
		if best == nil || (m.Platform.Variant == want.Variant && best.Platform.Variant != want.Variant) {
			best = &idx.Manifests[i]
		}
	}
	if best == nil {
		return ocispec.Descriptor{}, false
	}
	return *best, true
}
