package server

import (
	"context"
	"net/http"

	"github.com/berth-dev/berth/daemon"
	api "github.com/moby/moby/api/types/container"
)

func (s *Server) execRoutes() []route {
	return []route{
		{http.MethodPost, "/containers/{id}/exec", s.postContainerExec},
		{http.MethodPost, "/exec/{id}/start", s.postExecStart},
		{http.MethodPost, "/exec/{id}/resize", s.postExecResize},
		{http.MethodGet, "/exec/{id}/json", s.getExecJSON},
	}
}

func (s *Server) postContainerExec(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	var req api.ExecCreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	id, err := s.daemon.ExecCreate(ctx, v["id"], req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, api.ExecCreateResponse{ID: id})
}

func (s *Server) postExecStart(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	var req api.ExecStartRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	e, err := s.daemon.ExecCheck(v["id"])
	if err != nil {
		return err
	}
	o := daemon.ExecStartOptions{Detach: req.Detach}
	if req.ConsoleSize != nil {
		o.Height, o.Width = uint16(req.ConsoleSize[0]), uint16(req.ConsoleSize[1])
	}
	if req.Detach {
		if err := s.daemon.ExecStart(ctx, v["id"], o); err != nil {
			return err
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
	tty := e.Config.Tty
	hj, err := hijack(w, r, streamContentType(apiVersion(ctx), tty))
	if err != nil {
		return err
	}
	defer hj.Close()
	o.Stdout, o.Stderr = hj.streams(tty)
	o.Stdin = hj.stdin()
	if err := s.daemon.ExecStart(context.WithoutCancel(ctx), v["id"], o); err != nil {
		// Like dockerd: the failure is text on the output stream; the
		// client reads the exit code (126/127) from the exec's inspect.
		o.Stdout.Write([]byte(err.Error() + "\r\n"))
	}
	return nil
}

func (s *Server) postExecResize(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	h, wd, err := terminalSize(r)
	if err != nil {
		return err
	}
	if err := s.daemon.ExecResize(v["id"], h, wd); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) getExecJSON(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	e, err := s.daemon.ExecInspect(v["id"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}
