package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest media types the registry accepts.
const (
	MediaTypeOCIManifest    = v1.MediaTypeImageManifest
	MediaTypeOCIIndex       = v1.MediaTypeImageIndex
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// MaxManifestSize is the largest manifest accepted (the spec's suggested 4 MiB).
const MaxManifestSize = 4 << 20

func isIndex(mt string) bool { return mt == MediaTypeOCIIndex || mt == MediaTypeDockerList }

func knownManifest(mt string) bool {
	switch mt {
	case MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerList:
		return true
	}
	return false
}

// parsedManifest is the union of the fields the rules read from any of the
// accepted manifest kinds.
type parsedManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *v1.Descriptor    `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Manifests     []v1.Descriptor   `json:"manifests"`
	Subject       *v1.Descriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// Manifest is a stored manifest.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	Body      []byte
}

// PutResult says what PutManifest stored.
type PutResult struct {
	Digest  digest.Digest
	Subject digest.Digest // empty when the manifest has no subject
	Tags    []string
}

// ResolveManifest turns a tag or digest reference into a digest linked in repo.
func (s *Store) ResolveManifest(ctx context.Context, repo, ref string) (digest.Digest, error) {
	if strings.Contains(ref, ":") {
		d, err := ParseDigest(ref)
		if err != nil {
			return "", err
		}
		if _, err := s.d.Stat(ctx, revisionLinkPath(repo, d)); err != nil {
			if notFound(err) {
				return "", fmt.Errorf("manifest %s in %s: %w", d, repo, ErrManifestUnknown)
			}
			return "", err
		}
		return d, nil
	}
	if !ValidTag(ref) {
		return "", fmt.Errorf("tag %q: %w", ref, ErrTagInvalid)
	}
	d, err := s.readLink(ctx, tagLinkPath(repo, ref))
	if err != nil {
		if notFound(err) {
			return "", fmt.Errorf("manifest %s:%s: %w", repo, ref, ErrManifestUnknown)
		}
		return "", err
	}
	return d, nil
}

// GetManifest reads a manifest by tag or digest.
func (s *Store) GetManifest(ctx context.Context, repo, ref string) (Manifest, error) {
	d, err := s.ResolveManifest(ctx, repo, ref)
	if err != nil {
		return Manifest{}, err
	}
	body, err := s.d.GetContent(ctx, blobDataPath(d))
	if err != nil {
		if notFound(err) {
			return Manifest{}, fmt.Errorf("manifest %s in %s: %w", d, repo, ErrManifestUnknown)
		}
		return Manifest{}, err
	}
	mt, err := s.d.GetContent(ctx, revisionMediaTypePath(repo, d))
	if err != nil && !notFound(err) {
		return Manifest{}, err
	}
	m := Manifest{Digest: d, MediaType: string(mt), Body: body}
	if m.MediaType == "" {
		var pm parsedManifest
		json.Unmarshal(body, &pm)
		m.MediaType = pm.MediaType
	}
	return m, nil
}

// parseManifest validates a manifest's shape and returns its media type and
// parsed fields. contentType is the request's Content-Type.
func parseManifest(contentType string, body []byte) (string, parsedManifest, error) {
	var pm parsedManifest
	if len(body) > MaxManifestSize {
		return "", pm, fmt.Errorf("manifest of %d bytes exceeds %d: %w", len(body), MaxManifestSize, ErrTooLarge)
	}
	if err := json.Unmarshal(body, &pm); err != nil {
		return "", pm, fmt.Errorf("manifest is not JSON: %v: %w", err, ErrManifestInvalid)
	}
	mt := pm.MediaType
	ct := strings.TrimSpace(strings.Split(contentType, ";")[0])
	if mt == "" {
		mt = ct
	} else if ct != "" && knownManifest(ct) && ct != mt {
		return "", pm, fmt.Errorf("Content-Type %q does not match the manifest's mediaType %q: %w", ct, mt, ErrManifestInvalid)
	}
	if mt == "" {
		// OCI allows omitting mediaType; tell the two kinds apart by shape.
		if pm.Manifests != nil {
			mt = MediaTypeOCIIndex
		} else {
			mt = MediaTypeOCIManifest
		}
	}
	if !knownManifest(mt) {
		return "", pm, fmt.Errorf("manifest media type %q is not supported: %w", mt, ErrManifestInvalid)
	}
	if pm.SchemaVersion != 2 {
		return "", pm, fmt.Errorf("manifest schemaVersion %d, want 2: %w", pm.SchemaVersion, ErrManifestInvalid)
	}
	if isIndex(mt) {
		if pm.Config != nil || pm.Layers != nil {
			return "", pm, fmt.Errorf("index has config or layers: %w", ErrManifestInvalid)
		}
	} else if pm.Config == nil {
		return "", pm, fmt.Errorf("image manifest without config: %w", ErrManifestInvalid)
	}
	descs := pm.Layers
	descs = append(descs, pm.Manifests...)
	if pm.Config != nil {
		descs = append(descs, *pm.Config)
	}
	if pm.Subject != nil {
		descs = append(descs, *pm.Subject)
	}
	for _, d := range descs {
		if err := d.Digest.Validate(); err != nil {
			return "", pm, fmt.Errorf("descriptor digest %q: %v: %w", d.Digest, err, ErrManifestInvalid)
		}
		if d.Size < 0 {
			return "", pm, fmt.Errorf("descriptor %s has negative size: %w", d.Digest, ErrManifestInvalid)
		}
	}
	return mt, pm, nil
}

// foreign reports layers a registry need not hold: non-distributable layers
// and layers fetched from URLs.
func foreign(d v1.Descriptor) bool {
	return len(d.URLs) > 0 || strings.Contains(d.MediaType, "nondistributable") ||
		strings.Contains(d.MediaType, "foreign")
}

// PutManifest stores a manifest under ref (a tag or the digest of body) and
// under any extra tags.
func (s *Store) PutManifest(ctx context.Context, repo, ref, contentType string, body []byte, extraTags []string) (PutResult, error) {
	mt, pm, err := parseManifest(contentType, body)
	if err != nil {
		return PutResult{}, err
	}
	var tags []string
	var d digest.Digest
	if strings.Contains(ref, ":") {
		want, err := ParseDigest(ref)
		if err != nil {
			return PutResult{}, err
		}
		d = want.Algorithm().FromBytes(body)
		if d != want {
			return PutResult{}, fmt.Errorf("manifest body is %s, reference says %s: %w", d, want, ErrDigestInvalid)
		}
	} else {
		if !ValidTag(ref) {
			return PutResult{}, fmt.Errorf("tag %q: %w", ref, ErrTagInvalid)
		}
		tags = append(tags, ref)
		d = digest.Canonical.FromBytes(body)
	}
	for _, t := range extraTags {
		if !ValidTag(t) {
			return PutResult{}, fmt.Errorf("tag %q: %w", t, ErrTagInvalid)
		}
		tags = append(tags, t)
	}

	unlock, err := s.locker.RLock(ctx)
	if err != nil {
		return PutResult{}, err
	}
	defer unlock()
	// Everything the manifest names must be in this repository, so a tag
	// never points at content garbage collection could take away.
	if isIndex(mt) {
		for _, c := range pm.Manifests {
			if _, err := s.d.Stat(ctx, revisionLinkPath(repo, c.Digest)); err != nil {
				if notFound(err) {
					return PutResult{}, fmt.Errorf("index child %s: %w", c.Digest, ErrManifestBlobUnknown)
				}
				return PutResult{}, err
			}
		}
	} else {
		need := append([]v1.Descriptor{*pm.Config}, pm.Layers...)
		for _, l := range need {
			if foreign(l) {
				continue
			}
			if _, err := s.StatBlob(ctx, repo, l.Digest); err != nil {
				if notFound(err) {
					return PutResult{}, fmt.Errorf("blob %s: %w", l.Digest, ErrManifestBlobUnknown)
				}
				return PutResult{}, err
			}
		}
	}
	if _, err := s.d.Stat(ctx, blobDataPath(d)); err != nil {
		if !notFound(err) {
			return PutResult{}, err
		}
		if err := s.d.PutContent(ctx, blobDataPath(d), body); err != nil {
			return PutResult{}, err
		}
	}
	if err := s.d.PutContent(ctx, revisionMediaTypePath(repo, d), []byte(mt)); err != nil {
		return PutResult{}, err
	}
	if err := s.writeLink(ctx, revisionLinkPath(repo, d), d); err != nil {
		return PutResult{}, err
	}
	res := PutResult{Digest: d, Tags: tags}
	if pm.Subject != nil {
		at := pm.ArtifactType
		if at == "" && pm.Config != nil {
			at = pm.Config.MediaType
		}
		desc := v1.Descriptor{MediaType: mt, ArtifactType: at, Digest: d, Size: int64(len(body)), Annotations: pm.Annotations}
		b, _ := json.Marshal(desc)
		if err := s.d.PutContent(ctx, referrerPath(repo, pm.Subject.Digest, d), b); err != nil {
			return PutResult{}, err
		}
		res.Subject = pm.Subject.Digest
	}
	for _, t := range tags {
		if err := s.writeLink(ctx, tagLinkPath(repo, t), d); err != nil {
			return PutResult{}, err
		}
	}
	if err := s.locker.Note(ctx, Note{Kind: NoteManifest, Repo: repo, Digest: d}); err != nil {
		return PutResult{}, err
	}
	return res, nil
}

// DeleteManifest removes a manifest (by digest) from repo with every tag
// pointing at it, or only a tag when ref is a tag.
func (s *Store) DeleteManifest(ctx context.Context, repo, ref string) error {
	if !strings.Contains(ref, ":") {
		if !ValidTag(ref) {
			return fmt.Errorf("tag %q: %w", ref, ErrTagInvalid)
		}
		if err := s.d.Delete(ctx, tagDir(repo, ref)); err != nil {
			if notFound(err) {
				return fmt.Errorf("tag %s:%s: %w", repo, ref, ErrManifestUnknown)
			}
			return err
		}
		return nil
	}
	d, err := s.ResolveManifest(ctx, repo, ref)
	if err != nil {
		return err
	}
	body, err := s.d.GetContent(ctx, blobDataPath(d))
	if err == nil {
		var pm parsedManifest
		if json.Unmarshal(body, &pm) == nil && pm.Subject != nil {
			if err := s.d.Delete(ctx, referrerPath(repo, pm.Subject.Digest, d)); err != nil && !notFound(err) {
				return err
			}
		}
	}
	tags, err := s.Tags(ctx, repo)
	if err != nil {
		return err
	}
	for _, t := range tags {
		if td, err := s.readLink(ctx, tagLinkPath(repo, t)); err == nil && td == d {
			if err := s.d.Delete(ctx, tagDir(repo, t)); err != nil && !notFound(err) {
				return err
			}
		}
	}
	if err := s.d.Delete(ctx, revisionDir(repo, d)); err != nil {
		if notFound(err) {
			return fmt.Errorf("manifest %s in %s: %w", d, repo, ErrManifestUnknown)
		}
		return err
	}
	return nil
}

// Tags lists repo's tags in lexical order.
func (s *Store) Tags(ctx context.Context, repo string) ([]string, error) {
	children, err := s.d.List(ctx, tagsRoot(repo))
	if err != nil {
		if notFound(err) {
			if s.RepositoryExists(ctx, repo) {
				return []string{}, nil
			}
			return nil, fmt.Errorf("repository %s: %w", repo, ErrNameUnknown)
		}
		return nil, err
	}
	out := make([]string, 0, len(children))
	for _, c := range children {
		out = append(out, path.Base(c))
	}
	sort.Strings(out)
	return out, nil
}

// Referrers lists the manifests in repo whose subject is d, optionally only
// those of one artifact type.
func (s *Store) Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]v1.Descriptor, error) {
	children, err := s.d.List(ctx, referrersDir(repo, d))
	if err != nil {
		if notFound(err) {
			return []v1.Descriptor{}, nil
		}
		return nil, err
	}
	sort.Strings(children)
	out := make([]v1.Descriptor, 0, len(children))
	for _, c := range children {
		b, err := s.d.GetContent(ctx, c)
		if err != nil {
			continue // removed meanwhile
		}
		var desc v1.Descriptor
		if json.Unmarshal(b, &desc) != nil {
			continue
		}
		if artifactType != "" && desc.ArtifactType != artifactType {
			continue
		}
		out = append(out, desc)
	}
	return out, nil
}
