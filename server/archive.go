package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"

	"github.com/berth-dev/berth/daemon"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/snapshot"
	"github.com/moby/moby/api/types/common"
	api "github.com/moby/moby/api/types/container"
)

func (s *Server) archiveRoutes() []route {
	return []route{
		{http.MethodPost, "/commit", s.postCommit},
		{http.MethodPost, "/containers/prune", s.postContainersPrune},
		{http.MethodGet, "/containers/{id}/changes", s.getContainerChanges},
		{http.MethodGet, "/containers/{id}/export", s.getContainerExport},
		{http.MethodHead, "/containers/{id}/archive", s.headContainerArchive},
		{http.MethodGet, "/containers/{id}/archive", s.getContainerArchive},
		{http.MethodPut, "/containers/{id}/archive", s.putContainerArchive},
		{http.MethodGet, "/containers/{id}/stats", s.getContainerStats},
	}
}

func (s *Server) postCommit(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	q := r.URL.Query()
	var cfg api.Config
	if err := decodeBody(r, &cfg); err != nil {
		return err
	}
	ref := q.Get("repo")
	if ref != "" && q.Get("tag") != "" {
		ref += ":" + q.Get("tag")
	}
	pause := true
	if q.Get("pause") != "" {
		pause = boolValue(r, "pause")
	}
	id, err := s.daemon.ContainerCommit(ctx, q.Get("container"), daemon.CommitOptions{
		Ref: ref, Comment: q.Get("comment"), Author: q.Get("author"), Changes: q["changes"], Pause: pause, Config: &cfg,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, common.IDResponse{ID: id.String()})
}

func (s *Server) postContainersPrune(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	report, err := s.daemon.ContainersPrune(ctx, f["label"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, report)
}

func (s *Server) getContainerChanges(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	changes, err := s.daemon.ContainerChanges(ctx, v["id"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, changes)
}

func (s *Server) getContainerExport(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	if _, err := s.daemon.ContainerInspect(ctx, v["id"], false); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	return s.daemon.ContainerExport(ctx, v["id"], newFlushWriter(w))
}

// pathStatHeader encodes cp's X-Docker-Container-Path-Stat (standard base64 JSON).
func pathStatHeader(st snapshot.PathStat) string {
	data, _ := json.Marshal(api.PathStat{Name: st.Name, Size: st.Size, Mode: st.Mode, Mtime: st.Mtime.UTC().Truncate(time.Second), LinkTarget: st.LinkTarget})
	return base64.StdEncoding.EncodeToString(data)
}

func archivePath(r *http.Request) (string, error) {
	p := r.URL.Query().Get("path")
	if p == "" {
		return "", errdefs.InvalidArgument("path parameter is required")
	}
	return p, nil
}

func (s *Server) headContainerArchive(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	p, err := archivePath(r)
	if err != nil {
		return err
	}
	st, err := s.daemon.ContainerStatPath(ctx, v["id"], p)
	if err != nil {
		return err
	}
	w.Header().Set("X-Docker-Container-Path-Stat", pathStatHeader(st))
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) getContainerArchive(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	p, err := archivePath(r)
	if err != nil {
		return err
	}
	fw := newFlushWriter(w)
	return s.daemon.ContainerArchivePath(ctx, v["id"], p, func(st snapshot.PathStat) {
		w.Header().Set("X-Docker-Container-Path-Stat", pathStatHeader(st))
		w.Header().Set("Content-Type", "application/x-tar")
		fw.WriteHeader(http.StatusOK)
	}, fw)
}

func (s *Server) putContainerArchive(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	p, err := archivePath(r)
	if err != nil {
		return err
	}
	if err := s.daemon.ContainerExtractToDir(ctx, v["id"], p, r.Body, boolValue(r, "noOverwriteDirNonDir"), boolValue(r, "copyUIDGID")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// getContainerStats streams a sample about once a second; stream=0 sends
// one sample whose precpu_stats come from a first sample taken just before,
// so CPU percentages can be computed from a single answer.
func (s *Server) getContainerStats(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	stream := r.URL.Query().Get("stream") == "" || boolValue(r, "stream")
	oneShot := boolValue(r, "one-shot")
	prev, err := s.daemon.ContainerStats(ctx, v["id"])
	if err != nil {
		return err
	}
	prev.Read = time.Now()
	fw := newFlushWriter(w)
	fw.Header().Set("Content-Type", "application/json")
	fw.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(fw)
	if oneShot && !stream {
		return enc.Encode(prev)
	}
	interval := time.Second
	if !stream {
		interval = 500 * time.Millisecond
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		cur, err := s.daemon.ContainerStats(ctx, v["id"])
		if err != nil {
			return nil
		}
		cur.Read, cur.PreRead = time.Now(), prev.Read
		cur.PreCPUStats = prev.CPUStats
		if err := enc.Encode(cur); err != nil || !stream {
			return nil
		}
		prev = cur
	}
}
