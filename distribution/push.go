package distribution

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/distribution/reference"
	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// PushOptions are a push's optional parts.
type PushOptions struct {
	Credentials Credentials
}

// PushResult is one pushed tag: docker's aux message.
type PushResult struct {
	Tag    string
	Digest string
	Size   int
}

// Push uploads the image named name:tag, or every local tag of name when
// tag is "", to its registry. Only blobs the registry lacks are sent: each
// is checked with HEAD, mounted from another repository of the registry it
// is known to live in, or uploaded. Layers stored uncompressed are gzipped
// once and the result is kept for later pushes.
func (s *Service) Push(ctx context.Context, name, tag string, opts PushOptions, progress ProgressFunc) ([]PushResult, error) {
	progress = serial(progress)
	named, err := splitReference(name)
	if err != nil {
		return nil, err
	}
	if _, ok := named.(reference.Canonical); ok {
		return nil, errdefs.InvalidArgument("cannot push a digest reference: %s", name)
	}
	if t, ok := named.(reference.Tagged); ok && tag == "" {
		tag = t.Tag()
	}
	repoName := reference.TrimNamed(named)
	var tags []string
	if tag != "" {
		tags = []string{tag}
	} else {
		imgs, err := s.store.List(ctx)
		if err != nil {
			return nil, err
		}
		for _, img := range imgs {
			for _, t := range img.RepoTags {
				if n, err := reference.ParseNormalizedNamed(t); err == nil && n.Name() == repoName.Name() {
					if tt, ok := n.(reference.Tagged); ok {
						tags = append(tags, tt.Tag())
					}
				}
			}
		}
		if len(tags) == 0 {
			return nil, errdefs.NotFound("An image does not exist locally with the tag: %s", reference.FamiliarName(repoName))
		}
	}
	images := make([]*image.Image, len(tags))
	for i, t := range tags {
		tagged, err := reference.WithTag(repoName, t)
		if err != nil {
			return nil, errdefs.InvalidArgument("invalid tag %q: %w", t, err)
		}
		if images[i], err = s.store.Get(ctx, tagged.String()); err != nil {
			if errdefs.IsNotFound(err) {
				return nil, errdefs.NotFound("An image does not exist locally with the tag: %s", reference.FamiliarString(tagged))
			}
			return nil, err
		}
	}
	domain := reference.Domain(repoName)
	eps, err := s.endpoints(ctx, domain)
	if err != nil {
		return nil, err
	}
	ep := eps[len(eps)-1] // never push to a mirror
	path := reference.Path(repoName)
	var extra []string
	for _, img := range images {
		extra = append(extra, s.mountScopes(ctx, img, domain, path)...)
	}
	rc := s.repo(ep, path, opts.Credentials, "pull,push", mergeScopes(nil, extra)...)
	// Authenticate before streaming so a refusal is a real status.
	if err := rc.checkPushAccess(ctx); err != nil {
		return nil, err
	}
	progress(Progress{Status: "The push refers to repository [" + repoName.Name() + "]"})
	var out []PushResult
	for i, img := range images {
		res, err := s.pushImage(ctx, rc, domain, img, tags[i], progress)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
	return out, nil
}

// mountScopes are pull scopes for the other repositories of this registry
// that hold the image's blobs, so cross-repository mounts are allowed.
func (s *Service) mountScopes(ctx context.Context, img *image.Image, domain, path string) []string {
	layers, err := s.store.Layers(ctx, img)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range layers {
		blobs := []digest.Digest{l.Blob.Digest}
		if c, ok := s.store.CompressedBlob(ctx, l.DiffID); ok {
			blobs = append(blobs, c.Digest)
		}
		var srcs []string
		for _, b := range blobs {
			srcs = append(srcs, s.store.BlobSources(ctx, b)...)
		}
		for _, src := range srcs {
			if d, p, ok := strings.Cut(src, "/"); ok && d == domain && p != path {
				out = append(out, "repository:"+p+":pull")
			}
		}
	}
	return out
}

// checkPushAccess authenticates with a harmless HEAD (of the empty blob)
// so that refused credentials fail before the stream starts.
func (r *repoClient) checkPushAccess(ctx context.Context) error {
	resp, err := r.do(ctx, http.MethodHead, "/v2/"+r.name+"/blobs/"+digest.FromBytes(nil).String(), nil, nil)
	if err != nil {
		return err
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return errdefs.Unauthorized("push access denied for %s: unauthorized: authentication required", r.name)
	case http.StatusForbidden:
		return errdefs.Forbidden("push access denied for %s: denied: requested access to the resource is denied", r.name)
	}
	return nil
}

// pushBlob is one blob to send.
type pushBlob struct {
	desc   ocispec.Descriptor
	id     string // progress id; "" sends no progress (the config)
	diffID digest.Digest
}

func (s *Service) pushImage(ctx context.Context, rc *repoClient, domain string, img *image.Image, tag string, progress ProgressFunc) (PushResult, error) {
	layers, err := s.store.Layers(ctx, img)
	if err != nil {
		return PushResult{}, err
	}
	rawConfig, err := s.store.Content().ReadBlob(ctx, img.ID)
	if err != nil {
		return PushResult{}, err
	}
	for _, l := range layers {
		progress(Progress{ID: shortID(l.DiffID), Status: "Preparing", Detail: true})
	}
	blobs := make([]pushBlob, len(layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.MaxConcurrentUploads)
	for i, l := range layers {
		g.Go(func() error {
			desc, err := s.compressedLayer(gctx, l)
			if err != nil {
				return err
			}
			s.store.PinBlob(desc.Digest)
			defer s.store.UnpinBlob(desc.Digest)
			blobs[i] = pushBlob{desc: desc, id: shortID(l.DiffID), diffID: l.DiffID}
			return s.pushOne(gctx, rc, domain, blobs[i], progress)
		})
	}
	cfgDesc := ocispec.Descriptor{MediaType: MediaTypeDockerConfig, Digest: img.ID, Size: int64(len(rawConfig))}
	g.Go(func() error { return s.pushOne(gctx, rc, domain, pushBlob{desc: cfgDesc}, progress) })
	if err := g.Wait(); err != nil {
		return PushResult{}, err
	}
	manifest, mediaType, err := s.manifestFor(ctx, img, cfgDesc, blobs)
	if err != nil {
		return PushResult{}, err
	}
	resp, err := rc.do(ctx, http.MethodPut, "/v2/"+rc.name+"/manifests/"+tag, http.Header{"Content-Type": {mediaType}}, bytesBody(manifest))
	if err != nil {
		return PushResult{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return PushResult{}, statusError(resp, "push manifest %s:%s", rc.name, tag)
	}
	d := digest.FromBytes(manifest)
	s.store.Content().WriteBlob(ctx, manifest)
	repoDigest := domain + "/" + rc.name + "@" + d.String()
	s.store.AddReference(ctx, repoDigest, img.ID)
	res := PushResult{Tag: tag, Digest: d.String(), Size: len(manifest)}
	progress(Progress{Status: tag + ": digest: " + d.String() + " size: " + strconv.Itoa(len(manifest))})
	progress(Progress{Aux: res})
	return res, nil
}

// isCompressed says whether a layer media type is gzip or zstd.
func isCompressed(mt string) bool {
	return strings.HasSuffix(mt, "gzip") || strings.HasSuffix(mt, "zstd")
}

// compressedLayer returns the blob to push for a layer: its own when it
// is compressed or came from a registry as it is (so a pulled image pushes
// with its manifest's digest), else its gzip, made once and remembered.
func (s *Service) compressedLayer(ctx context.Context, l image.Layer) (ocispec.Descriptor, error) {
	if (isCompressed(l.Blob.MediaType) || len(s.store.BlobSources(ctx, l.Blob.Digest)) > 0) && s.store.Content().Exists(ctx, l.Blob.Digest) {
		return l.Blob, nil
	}
	if d, ok := s.store.CompressedBlob(ctx, l.DiffID); ok {
		return d, nil
	}
	v, err, _ := s.unpacks.Do("compress "+l.DiffID.String(), func() (any, error) {
		if d, ok := s.store.CompressedBlob(ctx, l.DiffID); ok {
			return d, nil
		}
		f, err := s.store.Content().Open(ctx, l.Blob.Digest)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		// The stored blob may itself be compressed with something a
		// registry should not get (bzip2): always push gzip of the tar.
		tr, _, err := image.Decompress(f)
		if err != nil {
			return nil, err
		}
		defer tr.Close()
		w, err := s.store.Content().Writer(ctx, "")
		if err != nil {
			return nil, err
		}
		defer w.Close()
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if _, err := io.Copy(zw, tr); err != nil {
			return nil, errdefs.System("compress layer %s: %w", l.DiffID, err)
		}
		if err := zw.Close(); err != nil {
			return nil, errdefs.System("compress layer %s: %w", l.DiffID, err)
		}
		d, err := w.Commit(ctx)
		if err != nil {
			return nil, err
		}
		desc := ocispec.Descriptor{MediaType: MediaTypeDockerLayerGzip, Digest: d, Size: w.Size()}
		if err := s.store.SetCompressedBlob(ctx, l.DiffID, desc); err != nil {
			return nil, err
		}
		return desc, nil
	})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return v.(ocispec.Descriptor), nil
}

// pushOne makes the registry hold one blob: present, mounted or uploaded.
func (s *Service) pushOne(ctx context.Context, rc *repoClient, domain string, b pushBlob, progress ProgressFunc) error {
	report := func(p Progress) {
		if b.id != "" {
			p.ID, p.Detail = b.id, true
			progress(p)
		}
	}
	d := b.desc.Digest
	resp, err := rc.do(ctx, http.MethodHead, "/v2/"+rc.name+"/blobs/"+d.String(), nil, nil)
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode == http.StatusOK {
		report(Progress{Status: "Layer already exists"})
		s.store.AddBlobSource(ctx, d, domain+"/"+rc.name)
		return nil
	}
	location := ""
	for _, src := range s.store.BlobSources(ctx, d) {
		sd, sp, ok := strings.Cut(src, "/")
		if !ok || sd != domain || sp == rc.name {
			continue
		}
		q := url.Values{"mount": {d.String()}, "from": {sp}}
		resp, err := rc.do(ctx, http.MethodPost, "/v2/"+rc.name+"/blobs/uploads/?"+q.Encode(), nil, nil)
		if err != nil {
			return err
		}
		drain(resp)
		if resp.StatusCode == http.StatusCreated {
			report(Progress{Status: "Mounted from " + sp})
			s.store.AddBlobSource(ctx, d, domain+"/"+rc.name)
			return nil
		}
		if resp.StatusCode == http.StatusAccepted {
			location = resp.Header.Get("Location")
			break
		}
	}
	if location == "" {
		resp, err := rc.do(ctx, http.MethodPost, "/v2/"+rc.name+"/blobs/uploads/", nil, nil)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusAccepted {
			err := statusError(resp, "start upload of %s to %s", d, rc.name)
			resp.Body.Close()
			return err
		}
		drain(resp)
		location = resp.Header.Get("Location")
	}
	u, err := rc.uploadURL(location, d)
	if err != nil {
		return err
	}
	body := func() (io.ReadCloser, int64, error) {
		f, err := s.store.Content().Open(ctx, d)
		if err != nil {
			return nil, 0, err
		}
		var r io.Reader = f
		if b.id != "" {
			r = &progressReader{r: f, fn: progress, id: b.id, status: "Pushing", total: b.desc.Size, interval: 100 * time.Millisecond}
		}
		return readCloser{r, f}, b.desc.Size, nil
	}
	resp, err = rc.do(ctx, http.MethodPut, u, http.Header{"Content-Type": {"application/octet-stream"}}, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return statusError(resp, "upload %s to %s", d, rc.name)
	}
	report(Progress{Status: "Pushed"})
	s.store.AddBlobSource(ctx, d, domain+"/"+rc.name)
	return nil
}

// uploadURL resolves an upload Location (often relative) and adds digest.
func (r *repoClient) uploadURL(location string, d digest.Digest) (string, error) {
	if location == "" {
		return "", errdefs.Unavailable("registry %s: upload started without a Location", r.ep.host)
	}
	base, _ := url.Parse(r.ep.url("/v2/"))
	u, err := base.Parse(location)
	if err != nil {
		return "", errdefs.Unavailable("registry %s: bad upload Location %q: %w", r.ep.host, location, err)
	}
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// manifestFor returns the manifest to push: the image's own when its
// layers are exactly the blobs pushed (a pulled image keeps its digest),
// else a new Docker v2 manifest (OCI when a layer is zstd).
func (s *Service) manifestFor(ctx context.Context, img *image.Image, cfg ocispec.Descriptor, blobs []pushBlob) ([]byte, string, error) {
	if img.Manifest != "" {
		if raw, err := s.store.Content().ReadBlob(ctx, img.Manifest); err == nil {
			var m manifestHead
			if json.Unmarshal(raw, &m) == nil && !isIndex(m.MediaType) && m.Config.Digest == img.ID && len(m.Layers) == len(blobs) {
				same := true
				for i, l := range m.Layers {
					same = same && l.Digest == blobs[i].desc.Digest
				}
				if same {
					mt := m.MediaType
					if mt == "" {
						mt = ocispec.MediaTypeImageManifest
					}
					return raw, mt, nil
				}
			}
		}
	}
	oci := false
	for _, b := range blobs {
		oci = oci || strings.HasSuffix(b.desc.MediaType, "zstd")
	}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeDockerManifest, Config: cfg, Layers: []ocispec.Descriptor{}}
	if oci {
		m.MediaType, m.Config.MediaType = ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig
	}
	for _, b := range blobs {
		l := ocispec.Descriptor{MediaType: b.desc.MediaType, Digest: b.desc.Digest, Size: b.desc.Size}
		switch {
		case oci && strings.HasSuffix(l.MediaType, "gzip"):
			l.MediaType = ocispec.MediaTypeImageLayerGzip
		case !oci && strings.HasSuffix(l.MediaType, "gzip"):
			l.MediaType = MediaTypeDockerLayerGzip
		case !oci:
			l.MediaType = "application/vnd.docker.image.rootfs.diff.tar"
		}
		m.Layers = append(m.Layers, l)
	}
	raw, err := json.MarshalIndent(m, "", "   ")
	if err != nil {
		return nil, "", errdefs.System("encode manifest: %w", err)
	}
	return raw, m.MediaType, nil
}

type readCloser struct {
	io.Reader
	f *os.File
}

func (r readCloser) Close() error { return r.f.Close() }

func bytesBody(b []byte) bodyFunc {
	return func() (io.ReadCloser, int64, error) {
		return io.NopCloser(strings.NewReader(string(b))), int64(len(b)), nil
	}
}
