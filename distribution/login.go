package distribution

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/berth-dev/berth/errdefs"
)

// NormalizeServer turns a login server address ("", "https://index.docker.io/v1/",
// "registry:5000", "http://registry:5000/") into the registry domain
// references use ("docker.io", "registry:5000").
func NormalizeServer(addr string) string {
	a := strings.TrimSpace(addr)
	if a == "" {
		return dockerHubDomain
	}
	if u, err := url.Parse(a); err == nil && u.Host != "" {
		a = u.Host
	} else {
		a, _, _ = strings.Cut(a, "/")
	}
	switch a {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", "docker.io":
		return dockerHubDomain
	}
	return a
}

// Login checks credentials against a registry's /v2/ endpoint (basic, or
// a token from its realm) and returns docker's status text and, when the
// token server issues one, an identity token to store instead of the password.
func (s *Service) Login(ctx context.Context, server string, creds Credentials) (status, identityToken string, err error) {
	domain := NormalizeServer(server)
	eps, err := s.endpoints(ctx, domain)
	if err != nil {
		return "", "", err
	}
	ep := eps[len(eps)-1]
	u := ep.url("/v2/")
	hc := s.httpClient(ep)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("User-Agent", userAgent)
	resp, err := hc.Do(req)
	if err != nil {
		return "", "", errdefs.Unavailable("Get %q: %w", u, err)
	}
	drain(resp)
	if resp.StatusCode == http.StatusOK {
		return "Login Succeeded", "", nil
	}
	if resp.StatusCode != http.StatusUnauthorized {
		return "", "", errdefs.Unavailable("Get %q: unexpected status %s", u, resp.Status)
	}
	chs := parseChallenges(resp.Header.Values("Www-Authenticate"))
	for _, c := range chs {
		if c.scheme == "bearer" {
			if _, err := s.token(ctx, hc, c.params, nil, creds); err != nil {
				if errors.Is(err, errdefs.ErrUnauthorized) {
					return "", "", errdefs.Unauthorized("Get %q: unauthorized: incorrect username or password", u)
				}
				return "", "", err
			}
			return "Login Succeeded", "", nil
		}
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("User-Agent", userAgent)
	req.SetBasicAuth(creds.Username, creds.Password)
	resp, err = hc.Do(req)
	if err != nil {
		return "", "", errdefs.Unavailable("Get %q: %w", u, err)
	}
	drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", "", errdefs.Unauthorized("Get %q: unauthorized: incorrect username or password", u)
	}
	return "Login Succeeded", "", nil
}
