package distribution

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PullOptions are a pull's optional parts.
type PullOptions struct {
	Credentials Credentials
	// Platform chooses from a multi-platform index; nil is the host's.
	Platform *ocispec.Platform
	// AllTags pulls every tag of a name given without tag or digest.
	AllTags bool
}

// PullResult names what a pull stored.
type PullResult struct {
	Image  *image.Image
	Digest digest.Digest // the manifest (or index) digest: the repo digest
	Ref    string        // familiar reference pulled, e.g. "busybox:latest"
	Fresh  bool          // false when the name already pointed at this image
}

// Pull fetches ref (name[:tag] or name@digest; a bare name is :latest) into
// the image store. Errors found before any layer moves (bad reference,
// unknown repository or manifest, denied access) are returned before
// progress reports anything, so an API can still answer with a status.
func (s *Service) Pull(ctx context.Context, ref string, opts PullOptions, progress ProgressFunc) (*PullResult, error) {
	named, err := splitReference(ref)
	if err != nil {
		return nil, err
	}
	if opts.AllTags && reference.IsNameOnly(named) {
		return s.pullAllTags(ctx, named, opts, progress)
	}
	named = reference.TagNameOnly(named)
	want := opts.Platform
	if want == nil {
		p, _ := ParsePlatform("")
		want = &p
	}
	eps, err := s.endpoints(ctx, reference.Domain(named))
	if err != nil {
		return nil, err
	}
	var lastErr error
	for i, ep := range eps {
		res, err := s.pullFrom(ctx, ep, named, *want, opts.Credentials, serial(progress))
		if err == nil {
			return res, nil
		}
		lastErr = err
		// A mirror that lacks the image or fails falls through to the next;
		// the last endpoint's error is the answer.
		if !ep.mirror || i == len(eps)-1 {
			break
		}
	}
	if errdefs.IsNotFound(lastErr) && strings.HasPrefix(lastErr.Error(), "repository does not exist") {
		return nil, errdefs.NotFound("pull access denied for %s, %s", reference.FamiliarName(named), lastErr.Error())
	}
	return nil, lastErr
}

// pullAllTags pulls every tag the registry lists for named, one by one.
func (s *Service) pullAllTags(ctx context.Context, named reference.Named, opts PullOptions, progress ProgressFunc) (*PullResult, error) {
	eps, err := s.endpoints(ctx, reference.Domain(named))
	if err != nil {
		return nil, err
	}
	ep := eps[len(eps)-1]
	rc := s.repo(ep, reference.Path(named), opts.Credentials, "pull")
	resp, err := rc.do(ctx, http.MethodGet, "/v2/"+rc.name+"/tags/list", nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			drain(resp)
			return nil, errdefs.NotFound("pull access denied for %s, repository does not exist or may require 'docker login': denied: requested access to the resource is denied", reference.FamiliarName(named))
		}
		return nil, statusError(resp, "list tags of %s", reference.FamiliarName(named))
	}
	var list struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxManifestSize)).Decode(&list); err != nil {
		return nil, errdefs.Unavailable("list tags of %s: %w", reference.FamiliarName(named), err)
	}
	if len(list.Tags) == 0 {
		return nil, errdefs.NotFound("%s: no tags to pull", reference.FamiliarName(named))
	}
	opts.AllTags = false
	var last *PullResult
	for _, tag := range list.Tags {
		tagged, err := reference.WithTag(named, tag)
		if err != nil {
			continue
		}
		if last, err = s.Pull(ctx, tagged.String(), opts, progress); err != nil {
			return nil, err
		}
	}
	if last == nil {
		return nil, errdefs.NotFound("%s: no valid tags to pull", reference.FamiliarName(named))
	}
	return last, nil
}

// pullFrom is one pull from one endpoint.
func (s *Service) pullFrom(ctx context.Context, ep endpoint, named reference.Named, want ocispec.Platform, creds Credentials, progress ProgressFunc) (*PullResult, error) {
	path := reference.Path(named)
	if ep.mirror && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	rc := s.repo(ep, path, creds, "pull")
	var tagOrDigest string
	var wantDigest digest.Digest
	if c, ok := named.(reference.Canonical); ok {
		wantDigest = c.Digest()
		tagOrDigest = wantDigest.String()
	} else if t, ok := named.(reference.Tagged); ok {
		tagOrDigest = t.Tag()
	}
	top, err := rc.getManifest(ctx, tagOrDigest, wantDigest)
	if err != nil {
		if errdefs.IsNotFound(err) && strings.HasPrefix(err.Error(), "manifest for ") {
			return nil, errdefs.NotFound("manifest for %s not found: manifest unknown: manifest unknown", reference.FamiliarString(named))
		}
		return nil, err
	}
	m := top
	if isIndex(top.mediaType) {
		desc, ok := pickManifest(top.raw, want)
		if !ok {
			return nil, errdefs.NotFound("no matching manifest for %s in the manifest list entries", FormatPlatform(want))
		}
		if m, err = rc.getManifest(ctx, desc.Digest.String(), desc.Digest); err != nil {
			return nil, err
		}
		if isIndex(m.mediaType) {
			return nil, errdefs.InvalidArgument("manifest %s: an index inside an index is not supported", desc.Digest)
		}
	}
	var man manifestHead
	if err := json.Unmarshal(m.raw, &man); err != nil {
		return nil, errdefs.InvalidArgument("manifest %s: %w", m.digest, err)
	}
	if man.Config.Digest.Validate() != nil {
		return nil, errdefs.InvalidArgument("manifest %s: no valid config descriptor", m.digest)
	}
	rawConfig, err := s.fetchSmallBlob(ctx, rc, man.Config)
	if err != nil {
		return nil, err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(rawConfig, &cfg); err != nil {
		return nil, errdefs.InvalidArgument("image config %s: %w", man.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(man.Layers) {
		return nil, errdefs.InvalidArgument("manifest %s lists %d layers, its config %d", m.digest, len(man.Layers), len(cfg.RootFS.DiffIDs))
	}
	// docker pulls an image of another platform anyway and warns at the end.
	mismatch := cfg.Architecture != "" && !isIndex(top.mediaType) && (cfg.OS != want.OS || cfg.Architecture != want.Architecture)
	for _, l := range man.Layers {
		if err := l.Digest.Validate(); err != nil {
			return nil, errdefs.InvalidArgument("manifest %s: layer digest %q: %w", m.digest, l.Digest, err)
		}
	}

	// From here on the pull streams.
	id := tagOrDigest
	progress(Progress{ID: id, Status: "Pulling from " + reference.Path(named)})

	var pinned []ocispec.Descriptor
	defer func() {
		for _, d := range pinned {
			s.store.UnpinBlob(d.Digest)
		}
	}()
	layers, err := s.pullLayers(ctx, rc, man.Layers, cfg.RootFS.DiffIDs, &pinned, progress)
	if err != nil {
		return nil, err
	}
	imgID := digest.FromBytes(rawConfig)
	store := s.store
	fresh := true
	if cur, err := store.Resolve(ctx, named.String()); err == nil && cur == imgID {
		fresh = false
	}
	repoDigest, err := reference.WithDigest(reference.TrimNamed(named), top.digest)
	if err != nil {
		return nil, errdefs.InvalidArgument("repo digest: %w", err)
	}
	opts := image.CreateOptions{Manifest: m.raw, RepoDigests: []string{repoDigest.String()}}
	if _, ok := named.(reference.Canonical); !ok {
		opts.Tags = []string{named.String()}
	}
	img, err := store.CreateRaw(ctx, rawConfig, layers, opts)
	if err != nil {
		return nil, err
	}
	source := reference.Domain(named) + "/" + reference.Path(named)
	for _, l := range man.Layers {
		store.AddBlobSource(ctx, l.Digest, source)
	}
	progress(Progress{Status: "Digest: " + top.digest.String()})
	familiar := reference.FamiliarString(named)
	if fresh {
		progress(Progress{Status: "Status: Downloaded newer image for " + familiar})
	} else {
		progress(Progress{Status: "Status: Image is up to date for " + familiar})
	}
	if mismatch {
		progress(Progress{Status: "WARNING: image platform (" + cfg.OS + "/" + cfg.Architecture + ") does not match the expected platform (" + FormatPlatform(want) + ")"})
	}
	return &PullResult{Image: img, Digest: top.digest, Ref: familiar, Fresh: fresh}, nil
}

// fetchSmallBlob reads a config-sized blob and verifies it.
func (s *Service) fetchSmallBlob(ctx context.Context, rc *repoClient, desc ocispec.Descriptor) ([]byte, error) {
	if b, err := s.store.Content().ReadBlob(ctx, desc.Digest); err == nil {
		return b, nil
	}
	resp, err := rc.do(ctx, http.MethodGet, "/v2/"+rc.name+"/blobs/"+desc.Digest.String(), nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp, "fetch blob %s", desc.Digest)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
	if err != nil {
		return nil, errdefs.Unavailable("read blob %s: %w", desc.Digest, err)
	}
	if len(b) > maxManifestSize {
		return nil, errdefs.InvalidArgument("blob %s: larger than %d bytes", desc.Digest, maxManifestSize)
	}
	if desc.Digest.Algorithm().FromBytes(b) != desc.Digest {
		return nil, errdefs.InvalidArgument("blob %s: content does not match its digest: refusing it", desc.Digest)
	}
	return b, nil
}

// pullLayers downloads the missing layers in parallel into the content
// store (verified while they stream) and unpacks each, in order, as soon as
// it and the layers below it are there.
func (s *Service) pullLayers(ctx context.Context, rc *repoClient, descs []ocispec.Descriptor, diffIDs []digest.Digest, pinned *[]ocispec.Descriptor, progress ProgressFunc) ([]image.Layer, error) {
	chainIDs := image.ChainIDs(diffIDs)
	layers := make([]image.Layer, len(descs))
	// Layers up to the highest one already unpacked are there, with their parents.
	have := -1
	for i := len(chainIDs) - 1; i >= 0; i-- {
		if l, ok := s.store.Layer(ctx, chainIDs[i]); ok {
			have = i
			layers[i] = l
			break
		}
	}
	for i := 0; i <= have; i++ {
		progress(Progress{ID: shortID(descs[i].Digest), Status: "Already exists", Detail: true})
	}
	if have >= 0 {
		for i := have - 1; i >= 0; i-- {
			l, ok := s.store.Layer(ctx, chainIDs[i])
			if !ok {
				return nil, errdefs.System("layer %s: missing below %s", chainIDs[i], chainIDs[i+1])
			}
			layers[i] = l
		}
	}
	todo := descs[have+1:]
	if len(todo) == 0 {
		return layers, nil
	}
	// Pinned from before they are visible until the caller records the
	// image, so no rmi, prune or check removes them in between.
	for _, d := range todo {
		s.store.PinBlob(d.Digest)
	}
	*pinned = append(*pinned, todo...)
	// The same blob twice in one image downloads once.
	for _, d := range todo {
		progress(Progress{ID: shortID(d.Digest), Status: "Pulling fs layer", Detail: true})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := len(descs)
	// committed[i] closes once layers[i] or errs[i] is set.
	committed := make([]chan struct{}, n)
	errs := make([]error, n)
	for i := 0; i <= have; i++ {
		committed[i] = make(chan struct{})
		close(committed[i])
	}
	for i := have + 1; i < n; i++ {
		committed[i] = make(chan struct{})
	}
	j := &pullJob{s: s, rc: rc, descs: descs, diffIDs: diffIDs, chainIDs: chainIDs, layers: layers, errs: errs,
		committed: committed, progress: progress, cancel: cancel,
		dl: make(chan struct{}, s.cfg.MaxConcurrentDownloads), unpack: make(chan struct{}, max(4, 2*goruntime.NumCPU()))}
	for i := have + 1; i < n; i++ {
		go j.layer(ctx, i)
	}
	for i := have + 1; i < n; i++ {
		<-committed[i]
		if errs[i] != nil {
			cancel()
			for k := i + 1; k < n; k++ {
				<-committed[k]
			}
			return nil, firstError(errs)
		}
		progress(Progress{ID: shortID(descs[i].Digest), Status: "Pull complete", Detail: true})
	}
	return layers, nil
}

// pullJob is one pull's layers in flight: each layer downloads (bounded
// by dl), unpacks on its own (bounded by unpack), then waits for the layer
// below and is committed on it. So downloads, unpacks and commits overlap
// and the layers of one image unpack in parallel.
type pullJob struct {
	s          *Service
	rc         *repoClient
	descs      []ocispec.Descriptor
	diffIDs    []digest.Digest
	chainIDs   []string
	layers     []image.Layer
	errs       []error
	committed  []chan struct{}
	progress   ProgressFunc
	cancel     context.CancelFunc
	dl, unpack chan struct{}
}

func (j *pullJob) layer(ctx context.Context, i int) {
	defer close(j.committed[i])
	l, err := j.run(ctx, i)
	j.layers[i], j.errs[i] = l, err
	if err != nil {
		j.cancel()
	}
}

func acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (j *pullJob) run(ctx context.Context, i int) (image.Layer, error) {
	d := j.descs[i]
	id := shortID(d.Digest)
	select {
	case j.dl <- struct{}{}:
	default:
		j.progress(Progress{ID: id, Status: "Waiting", Detail: true})
		if err := acquire(ctx, j.dl); err != nil {
			return image.Layer{}, err
		}
	}
	err := j.s.download(ctx, j.rc, d, j.progress)
	<-j.dl
	if err != nil {
		return image.Layer{}, err
	}
	// A concurrent pull of the same chain shares this unpack.
	v, err, _ := j.s.unpacks.Do(j.chainIDs[i], func() (any, error) {
		if l, ok := j.s.store.Layer(ctx, j.chainIDs[i]); ok {
			return l, nil
		}
		if err := acquire(ctx, j.unpack); err != nil {
			return nil, err
		}
		desc := d
		desc.MediaType = layerMediaType(d.MediaType)
		var last time.Time
		sent := int64(-1)
		st, err := j.s.store.StageLayerBlob(ctx, desc, j.diffIDs[i], func(read int64) {
			if now := time.Now(); now.Sub(last) >= 100*time.Millisecond || read >= d.Size {
				last, sent = now, read
				j.progress(Progress{ID: id, Status: "Extracting", Current: read, Total: d.Size, Detail: true})
			}
		})
		if err == nil && sent < d.Size {
			j.progress(Progress{ID: id, Status: "Extracting", Current: d.Size, Total: d.Size, Detail: true})
		}
		<-j.unpack
		if err != nil {
			return nil, err
		}
		parent := ""
		if i > 0 {
			select {
			case <-j.committed[i-1]:
			case <-ctx.Done():
				j.s.store.Discard(context.WithoutCancel(ctx), st)
				return nil, ctx.Err()
			}
			if j.errs[i-1] != nil {
				j.s.store.Discard(context.WithoutCancel(ctx), st)
				return nil, j.errs[i-1]
			}
			parent = j.layers[i-1].ChainID
		}
		return j.s.store.CommitStaged(ctx, parent, st)
	})
	if err != nil {
		return image.Layer{}, err
	}
	return v.(image.Layer), nil
}

// firstError prefers a real failure over the cancellations it caused.
func firstError(errs []error) error {
	var first error
	for _, e := range errs {
		if e == nil {
			continue
		}
		if !errors.Is(e, context.Canceled) {
			return e
		}
		if first == nil {
			first = e
		}
	}
	return first
}

// layerMediaType keeps the manifest's layer type in the image's layer record.
func layerMediaType(mt string) string {
	switch mt {
	case MediaTypeDockerForeignLayer:
		return MediaTypeDockerLayerGzip
	}
	return mt
}

// download brings one layer blob into the content store, verified while it
// streams; concurrent downloads of the same blob (other pulls) share one.
func (s *Service) download(ctx context.Context, rc *repoClient, d ocispec.Descriptor, progress ProgressFunc) error {
	id := shortID(d.Digest)
	if s.store.Content().Exists(ctx, d.Digest) {
		progress(Progress{ID: id, Status: "Download complete", Detail: true})
		return nil
	}
	_, err, shared := s.downloads.Do(d.Digest.String(), func() (any, error) {
		return nil, s.fetchBlob(ctx, rc, d, progress)
	})
	if err != nil {
		if shared && errors.Is(err, context.Canceled) && ctx.Err() == nil {
			// The pull we shared with was cancelled; do it ourselves.
			return s.fetchBlob(ctx, rc, d, progress)
		}
		return err
	}
	progress(Progress{ID: id, Status: "Download complete", Detail: true})
	return nil
}

// fetchBlob streams a blob into the content store, resuming with a Range
// request after a network error, and commits it only if its digest and
// size match the descriptor.
func (s *Service) fetchBlob(ctx context.Context, rc *repoClient, d ocispec.Descriptor, progress ProgressFunc) error {
	id := shortID(d.Digest)
	w, err := s.store.Content().Writer(ctx, d.Digest)
	if err != nil {
		return err
	}
	defer w.Close()
	pr := &progressReader{fn: progress, id: id, status: "Downloading", total: d.Size, interval: 100 * time.Millisecond}
	buf := make([]byte, 1<<20)
	for attempt := 1; ; attempt++ {
		var hdr http.Header
		if w.Size() > 0 {
			hdr = http.Header{"Range": {"bytes=" + strconv.FormatInt(w.Size(), 10) + "-"}}
		}
		resp, err := rc.do(ctx, http.MethodGet, "/v2/"+rc.name+"/blobs/"+d.Digest.String(), hdr, nil)
		if err != nil {
			return err
		}
		switch {
		case resp.StatusCode == http.StatusPartialContent && w.Size() > 0:
		case resp.StatusCode == http.StatusOK:
			if w.Size() > 0 {
				// No range support: start over.
				w.Close()
				if w, err = s.store.Content().Writer(ctx, d.Digest); err != nil {
					resp.Body.Close()
					return err
				}
				defer w.Close()
				pr.current = 0
			}
		default:
			err := statusError(resp, "fetch layer %s", d.Digest)
			resp.Body.Close()
			return err
		}
		pr.r = resp.Body
		limit := d.Size - w.Size() + 1
		if d.Size <= 0 {
			limit = 1 << 40
		}
		_, err = io.CopyBuffer(w, io.LimitReader(pr, limit), buf)
		resp.Body.Close()
		if err == nil {
			break
		}
		if attempt >= 4 || !isNetworkError(err) || ctx.Err() != nil {
			return errdefs.Unavailable("download layer %s: %w", d.Digest, err)
		}
		if berr := backoff(ctx, attempt); berr != nil {
			return berr
		}
	}
	if d.Size > 0 && w.Size() != d.Size {
		return errdefs.InvalidArgument("layer %s: registry sent %d bytes, the manifest says %d: refusing it", d.Digest, w.Size(), d.Size)
	}
	progress(Progress{ID: id, Status: "Verifying Checksum", Detail: true})
	if _, err := w.Commit(ctx); err != nil {
		if errdefs.IsInvalidArgument(err) {
			return errdefs.InvalidArgument("layer %s: registry sent content with digest %s: refusing it", d.Digest, w.Digest())
		}
		return err
	}
	return nil
}
