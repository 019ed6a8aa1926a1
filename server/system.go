package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/daemon"
	"github.com/berth-dev/berth/errdefs"
)

func (s *Server) systemRoutes() []route {
	return []route{
		{http.MethodGet, "/_ping", s.ping},
		{http.MethodHead, "/_ping", s.ping},
		{http.MethodGet, "/version", s.version},
		{http.MethodGet, "/info", s.info},
		{http.MethodGet, "/events", s.events},
	}
}

func (s *Server) ping(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Builder-Version", "1")
	h.Set("Swarm", "inactive")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write([]byte("OK"))
	}
	return nil
}

func (s *Server) version(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	return writeJSON(w, http.StatusOK, s.daemon.Version())
}

func (s *Server) info(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	return writeJSON(w, http.StatusOK, s.daemon.Info(ctx))
}

// parseTimestamp reads since/until: "secs", "secs.nanos" or RFC3339.
func parseTimestamp(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	secs, nanos, _ := strings.Cut(v, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, errdefs.InvalidArgument("invalid timestamp %q", v)
	}
	var nsec int64
	if nanos != "" {
		nanos = (nanos + "000000000")[:9]
		if nsec, err = strconv.ParseInt(nanos, 10, 64); err != nil {
			return time.Time{}, errdefs.InvalidArgument("invalid timestamp %q", v)
		}
	}
	return time.Unix(sec, nsec), nil
}

func (s *Server) events(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	since, err := parseTimestamp(r.URL.Query().Get("since"))
	if err != nil {
		return err
	}
	until, err := parseTimestamp(r.URL.Query().Get("until"))
	if err != nil {
		return err
	}
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	past, ch, cancel := s.daemon.Events.Subscribe(since)
	defer cancel()
	fw := newFlushWriter(w)
	fw.Header().Set("Content-Type", "application/json")
	fw.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(fw)
	send := func(ev daemon.Event) error {
		if !until.IsZero() && ev.TimeNano > until.UnixNano() {
			return nil
		}
		if !matchEvent(f, ev) {
			return nil
		}
		return enc.Encode(ev)
	}
	for _, ev := range past {
		if err := send(ev); err != nil {
			return nil
		}
	}
	var deadline <-chan time.Time
	if !until.IsZero() {
		timer := time.NewTimer(time.Until(until))
		defer timer.Stop()
		deadline = timer.C
	}
	for {
		select {
		case ev := <-ch:
			if err := send(ev); err != nil {
				return nil
			}
		case <-deadline:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// matchEvent applies docker's event filters: type, event (action),
// container, image, label, plus name-or-id matching.
func matchEvent(f filters, ev daemon.Event) bool {
	match := func(key string, ok func(string) bool) bool {
		vals := f[key]
		if len(vals) == 0 {
			return true
		}
		for _, v := range vals {
			if ok(v) {
				return true
			}
		}
		return false
	}
	action := string(ev.Action)
	if i := strings.Index(action, ":"); i > 0 {
		action = action[:i]
	}
	idOrName := func(v string) bool {
		return ev.Actor.ID == v || strings.HasPrefix(ev.Actor.ID, v) || ev.Actor.Attributes["name"] == v
	}
	return match("type", func(v string) bool { return string(ev.Type) == v }) &&
		match("event", func(v string) bool { return action == v || string(ev.Action) == v }) &&
		match("container", func(v string) bool { return string(ev.Type) == "container" && idOrName(v) }) &&
		match("image", func(v string) bool {
			return ev.Actor.Attributes["image"] == v || (string(ev.Type) == "image" && idOrName(v))
		}) &&
		match("label", func(v string) bool {
			k, val, hasV := strings.Cut(v, "=")
			got, ok := ev.Actor.Attributes[k]
			return ok && (!hasV || got == val)
		})
}
