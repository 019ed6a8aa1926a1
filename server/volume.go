package server

import (
	"context"
	"net/http"

	volumetypes "github.com/moby/moby/api/types/volume"

	"github.com/berth-dev/berth/errdefs"
)

func (s *Server) volumeRoutes() []route {
	return []route{
		{http.MethodPost, "/volumes/create", s.postVolumesCreate},
		{http.MethodGet, "/volumes", s.getVolumes},
		{http.MethodPost, "/volumes/prune", s.postVolumesPrune},
		{http.MethodGet, "/volumes/{name}", s.getVolume},
		{http.MethodPut, "/volumes/{name}", s.putVolume},
		{http.MethodDelete, "/volumes/{name}", s.deleteVolume},
	}
}

func (s *Server) postVolumesCreate(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	var req volumetypes.CreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	v, err := s.daemon.VolumeCreate(ctx, req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, v)
}

func (s *Server) getVolumes(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	resp, err := s.daemon.VolumeList(ctx, f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) getVolume(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	vol, err := s.daemon.VolumeInspect(ctx, v["name"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, vol)
}

// putVolume is the cluster-volume update; without swarm there is none.
func (s *Server) putVolume(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	if _, err := s.daemon.VolumeInspect(ctx, v["name"]); err != nil {
		return err
	}
	return errdefs.InvalidArgument("volume %s: only cluster volumes can be updated, and berthd does not run swarm", v["name"])
}

func (s *Server) deleteVolume(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	if err := s.daemon.VolumeRemove(ctx, v["name"], boolValue(r, "force")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// postVolumesPrune removes unused anonymous volumes, or all unused ones
// with the filter all=true; before API 1.42 prune always took them all.
func (s *Server) postVolumesPrune(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	report, err := s.daemon.VolumePrune(ctx, f, !versionAtLeast(apiVersion(ctx), "1.42"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, report)
}
