package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/berth-dev/berth/registry/auth"
	"github.com/berth-dev/berth/registry/storage"
)

// need names the resource action a route and method require.
func need(r *http.Request, rt route) (repo, action string) {
	switch rt.kind {
	case "base", "catalog":
		return "", ""
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return rt.repo, "pull"
	case http.MethodDelete:
		return rt.repo, "delete"
	default:
		return rt.repo, "push"
	}
}

func (rg *registry) challenge(w http.ResponseWriter, r *http.Request, rt route, repo, action string, insufficient bool) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	v := fmt.Sprintf(`Bearer realm="%s://%s/token",service="%s"`, scheme, r.Host, rg.auth.Service)
	if repo != "" {
		acts := action
		if action == "push" {
			acts = "pull,push"
		}
		scope := "repository:" + repo + ":" + acts
		if from := r.URL.Query().Get("from"); from != "" && rt.kind == "upload-start" && storage.ValidateName(from) == nil {
			scope += " repository:" + from + ":pull"
		}
		v += fmt.Sprintf(`,scope="%s"`, scope)
	}
	if insufficient {
		v += `,error="insufficient_scope"`
	}
	w.Header().Set("WWW-Authenticate", v)
}

// authorize checks the bearer token against the route's needs. It returns the
// request carrying the caller's identity, or false after answering.
func (rg *registry) authorize(w http.ResponseWriter, r *http.Request, route route) (*http.Request, bool) {
	if rg.auth == nil {
		return r, true
	}
	repo, action := need(r, route)
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(r.Header.Get("Authorization"), "bearer ")
	}
	if !ok || tok == "" {
		rg.challenge(w, r, route, repo, action, false)
		writeError(w, r, newError(http.StatusUnauthorized, "UNAUTHORIZED", "authentication required"))
		return r, false
	}
	claims, err := rg.auth.Verify(strings.TrimSpace(tok))
	if err != nil {
		rg.challenge(w, r, route, repo, action, false)
		writeError(w, r, newError(http.StatusUnauthorized, "UNAUTHORIZED", err.Error()))
		return r, false
	}
	r = r.WithContext(context.WithValue(r.Context(), identityKey, claims.Subject))
	if repo == "" || claims.Allows("repository", repo, action) {
		return r, true
	}
	rg.challenge(w, r, route, repo, action, true)
	if claims.Subject == "" {
		writeError(w, r, newError(http.StatusUnauthorized, "UNAUTHORIZED", "authentication required"))
	} else {
		writeError(w, r, newError(http.StatusUnauthorized, "DENIED", "requested access to the resource is denied"))
	}
	return r, false
}

func identity(r *http.Request) string {
	id, _ := r.Context().Value(identityKey).(string)
	return id
}

// mayPull applies the policy (not the token's scopes) for listings and
// mount sources, which a token does not name.
func (rg *registry) mayPull(r *http.Request, repo string) bool {
	if rg.auth == nil {
		return true
	}
	for _, a := range rg.auth.Allowed(r.Context(), identity(r), repo) {
		if a == "pull" {
			return true
		}
	}
	return false
}

// pullFilter limits anonymous (source-less) mounts to blobs the caller could
// read anyway, so a digest is no key to someone else's private layer.
func (rg *registry) pullFilter(r *http.Request) func(string) bool {
	if rg.auth == nil {
		return nil
	}
	return func(repo string) bool { return rg.mayPull(r, repo) }
}

type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
	Scope       string `json:"scope,omitempty"`
}

// token is the token endpoint: GET with optional basic auth (Docker's
// token protocol) or POST with an OAuth2 password grant.
func (rg *registry) token(w http.ResponseWriter, r *http.Request) {
	var user, pass string
	var scopes []string
	hasCreds := false
	switch r.Method {
	case http.MethodGet:
		user, pass, hasCreds = r.BasicAuth()
		scopes = r.URL.Query()["scope"]
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			writeError(w, r, newError(http.StatusBadRequest, "UNSUPPORTED", "malformed form: "+err.Error()))
			return
		}
		switch r.PostForm.Get("grant_type") {
		case "password":
			user, pass, hasCreds = r.PostForm.Get("username"), r.PostForm.Get("password"), true
		default:
			writeError(w, r, newError(http.StatusBadRequest, "UNSUPPORTED", "unsupported grant_type "+r.PostForm.Get("grant_type")))
			return
		}
		scopes = strings.Fields(r.PostForm.Get("scope"))
	default:
		methodNotAllowed(w, r, "GET, POST")
		return
	}
	if svc := r.FormValue("service"); svc != "" && svc != rg.auth.Service {
		writeError(w, r, newError(http.StatusBadRequest, "UNSUPPORTED", "unknown service "+svc))
		return
	}
	if hasCreds {
		if err := rg.auth.Users.Verify(user, pass); err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="berth-registry"`)
			writeError(w, r, newError(http.StatusUnauthorized, "UNAUTHORIZED", err.Error()))
			return
		}
	} else {
		user = ""
	}
	*r = *r.WithContext(context.WithValue(r.Context(), identityKey, user))
	access := rg.auth.Grant(r.Context(), user, auth.ParseScopes(scopes))
	tok, issued, err := rg.auth.Issue(user, access)
	if err != nil {
		writeError(w, r, err)
		return
	}
	b, _ := json.Marshal(tokenResponse{
		Token: tok, AccessToken: tok,
		ExpiresIn: int(rg.auth.TTL / time.Second),
		IssuedAt:  issued.UTC().Format(time.RFC3339),
		Scope:     strings.Join(scopes, " "),
	})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}
