package registry

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/registry/auth"
	"github.com/berth-dev/berth/registry/storage"
)

// registry serves the distribution API over one Store.
type registry struct {
	store  *storage.Store
	auth   *auth.Authority // nil: no authentication
	log    *slog.Logger
	root   string
	access bool
}

// Option configures New.
type Option func(*registry) error

// WithRoot stores content in dir with the filesystem driver.
func WithRoot(dir string) Option {
	return func(r *registry) error {
		r.root = dir
		return nil
	}
}

// WithStore serves an existing Store (tests use it with other drivers).
func WithStore(s *storage.Store) Option {
	return func(r *registry) error {
		r.store = s
		return nil
	}
}

// WithAuth requires tokens issued by a for every request.
func WithAuth(a *auth.Authority) Option {
	return func(r *registry) error {
		r.auth = a
		return nil
	}
}

// WithLogger sets the logger for access logs and internal errors.
func WithLogger(l *slog.Logger) Option {
	return func(r *registry) error {
		r.log = l
		return nil
	}
}

// WithAccessLog turns the per-request access log on or off (default on).
func WithAccessLog(on bool) Option {
	return func(r *registry) error {
		r.access = on
		return nil
	}
}

// New returns the registry's HTTP handler.
func New(opts ...Option) (http.Handler, error) {
	r := &registry{log: slog.Default(), access: true}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	if r.store == nil {
		if r.root == "" {
			return nil, errdefs.InvalidArgument("registry: no storage: use WithRoot or WithStore")
		}
		s, err := storage.OpenFilesystem(r.root)
		if err != nil {
			return nil, err
		}
		r.store = s
	}
	return r, nil
}

type ctxKey int

const (
	loggerKey ctxKey = iota
	identityKey
)

func loggerFrom(r *http.Request) *slog.Logger {
	l, _ := r.Context().Value(loggerKey).(*slog.Logger)
	return l
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// route is a parsed request path.
type route struct {
	kind string // base, catalog, tags, manifest, blob, upload-start, upload, referrers, token, healthz
	repo string
	ref  string // tag, digest or upload id
}

func parseRoute(p string) (route, bool) {
	switch p {
	case "/v2", "/v2/":
		return route{kind: "base"}, true
	case "/v2/_catalog":
		return route{kind: "catalog"}, true
	case "/token", "/v2/token":
		return route{kind: "token"}, true
	case "/healthz":
		return route{kind: "healthz"}, true
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return route{}, false
	}
	if repo, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		return route{kind: "tags", repo: repo}, true
	}
	if repo, ok := strings.CutSuffix(rest, "/blobs/uploads/"); ok {
		return route{kind: "upload-start", repo: repo}, true
	}
	if repo, ok := strings.CutSuffix(rest, "/blobs/uploads"); ok {
		return route{kind: "upload-start", repo: repo}, true
	}
	for _, k := range []struct{ sep, kind string }{
		{"/blobs/uploads/", "upload"},
		{"/manifests/", "manifest"},
		{"/blobs/", "blob"},
		{"/referrers/", "referrers"},
	} {
		i := strings.LastIndex(rest, k.sep)
		if i <= 0 {
			continue
		}
		ref := rest[i+len(k.sep):]
		if ref == "" || strings.Contains(ref, "/") {
			continue
		}
		return route{kind: k.kind, repo: rest[:i], ref: ref}, true
	}
	return route{}, false
}

func (rg *registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	lw := &logWriter{ResponseWriter: w, status: http.StatusOK}
	ctx := context.WithValue(req.Context(), loggerKey, rg.log)
	req = req.WithContext(ctx)
	defer func() { rg.logAccess(lw, req, start) }()
	w = lw

	rt, ok := parseRoute(req.URL.Path)
	if !ok {
		writeError(w, req, newError(http.StatusNotFound, "NOT_FOUND", "no route for "+req.URL.Path))
		return
	}
	switch rt.kind {
	case "healthz":
		rg.healthz(w, req)
		return
	case "token":
		if rg.auth == nil {
			writeError(w, req, newError(http.StatusNotFound, "UNSUPPORTED", "authentication is not enabled"))
			return
		}
		rg.token(w, req)
		return
	}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if rt.repo != "" {
		if err := storage.ValidateName(rt.repo); err != nil {
			writeError(w, req, err)
			return
		}
	}
	req, ok = rg.authorize(w, req, rt)
	if !ok {
		return
	}
	switch rt.kind {
	case "base":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusOK)
		if req.Method != http.MethodHead {
			w.Write([]byte("{}"))
		}
	case "catalog":
		rg.catalog(w, req)
	case "tags":
		rg.tags(w, req, rt)
	case "manifest":
		rg.manifest(w, req, rt)
	case "blob":
		rg.blob(w, req, rt)
	case "upload-start":
		rg.uploadStart(w, req, rt)
	case "upload":
		rg.upload(w, req, rt)
	case "referrers":
		rg.referrers(w, req, rt)
	}
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, r, newError(http.StatusMethodNotAllowed, "UNSUPPORTED", r.Method+" is not supported here"))
}

func (rg *registry) healthz(w http.ResponseWriter, r *http.Request) {
	if _, err := rg.store.Driver().Stat(r.Context(), "/"); err != nil {
		http.Error(w, "storage unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte("ok\n"))
}
