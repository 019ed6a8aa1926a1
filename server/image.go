package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/berth-dev/berth/daemon"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/moby/moby/api/types/events"
)

func (s *Server) imageRoutes() []route {
	return append([]route{
		{http.MethodGet, "/images/json", s.getImagesJSON},
		{http.MethodPost, "/images/create", s.postImagesCreate},
		{http.MethodPost, "/images/load", s.postImagesLoad},
		{http.MethodPost, "/images/prune", s.postImagesPrune},
		{http.MethodGet, "/images/get", s.getImagesGet},
		{http.MethodGet, "/images/{name:.*}/json", s.getImageJSON},
		{http.MethodGet, "/images/{name:.*}/history", s.getImageHistory},
		{http.MethodGet, "/images/{name:.*}/get", s.getImageGet},
		{http.MethodPost, "/images/{name:.*}/tag", s.postImageTag},
		{http.MethodDelete, "/images/{name:.*}", s.deleteImage},
		{http.MethodGet, "/system/df", s.getSystemDF},
		{http.MethodPost, "/berth/system/check", s.postSystemCheck},
	}, s.distributionRoutes()...)
}

func (s *Server) getImagesJSON(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	// Old clients send ?filter=name for the reference filter.
	if v := r.URL.Query().Get("filter"); v != "" {
		f["reference"] = append(f["reference"], v)
	}
	list, err := s.daemon.Images.Summaries(ctx, image.ListOptions{
		All: boolValue(r, "all"), Filters: f, SharedSize: boolValue(r, "shared-size"),
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *Server) getImageJSON(ctx context.Context, w http.ResponseWriter, r *http.Request, vars map[string]string) error {
	resp, err := s.daemon.Images.Inspect(ctx, vars["name"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) getImageHistory(ctx context.Context, w http.ResponseWriter, r *http.Request, vars map[string]string) error {
	h, err := s.daemon.Images.History(ctx, vars["name"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h)
}

func (s *Server) postImageTag(ctx context.Context, w http.ResponseWriter, r *http.Request, vars map[string]string) error {
	q := r.URL.Query()
	repo, tag := q.Get("repo"), q.Get("tag")
	if repo == "" {
		return errdefs.InvalidArgument("repository name must have at least one component")
	}
	target := repo
	if tag != "" {
		target += ":" + tag
	}
	if err := s.daemon.Images.Tag(ctx, vars["name"], target); err != nil {
		return err
	}
	if img, err := s.daemon.Images.Get(ctx, target); err == nil {
		s.daemon.Events.Publish(events.ImageEventType, events.ActionTag, img.ID.String(), map[string]string{"name": familiarName(target)})
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

func familiarName(ref string) string {
	if t, err := image.ParseTag(ref); err == nil {
		return strings.TrimPrefix(strings.TrimPrefix(t.String(), "docker.io/"), "library/")
	}
	return ref
}

func (s *Server) deleteImage(ctx context.Context, w http.ResponseWriter, r *http.Request, vars map[string]string) error {
	name := vars["name"]
	id, _ := s.daemon.Images.Resolve(ctx, name)
	resp, err := s.daemon.Images.Delete(ctx, name, boolValue(r, "force"), boolValue(r, "noprune"))
	if err != nil {
		return err
	}
	s.publishDeletes(id.String(), resp)
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) publishDeletes(id string, resp []image.DeleteResponse) {
	for _, d := range resp {
		if d.Untagged != "" {
			s.daemon.Events.Publish(events.ImageEventType, events.ActionUnTag, id, map[string]string{"name": d.Untagged})
		}
		if d.Deleted != "" && strings.HasPrefix(d.Deleted, "sha256:") && d.Deleted == id {
			s.daemon.Events.Publish(events.ImageEventType, events.ActionDelete, d.Deleted, map[string]string{"name": d.Deleted})
		}
	}
}

// trackWriter remembers whether any byte went out, so a failure after that
// is not answered with a second header.
type trackWriter struct {
	w       io.Writer
	written bool
}

func (t *trackWriter) Write(p []byte) (int, error) {
	t.written = true
	return t.w.Write(p)
}

func (s *Server) getImagesGet(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	return s.save(ctx, w, r.URL.Query()["names"])
}

func (s *Server) getImageGet(ctx context.Context, w http.ResponseWriter, r *http.Request, vars map[string]string) error {
	return s.save(ctx, w, []string{vars["name"]})
}

func (s *Server) save(ctx context.Context, w http.ResponseWriter, names []string) error {
	// Save resolves every name before its first byte, so a typo is a 404.
	w.Header().Set("Content-Type", "application/x-tar")
	tw := &trackWriter{w: w}
	if err := s.daemon.Images.Save(ctx, names, tw); err != nil {
		if tw.written {
			slog.Warn("image save failed mid-stream", "names", names, "error", err)
			return nil
		}
		w.Header().Del("Content-Type")
		return err
	}
	for _, n := range names {
		if id, err := s.daemon.Images.Resolve(ctx, n); err == nil {
			s.daemon.Events.Publish(events.ImageEventType, events.ActionSave, id.String(), map[string]string{"name": n})
		}
	}
	return nil
}

func (s *Server) postImagesLoad(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	ps := newProgressStream(w)
	var loaded []string
	err := s.daemon.Images.Load(ctx, r.Body, func(line string) {
		loaded = append(loaded, line)
		ps.Write(Message{Stream: line + "\n"})
	})
	if err != nil {
		if !ps.fw.Written() {
			return err
		}
		return ps.Error(err)
	}
	if len(loaded) == 0 {
		ps.Write(Message{Stream: ""})
	}
	for _, l := range loaded {
		name := strings.TrimPrefix(strings.TrimPrefix(l, "Loaded image: "), "Loaded image ID: ")
		if id, err := s.daemon.Images.Resolve(ctx, name); err == nil {
			s.daemon.Events.Publish(events.ImageEventType, events.ActionLoad, id.String(), map[string]string{"name": name})
		}
	}
	return nil
}

// postImagesCreate is import (fromSrc); pull (fromImage) is served by the
// distribution code when it is wired in.
func (s *Server) postImagesCreate(ctx context.Context, w http.ResponseWriter, r *http.Request, vars map[string]string) error {
	q := r.URL.Query()
	if q.Get("fromImage") != "" {
		if p, ok := any(s).(interface {
			postImagesPull(context.Context, http.ResponseWriter, *http.Request, map[string]string) error
		}); ok {
			return p.postImagesPull(ctx, w, r, vars)
		}
		return errdefs.NotImplemented("pulling images is not available in this daemon")
	}
	src := q.Get("fromSrc")
	if src == "" {
		return errdefs.InvalidArgument("one of fromImage or fromSrc is required")
	}
	if src != "-" {
		return errdefs.NotImplemented("import from a URL is not supported; pipe the archive with fromSrc=-")
	}
	ref := q.Get("repo")
	if ref != "" && q.Get("tag") != "" {
		ref += ":" + q.Get("tag")
	}
	img, err := s.daemon.Images.Import(ctx, r.Body, ref, q["changes"], q.Get("message"))
	if err != nil {
		return err
	}
	attrs := map[string]string{}
	if ref != "" {
		attrs["name"] = familiarName(ref)
	}
	s.daemon.Events.Publish(events.ImageEventType, events.ActionImport, img.ID.String(), attrs)
	ps := newProgressStream(w)
	return ps.Write(Message{Status: img.ID.String()})
}

func (s *Server) postImagesPrune(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	opts := image.PruneOptions{DanglingOnly: true, Filters: f}
	report, err := s.daemon.Images.Prune(ctx, opts)
	if err != nil {
		return err
	}
	for _, d := range report.ImagesDeleted {
		if d.Untagged != "" {
			s.daemon.Events.Publish(events.ImageEventType, events.ActionUnTag, "", map[string]string{"name": d.Untagged})
		}
		if d.Deleted != "" {
			s.daemon.Events.Publish(events.ImageEventType, events.ActionDelete, d.Deleted, map[string]string{"name": d.Deleted})
		}
	}
	return writeJSON(w, http.StatusOK, report)
}

// getSystemDF answers `docker system df`: images from the image store,
// containers and volumes from the daemon; build cache is reported empty
// until that store exists.
func (s *Server) getSystemDF(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	want := map[string]bool{}
	for _, t := range r.URL.Query()["type"] {
		want[t] = true
	}
	all := len(want) == 0
	resp := map[string]any{}
	if all || want["image"] {
		total, images, err := s.daemon.Images.DiskUsage(ctx)
		if err != nil {
			return err
		}
		resp["LayersSize"] = total
		resp["Images"] = images
	}
	if all || want["container"] {
		list, err := s.daemon.ContainerList(ctx, daemon.ListOptions{All: true, Size: true, Limit: -1})
		if err != nil {
			return err
		}
		resp["Containers"] = list
	}
	if all || want["volume"] {
		resp["Volumes"] = s.daemon.VolumesDiskUsage(ctx)
	}
	if all || want["build-cache"] {
		resp["BuildCache"] = []any{}
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) postSystemCheck(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	res, err := s.daemon.Images.Check(ctx, image.CheckOptions{Repair: boolValue(r, "repair"), Fast: boolValue(r, "fast")})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}
