package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/berth-dev/berth/distribution"
	"github.com/berth-dev/berth/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/registry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func (s *Server) distributionRoutes() []route {
	return []route{
		{http.MethodPost, "/images/{name:.*}/push", s.postImagePush},
		{http.MethodPost, "/auth", s.postAuth},
	}
}

// registryAuth decodes X-Registry-Auth: base64url (padded or not, or
// standard) JSON; empty or undecodable means anonymous, as dockerd does.
func registryAuth(r *http.Request) distribution.Credentials {
	h := strings.TrimSpace(r.Header.Get(registry.AuthHeader))
	if h == "" {
		return distribution.Credentials{}
	}
	var raw []byte
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(h); err == nil {
			raw = b
			break
		}
	}
	var ac registry.AuthConfig
	if json.Unmarshal(raw, &ac) != nil {
		return distribution.Credentials{}
	}
	return credentialsOf(ac)
}

func credentialsOf(ac registry.AuthConfig) distribution.Credentials {
	c := distribution.Credentials{Username: ac.Username, Password: ac.Password, IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}
	if c.Username == "" && ac.Auth != "" {
		if b, err := base64.StdEncoding.DecodeString(ac.Auth); err == nil {
			c.Username, c.Password, _ = strings.Cut(string(b), ":")
		}
	}
	return c
}

// platformParam reads ?platform= as "os/arch[/variant]" or as OCI JSON.
func platformParam(r *http.Request) (*ocispec.Platform, error) {
	v := strings.TrimSpace(r.URL.Query().Get("platform"))
	if v == "" {
		return nil, nil
	}
	if strings.HasPrefix(v, "{") {
		var p ocispec.Platform
		if err := json.Unmarshal([]byte(v), &p); err != nil {
			return nil, errdefs.InvalidArgument("invalid platform %q: %v", v, err)
		}
		if p.OS == "" {
			p.OS = "linux"
		}
		out, err := distribution.ParsePlatform(distribution.FormatPlatform(p))
		return &out, err
	}
	p, err := distribution.ParsePlatform(v)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// progressMessage is a distribution progress report on docker's wire.
func progressMessage(p distribution.Progress) Message {
	m := Message{ID: p.ID, Status: p.Status, Aux: p.Aux}
	if p.Detail {
		m.ProgressDetail = &ProgressDetail{Current: p.Current, Total: p.Total}
		m.Progress = p.Bar()
	}
	return m
}

// postImagesPull is POST /images/create?fromImage=&tag=&platform=. Errors
// found before the first layer moves get a real status; later ones go
// into the stream.
func (s *Server) postImagesPull(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	q := r.URL.Query()
	ref := q.Get("fromImage")
	// Without a tag in either place docker pulls every tag (`pull -a`).
	allTags := false
	if n, err := reference.ParseNormalizedNamed(ref); err == nil && reference.IsNameOnly(n) && q.Get("tag") == "" {
		allTags = true
	}
	if tag := q.Get("tag"); tag != "" {
		if strings.Contains(tag, ":") {
			ref += "@" + tag
		} else {
			ref += ":" + tag
		}
	}
	platform, err := platformParam(r)
	if err != nil {
		return err
	}
	ps := newProgressStream(w)
	res, err := s.daemon.Distribution.Pull(ctx, ref, distribution.PullOptions{Credentials: registryAuth(r), Platform: platform, AllTags: allTags},
		func(p distribution.Progress) { ps.Write(progressMessage(p)) })
	if err != nil {
		if !ps.fw.Written() {
			return err
		}
		return ps.Error(err)
	}
	s.daemon.Events.Publish(events.ImageEventType, events.ActionPull, res.Image.ID.String(), map[string]string{"name": res.Ref})
	return nil
}

// postImagePush is POST /images/{name}/push?tag=.
func (s *Server) postImagePush(ctx context.Context, w http.ResponseWriter, r *http.Request, vars map[string]string) error {
	name := vars["name"]
	if _, err := reference.ParseNormalizedNamed(name); err != nil {
		return errdefs.InvalidArgument("invalid reference format: %s", name)
	}
	ps := newProgressStream(w)
	results, err := s.daemon.Distribution.Push(ctx, name, r.URL.Query().Get("tag"), distribution.PushOptions{Credentials: registryAuth(r)},
		func(p distribution.Progress) { ps.Write(progressMessage(p)) })
	for _, res := range results {
		n := name
		if t, err := reference.ParseNormalizedNamed(name); err == nil {
			n = reference.FamiliarName(t) + ":" + res.Tag
		}
		s.daemon.Events.Publish(events.ImageEventType, events.ActionPush, n, map[string]string{"name": n})
	}
	if err != nil {
		if !ps.fw.Written() {
			return err
		}
		return ps.Error(err)
	}
	return nil
}

// postAuth is POST /auth: check credentials against a registry.
func (s *Server) postAuth(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	var ac registry.AuthConfig
	if err := decodeBody(r, &ac); err != nil {
		return err
	}
	status, token, err := s.daemon.Distribution.Login(ctx, ac.ServerAddress, credentialsOf(ac))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, registry.AuthResponse{Status: status, IdentityToken: token})
}
