package image

import (
	"context"
	"path"
	"strings"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/distribution/reference"
	apiimage "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/storage"
	"github.com/opencontainers/go-digest"
)

// ListOptions select images as `docker images` does.
type ListOptions struct {
	// All includes intermediate images (untagged parents of other images).
	All bool
	// Filters: dangling=true|false, label=key[=value], reference=pattern,
	// before=image, since=image, until=timestamp.
	Filters map[string][]string
	// SharedSize fills Summary.SharedSize and Containers.
	SharedSize bool
}

var listFilters = map[string]bool{"dangling": true, "label": true, "reference": true, "before": true, "since": true, "until": true}

// Summaries returns the images matching opts, newest first, in the Engine
// API's shape.
func (s *Store) Summaries(ctx context.Context, opts ListOptions) ([]apiimage.Summary, error) {
	for k, vs := range opts.Filters {
		if !listFilters[k] {
			return nil, errdefs.InvalidArgument("invalid filter '%s'", k)
		}
		if k == "dangling" {
			for _, v := range vs {
				if v != "true" && v != "false" && v != "1" && v != "0" {
					return nil, errdefs.InvalidArgument("invalid filter 'dangling=%s'", v)
				}
			}
		}
	}
	images, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	var before, since time.Time
	for _, key := range []string{"before", "since"} {
		for _, v := range opts.Filters[key] {
			img, err := s.Get(ctx, v)
			if err != nil {
				return nil, err
			}
			if key == "before" {
				before = img.Created
			} else {
				since = img.Created
			}
		}
	}
	var until time.Time
	for _, v := range opts.Filters["until"] {
		t, err := parseTimestamp(v)
		if err != nil {
			return nil, err
		}
		until = t
	}
	parents := map[digest.Digest]bool{}
	for _, img := range images {
		if img.Parent != "" {
			parents[img.Parent] = true
		}
	}
	var layerUse map[string]int
	if opts.SharedSize {
		layerUse = map[string]int{}
		for _, img := range images {
			ls, _ := s.Layers(ctx, img)
			for _, l := range ls {
				layerUse[l.ChainID]++
			}
		}
	}
	out := []apiimage.Summary{}
	for _, img := range images {
		dangling := len(img.RepoTags) == 0
		if !opts.All && dangling && parents[img.ID] && opts.Filters["dangling"] == nil {
			continue
		}
		if vs := opts.Filters["dangling"]; len(vs) > 0 {
			want := vs[0] == "true" || vs[0] == "1"
			if dangling != want {
				continue
			}
		}
		if !matchLabels(img.Config.Config.Labels, opts.Filters["label"]) {
			continue
		}
		if !before.IsZero() && !img.Created.Before(before) {
			continue
		}
		if !since.IsZero() && !img.Created.After(since) {
			continue
		}
		if !until.IsZero() && !img.Created.Before(until) {
			continue
		}
		tags := img.RepoTags
		if pats := opts.Filters["reference"]; len(pats) > 0 {
			tags = matchReferences(img, pats)
			if len(tags) == 0 {
				continue
			}
		}
		sum := s.summary(ctx, img)
		sum.RepoTags = tags
		if opts.SharedSize {
			sum.SharedSize = 0
			ls, _ := s.Layers(ctx, img)
			for _, l := range ls {
				if layerUse[l.ChainID] > 1 {
					sum.SharedSize += l.Size
				}
			}
			sum.Containers = int64(len(s.imageUsers(ctx, img.ID)))
		}
		out = append(out, sum)
	}
	return out, nil
}

func (s *Store) summary(ctx context.Context, img *Image) apiimage.Summary {
	sum := apiimage.Summary{
		ID:          img.ID.String(),
		ParentID:    string(img.Parent),
		Created:     img.Created.Unix(),
		Labels:      img.Config.Config.Labels,
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        img.Size,
		SharedSize:  -1,
		Containers:  -1,
	}
	if sum.RepoTags == nil {
		sum.RepoTags = []string{}
	}
	if sum.RepoDigests == nil {
		sum.RepoDigests = []string{}
	}
	if sum.Labels == nil {
		sum.Labels = map[string]string{}
	}
	return sum
}

func matchLabels(labels map[string]string, want []string) bool {
	for _, w := range want {
		k, v, hasValue := strings.Cut(w, "=")
		got, ok := labels[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	return true
}

// matchReferences returns the tags matching any pattern (docker's
// reference filter: a path.Match on the familiar name, with or without tag).
func matchReferences(img *Image, patterns []string) []string {
	var out []string
	for _, t := range img.RepoTags {
		n, err := reference.ParseNormalizedNamed(t)
		if err != nil {
			continue
		}
		for _, p := range patterns {
			if ok, _ := reference.FamiliarMatch(p, n); ok {
				out = append(out, t)
				break
			}
			if ok, _ := path.Match(p, reference.FamiliarName(n)); ok {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// parseTimestamp reads a filter time: unix seconds (with fraction), RFC 3339,
// or a duration before now ("10m").
func parseTimestamp(v string) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	secs, frac, _ := strings.Cut(v, ".")
	var sec, nsec int64
	if _, err := parseInt(secs, &sec); err != nil {
		return time.Time{}, errdefs.InvalidArgument("invalid timestamp %q", v)
	}
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if _, err := parseInt(frac, &nsec); err != nil {
			return time.Time{}, errdefs.InvalidArgument("invalid timestamp %q", v)
		}
	}
	return time.Unix(sec, nsec), nil
}

func parseInt(s string, out *int64) (int64, error) {
	var n int64
	if s == "" {
		return 0, errdefs.InvalidArgument("empty number")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errdefs.InvalidArgument("not a number: %q", s)
		}
		n = n*10 + int64(c-'0')
	}
	*out = n
	return n, nil
}

// Inspect returns the image ref names in the Engine API's shape.
func (s *Store) Inspect(ctx context.Context, ref string) (*apiimage.InspectResponse, error) {
	img, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	cfg := img.Config
	resp := &apiimage.InspectResponse{
		ID:           img.ID.String(),
		RepoTags:     img.RepoTags,
		RepoDigests:  img.RepoDigests,
		Created:      img.Created.UTC().Format(time.RFC3339Nano),
		Author:       cfg.Author,
		Config:       &cfg.Config,
		Architecture: cfg.Architecture,
		Variant:      cfg.Variant,
		Os:           cfg.OS,
		OsVersion:    cfg.OSVersion,
		Size:         img.Size,
		RootFS:       apiimage.RootFS{Type: "layers"},
		Metadata:     apiimage.Metadata{LastTagTime: img.LastTagTime},
	}
	if resp.RepoTags == nil {
		resp.RepoTags = []string{}
	}
	if resp.RepoDigests == nil {
		resp.RepoDigests = []string{}
	}
	if n := len(cfg.History); n > 0 {
		resp.Comment = cfg.History[n-1].Comment
	}
	for _, d := range cfg.RootFS.DiffIDs {
		resp.RootFS.Layers = append(resp.RootFS.Layers, d.String())
	}
	if img.ChainID != "" {
		data := map[string]string{}
		if dir, err := s.sn.UpperDir(ctx, img.ChainID); err == nil {
			data["UpperDir"] = dir
		}
		if lowers, err := s.sn.LowerDirs(ctx, img.ChainID); err == nil && len(lowers) > 0 {
			data["LowerDir"] = strings.Join(lowers, ":")
		}
		resp.GraphDriver = &storage.DriverData{Name: "overlay2", Data: data}
	}
	return resp, nil
}

// History returns an image's history, newest first, as `docker history`.
func (s *Store) History(ctx context.Context, ref string) ([]apiimage.HistoryResponseItem, error) {
	img, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	layers, err := s.Layers(ctx, img)
	if err != nil {
		return nil, err
	}
	// Which history entry ends which ancestor image.
	owners := map[int]*Image{}
	for cur := img; cur != nil; {
		if n := len(cur.Config.History); n > 0 {
			if _, taken := owners[n-1]; !taken {
				owners[n-1] = cur
			}
		}
		if cur.Parent == "" {
			break
		}
		p, err := s.Get(ctx, cur.Parent.String())
		if err != nil {
			break
		}
		cur = p
	}
	var out []apiimage.HistoryResponseItem
	li := 0
	hist := img.Config.History
	if len(hist) == 0 {
		// Images without history: one line per layer.
		for i := range layers {
			item := apiimage.HistoryResponseItem{ID: "<missing>", Size: layers[i].Size, Created: img.Created.Unix()}
			if i == len(layers)-1 {
				item.ID, item.Tags = img.ID.String(), img.RepoTags
			}
			out = append([]apiimage.HistoryResponseItem{item}, out...)
		}
		return out, nil
	}
	for i, h := range hist {
		item := apiimage.HistoryResponseItem{ID: "<missing>", CreatedBy: h.CreatedBy, Comment: h.Comment}
		if h.Created != nil {
			item.Created = h.Created.Unix()
		}
		if !h.EmptyLayer && li < len(layers) {
			item.Size = layers[li].Size
			li++
		}
		if owner, ok := owners[i]; ok {
			item.ID = owner.ID.String()
			item.Tags = owner.RepoTags
		}
		out = append([]apiimage.HistoryResponseItem{item}, out...)
	}
	return out, nil
}

// PruneOptions select what `docker image prune` removes.
type PruneOptions struct {
	// DanglingOnly removes untagged images only (the default); false
	// removes every image no container uses (`-a`).
	DanglingOnly bool
	// Filters: label, label!, until.
	Filters map[string][]string
}

// Prune removes unused images as `docker image prune` does.
func (s *Store) Prune(ctx context.Context, opts PruneOptions) (*apiimage.PruneReport, error) {
	var until time.Time
	for k, vs := range opts.Filters {
		switch k {
		case "label", "label!", "dangling":
		case "until":
			for _, v := range vs {
				t, err := parseTimestamp(v)
				if err != nil {
					return nil, err
				}
				until = t
			}
		default:
			return nil, errdefs.InvalidArgument("invalid filter '%s'", k)
		}
	}
	if vs := opts.Filters["dangling"]; len(vs) > 0 {
		opts.DanglingOnly = vs[0] == "true" || vs[0] == "1"
	}
	images, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	parents := map[digest.Digest]bool{}
	for _, img := range images {
		if img.Parent != "" {
			parents[img.Parent] = true
		}
	}
	before, _ := s.layerSizes(ctx)
	report := &apiimage.PruneReport{ImagesDeleted: []apiimage.DeleteResponse{}}
	for _, img := range images {
		if parents[img.ID] {
			continue // goes with its child, if that goes
		}
		if opts.DanglingOnly && len(img.RepoTags) > 0 {
			continue
		}
		if len(s.imageUsers(ctx, img.ID)) > 0 {
			continue
		}
		if !until.IsZero() && !img.Created.Before(until) {
			continue
		}
		if !matchLabels(img.Config.Config.Labels, opts.Filters["label"]) {
			continue
		}
		if neg := opts.Filters["label!"]; len(neg) > 0 && anyLabel(img.Config.Config.Labels, neg) {
			continue
		}
		names := append(append([]string{}, img.RepoTags...), img.RepoDigests...)
		if len(names) == 0 {
			names = []string{img.ID.String()}
		}
		for _, n := range names {
			resp, err := s.Delete(ctx, n, false, false)
			if err != nil {
				if errdefs.IsNotFound(err) || errdefs.IsConflict(err) {
					continue
				}
				return report, err
			}
			report.ImagesDeleted = append(report.ImagesDeleted, resp...)
		}
	}
	after, _ := s.layerSizes(ctx)
	if before > after {
		report.SpaceReclaimed = uint64(before - after)
	}
	return report, nil
}

func anyLabel(labels map[string]string, list []string) bool {
	for _, l := range list {
		if matchLabels(labels, []string{l}) {
			return true
		}
	}
	return false
}

// layerSizes is the unpacked size of all layers.
func (s *Store) layerSizes(ctx context.Context) (int64, error) {
	var total int64
	err := s.walkLayers(func(l *Layer) { total += l.Size })
	return total, err
}

// DiskUsage is the image part of `docker system df`: the size of all layers
// and a summary per image with its shared size and container count.
func (s *Store) DiskUsage(ctx context.Context) (int64, []apiimage.Summary, error) {
	total, err := s.layerSizes(ctx)
	if err != nil {
		return 0, nil, err
	}
	sums, err := s.Summaries(ctx, ListOptions{All: true, SharedSize: true})
	return total, sums, err
}
