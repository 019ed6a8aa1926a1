package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/daemon"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/version"
)

// handler is what every endpoint implements; a returned error is rendered
// as {"message": ...} with the status of its errdefs class.
type handler func(ctx context.Context, w http.ResponseWriter, r *http.Request, vars map[string]string) error

// route binds a method and a path pattern to a handler. In patterns,
// {x} matches one path segment and {x:.*} is greedy (image names hold '/').
type route struct {
	method, path string
	h            handler
}

type compiledRoute struct {
	route
	re *regexp.Regexp
}

// Server is the Engine API's http.Handler.
type Server struct {
	daemon *daemon.Daemon
	routes []compiledRoute
}

var (
	paramRe   = regexp.MustCompile(`\{([a-zA-Z]+)(:\.\*)?\}`)
	versionRe = regexp.MustCompile(`^/v([0-9]+\.[0-9]+)(/.*)$`)
)

// New returns the API handler for d.
func New(d *daemon.Daemon) (*Server, error) {
	s := &Server{daemon: d}
	var all []route
	all = append(all, s.systemRoutes()...)
	all = append(all, s.containerRoutes()...)
	all = append(all, s.execRoutes()...)
	all = append(all, s.networkRoutes()...)
	all = append(all, s.archiveRoutes()...)
	all = append(all, s.volumeRoutes()...)
	all = append(all, s.buildRoutes()...)
	// Image endpoints live in image.go, owned with the image store.
	if ir, ok := any(s).(interface{ imageRoutes() []route }); ok {
		all = append(all, ir.imageRoutes()...)
	}
	for _, rt := range all {
		expr := paramRe.ReplaceAllStringFunc(rt.path, func(m string) string {
			sub := paramRe.FindStringSubmatch(m)
			if sub[2] != "" {
				return "(?P<" + sub[1] + ">.+)"
			}
			return "(?P<" + sub[1] + ">[^/]+)"
		})
		re, err := regexp.Compile("^" + expr + "$")
		if err != nil {
			return nil, fmt.Errorf("route %s %s: %w", rt.method, rt.path, err)
		}
		s.routes = append(s.routes, compiledRoute{route: rt, re: re})
	}
	return s, nil
}

type ctxKey int

const versionKey ctxKey = 0

// apiVersion is the request's API version (the path prefix, or the highest).
func apiVersion(ctx context.Context) string {
	if v, ok := ctx.Value(versionKey).(string); ok {
		return v
	}
	return daemon.APIVersion
}

// versionAtLeast compares dotted API versions.
func versionAtLeast(v, min string) bool { return compareVersions(v, min) >= 0 }

func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func setCommonHeaders(h http.Header) {
	h.Set("Api-Version", daemon.APIVersion)
	h.Set("Ostype", "linux")
	h.Set("Docker-Experimental", "false")
	h.Set("Server", "Berth/"+version.Version+" (linux)")
}

// ServeHTTP strips the version prefix, checks it, and dispatches.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setCommonHeaders(w.Header())
	path := r.URL.Path
	ver := daemon.APIVersion
	if m := versionRe.FindStringSubmatch(path); m != nil {
		ver, path = m[1], m[2]
		if compareVersions(ver, daemon.MinAPIVersion) < 0 {
			writeError(w, errdefs.InvalidArgument("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", ver, daemon.MinAPIVersion))
			return
		}
		if compareVersions(ver, daemon.APIVersion) > 0 {
			writeError(w, errdefs.InvalidArgument("client version %s is too new. Maximum supported API version is %s", ver, daemon.APIVersion))
			return
		}
	}
	ctx := context.WithValue(r.Context(), versionKey, ver)
	for _, rt := range s.routes {
		if rt.method != r.Method && !(rt.method == http.MethodGet && r.Method == http.MethodHead) {
			continue
		}
		m := rt.re.FindStringSubmatch(path)
		if m == nil {
			continue
		}
		vars := map[string]string{}
		for i, name := range rt.re.SubexpNames() {
			if name != "" {
				vars[name] = m[i]
			}
		}
		if err := rt.h(ctx, w, r.WithContext(ctx), vars); err != nil {
			slog.Debug("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
			writeError(w, err)
		}
		return
	}
	// dockerd answers a known path with the wrong method the same way.
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "page not found"})
}
