package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"github.com/berth-dev/berth/daemon"
	"github.com/berth-dev/berth/errdefs"
	api "github.com/moby/moby/api/types/container"
)

func (s *Server) containerRoutes() []route {
	return []route{
		{http.MethodPost, "/containers/create", s.postContainersCreate},
		{http.MethodGet, "/containers/json", s.getContainersJSON},
		{http.MethodGet, "/containers/{id}/json", s.getContainerJSON},
		{http.MethodPost, "/containers/{id}/start", s.postContainerStart},
		{http.MethodPost, "/containers/{id}/stop", s.postContainerStop},
		{http.MethodPost, "/containers/{id}/restart", s.postContainerRestart},
		{http.MethodPost, "/containers/{id}/kill", s.postContainerKill},
		{http.MethodPost, "/containers/{id}/pause", s.postContainerPause},
		{http.MethodPost, "/containers/{id}/unpause", s.postContainerUnpause},
		{http.MethodPost, "/containers/{id}/wait", s.postContainerWait},
		{http.MethodPost, "/containers/{id}/attach", s.postContainerAttach},
		{http.MethodPost, "/containers/{id}/resize", s.postContainerResize},
		{http.MethodPost, "/containers/{id}/rename", s.postContainerRename},
		{http.MethodPost, "/containers/{id}/update", s.postContainerUpdate},
		{http.MethodGet, "/containers/{id}/logs", s.getContainerLogs},
		{http.MethodGet, "/containers/{id}/top", s.getContainerTop},
		{http.MethodDelete, "/containers/{id:.*}", s.deleteContainer}, // rm --link names "parent/alias"
	}
}

func (s *Server) postContainersCreate(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	var req api.CreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	resp, err := s.daemon.ContainerCreate(ctx, daemon.CreateOptions{
		Name: r.URL.Query().Get("name"), Config: req.Config, HostConfig: req.HostConfig, NetworkingConfig: req.NetworkingConfig,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, resp)
}

func (s *Server) getContainersJSON(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	limit, err := intValue(r, "limit", -1)
	if err != nil {
		return err
	}
	list, err := s.daemon.ContainerList(ctx, daemon.ListOptions{All: boolValue(r, "all"), Limit: limit, Size: boolValue(r, "size"), Filters: f})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *Server) getContainerJSON(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	c, err := s.daemon.ContainerInspect(ctx, v["id"], boolValue(r, "size"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, withLegacyNetworkSettings(c))
}

func (s *Server) postContainerStart(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	if err := s.daemon.ContainerStart(ctx, v["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func timeoutParam(r *http.Request) (*int, error) {
	if r.URL.Query().Get("t") == "" {
		return nil, nil
	}
	t, err := intValue(r, "t", 0)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

func (s *Server) postContainerStop(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	t, err := timeoutParam(r)
	if err != nil {
		return err
	}
	if err := s.daemon.ContainerStop(ctx, v["id"], r.URL.Query().Get("signal"), t); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) postContainerRestart(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	t, err := timeoutParam(r)
	if err != nil {
		return err
	}
	if err := s.daemon.ContainerRestart(ctx, v["id"], r.URL.Query().Get("signal"), t); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) postContainerKill(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	if err := s.daemon.ContainerKill(ctx, v["id"], r.URL.Query().Get("signal")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) postContainerPause(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	if err := s.daemon.ContainerPause(ctx, v["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) postContainerUnpause(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	if err := s.daemon.ContainerUnpause(ctx, v["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// postContainerWait flushes the 200 header at once (the Go client starts
// the container only after it sees it) and sends the body at exit.
func (s *Server) postContainerWait(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	ch, err := s.daemon.ContainerWait(ctx, v["id"], daemon.WaitCondition(r.URL.Query().Get("condition")))
	if err != nil {
		return err
	}
	fw := newFlushWriter(w)
	fw.Header().Set("Content-Type", "application/json")
	fw.WriteHeader(http.StatusOK)
	resp, ok := <-ch
	if !ok {
		return nil // client went away
	}
	return json.NewEncoder(fw).Encode(resp)
}

func (s *Server) postContainerAttach(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	stream := boolValue(r, "stream")
	// The check reserves the attach's place before the client hears the
	// 101: it sends start right after, and start waits for reserved attaches.
	tty, _, ticket, err := s.daemon.ContainerAttachCheck(v["id"], stream)
	if err != nil {
		return err
	}
	defer ticket.Release()
	hj, err := hijack(w, r, streamContentType(apiVersion(ctx), tty))
	if err != nil {
		return err
	}
	defer hj.Close()
	stdout, stderr := hj.streams(tty)
	o := daemon.AttachOptions{Logs: boolValue(r, "logs"), Stream: stream, Ticket: ticket}
	if boolValue(r, "stdin") {
		o.Stdin = hj.stdin()
	}
	if boolValue(r, "stdout") {
		o.Stdout = stdout
	}
	if boolValue(r, "stderr") {
		o.Stderr = stderr
	}
	// The request context ends when net/http lets go of the conn; the
	// attach ends when the output ends or the client's writes fail.
	if err := s.daemon.ContainerAttach(context.WithoutCancel(ctx), v["id"], o); err != nil && !tty {
		errOut := &frameWriter{w: hj.conn, stream: 3, mu: new(sync.Mutex)}
		errOut.Write([]byte(err.Error() + "\n"))
	}
	return nil
}

func (s *Server) postContainerResize(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	h, wd, err := terminalSize(r)
	if err != nil {
		return err
	}
	if err := s.daemon.ContainerResize(ctx, v["id"], h, wd); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) postContainerRename(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	if err := s.daemon.ContainerRename(ctx, v["id"], r.URL.Query().Get("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) postContainerUpdate(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	var upd api.UpdateConfig
	if err := decodeBody(r, &upd); err != nil {
		return err
	}
	resp, err := s.daemon.ContainerUpdate(ctx, v["id"], upd)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

// fixedRFC3339Nano is Docker's log timestamp: always nine fraction digits.
const fixedRFC3339Nano = "2006-01-02T15:04:05.000000000Z07:00"

func (s *Server) getContainerLogs(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	q := r.URL.Query()
	c, err := s.daemon.ContainerInspect(ctx, v["id"], false)
	if err != nil {
		return err
	}
	o := daemon.LogsOptions{Stdout: boolValue(r, "stdout"), Stderr: boolValue(r, "stderr"), Follow: boolValue(r, "follow"), Tail: -1}
	if !o.Stdout && !o.Stderr {
		return errdefs.InvalidArgument("Bad parameters: you must choose at least one stream")
	}
	if t := q.Get("tail"); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return errdefs.InvalidArgument("invalid value for tail: %q", t)
		}
		o.Tail = n
	}
	if o.Since, err = parseTimestamp(q.Get("since")); err != nil {
		return err
	}
	if o.Until, err = parseTimestamp(q.Get("until")); err != nil {
		return err
	}
	timestamps := boolValue(r, "timestamps")
	tty := c.Config.Tty
	fw := newFlushWriter(w)
	o.Streaming = func() { // not before: a log that cannot be read is an error status (--log-driver none)
		fw.Header().Set("Content-Type", streamContentType(apiVersion(ctx), tty))
		fw.WriteHeader(http.StatusOK)
	}
	outW, errW := newFrameWriters(fw)
	return s.daemon.ContainerLogs(ctx, v["id"], o, func(m daemon.LogMessage) error {
		line := m.Line
		if timestamps {
			line = append([]byte(m.Time.UTC().Format(fixedRFC3339Nano)+" "), line...)
		}
		if tty {
			_, err := fw.Write(line)
			return err
		}
		if m.Stream == "stderr" {
			_, err := errW.Write(line)
			return err
		}
		_, err := outW.Write(line)
		return err
	})
}

func (s *Server) getContainerTop(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	top, err := s.daemon.ContainerTop(ctx, v["id"], r.URL.Query().Get("ps_args"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, top)
}

func (s *Server) deleteContainer(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	if boolValue(r, "link") {
		if err := s.daemon.ContainerRemoveLink(ctx, v["id"]); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err := s.daemon.ContainerRemove(ctx, v["id"], daemon.RemoveOptions{Force: boolValue(r, "force"), Volumes: boolValue(r, "v")}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
