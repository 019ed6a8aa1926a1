package distribution

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/errdefs"
)

// Credentials authenticate to a registry; all fields are optional.
type Credentials struct {
	Username      string
	Password      string
	IdentityToken string // an OAuth2 refresh token from a previous login
	RegistryToken string // a bearer token to send as is
}

func (c Credentials) empty() bool {
	return c.Username == "" && c.Password == "" && c.IdentityToken == "" && c.RegistryToken == ""
}

// repoClient talks to one repository on one endpoint, authenticating on the
// first 401 and reusing the result for every later request.
type repoClient struct {
	s      *Service
	ep     endpoint
	name   string   // repository path, e.g. "library/busybox"
	scopes []string // token scopes, e.g. "repository:library/busybox:pull"
	creds  Credentials
	http   *http.Client

	mu   sync.Mutex
	auth string // Authorization header value, once known
}

func (s *Service) repo(ep endpoint, name string, creds Credentials, actions string, extra ...string) *repoClient {
	r := &repoClient{s: s, ep: ep, name: name, creds: creds, http: s.httpClient(ep),
		scopes: append([]string{"repository:" + name + ":" + actions}, extra...)}
	if creds.RegistryToken != "" {
		r.auth = "Bearer " + creds.RegistryToken
	}
	return r
}

func (r *repoClient) authorization() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.auth
}

// bodyFunc makes a fresh request body for each attempt.
type bodyFunc func() (io.ReadCloser, int64, error)

// do sends a request to path (relative to the endpoint, or an absolute URL
// the registry returned), authenticating on a 401 and retrying network
// errors with back-off. The caller closes the response body.
func (r *repoClient) do(ctx context.Context, method, path string, hdr http.Header, body bodyFunc) (*http.Response, error) {
	u := path
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		u = r.ep.url(path)
	}
	authTried := false
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return nil, errdefs.InvalidArgument("%s %s: %w", method, u, err)
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", userAgent)
		if body != nil {
			rc, n, err := body()
			if err != nil {
				return nil, err
			}
			req.Body, req.ContentLength = rc, n
		}
		if a := r.authorization(); a != "" {
			req.Header.Set("Authorization", a)
		}
		resp, err := r.http.Do(req)
		if err != nil {
			if attempt < 4 && isNetworkError(err) {
				if berr := backoff(ctx, attempt); berr != nil {
					return nil, berr
				}
				continue
			}
			return nil, errdefs.Unavailable("%s %s: %w", method, redact(u), err)
		}
		if resp.StatusCode == http.StatusUnauthorized && !authTried {
			authTried = true
			ch := resp.Header.Values("Www-Authenticate")
			drain(resp)
			if err := r.authenticate(ctx, ch); err != nil {
				return nil, err
			}
			attempt = 0
			continue
		}
		if resp.StatusCode >= 500 && attempt < 4 && (method == http.MethodGet || method == http.MethodHead) {
			drain(resp)
			if berr := backoff(ctx, attempt); berr != nil {
				return nil, berr
			}
			continue
		}
		return resp, nil
	}
}

const userAgent = "berth/1 (linux) docker/28 (compatible)"

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// redact drops query strings (upload URLs may carry state) from messages.
func redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}

// challenge is one parsed WWW-Authenticate header.
type challenge struct {
	scheme string
	params map[string]string
}

// parseChallenges parses WWW-Authenticate values such as
// `Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"`.
func parseChallenges(values []string) []challenge {
	var out []challenge
	for _, v := range values {
		v = strings.TrimSpace(v)
		scheme, rest, _ := strings.Cut(v, " ")
		c := challenge{scheme: strings.ToLower(scheme), params: map[string]string{}}
		for rest = strings.TrimSpace(rest); rest != ""; {
			key, after, ok := strings.Cut(rest, "=")
			if !ok {
				break
			}
			key = strings.ToLower(strings.TrimSpace(key))
			after = strings.TrimSpace(after)
			var val string
			if strings.HasPrefix(after, `"`) {
				var b strings.Builder
				i := 1
				for ; i < len(after); i++ {
					if after[i] == '\\' && i+1 < len(after) {
						i++
						b.WriteByte(after[i])
						continue
					}
					if after[i] == '"' {
						break
					}
					b.WriteByte(after[i])
				}
				val = b.String()
				after = after[min(i+1, len(after)):]
			} else {
				val, after, _ = strings.Cut(after, ",")
				after = "," + after
			}
			c.params[key] = val
			after = strings.TrimSpace(after)
			rest = strings.TrimSpace(strings.TrimPrefix(after, ","))
		}
		out = append(out, c)
	}
	return out
}

type cachedToken struct {
	token   string
	expires time.Time
}

// authenticate answers a 401's challenges: Basic with the credentials, or
// Bearer by fetching a token from the realm.
func (r *repoClient) authenticate(ctx context.Context, values []string) error {
	chs := parseChallenges(values)
	for _, c := range chs {
		if c.scheme == "bearer" {
			tok, err := r.s.token(ctx, r.http, c.params, r.scopes, r.creds)
			if err != nil {
				return err
			}
			r.mu.Lock()
			r.auth = "Bearer " + tok
			r.mu.Unlock()
			return nil
		}
	}
	for _, c := range chs {
		if c.scheme == "basic" {
			if r.creds.Username == "" && r.creds.Password == "" {
				return errdefs.Unauthorized("%s: authentication required", r.ep.host)
			}
			r.mu.Lock()
			r.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(r.creds.Username+":"+r.creds.Password))
			r.mu.Unlock()
			return nil
		}
	}
	return errdefs.Unauthorized("%s: authentication required (no supported challenge in %q)", r.ep.host, values)
}

// token fetches (or reuses) a bearer token for scopes from the challenge's
// realm: an OAuth2 refresh-token POST when there is an identity token, else
// a GET with basic credentials (anonymous without them).
func (s *Service) token(ctx context.Context, hc *http.Client, params map[string]string, scopes []string, creds Credentials) (string, error) {
	realm := params["realm"]
	ru, err := url.Parse(realm)
	if err != nil || (ru.Scheme != "http" && ru.Scheme != "https") {
		return "", errdefs.Unauthorized("token realm %q: not an http(s) URL", realm)
	}
	service := params["service"]
	if sc := params["scope"]; sc != "" {
		scopes = mergeScopes(scopes, strings.Fields(sc))
	}
	h := sha256.Sum256([]byte(realm + "\x00" + service + "\x00" + strings.Join(scopes, " ") + "\x00" + creds.Username + "\x00" + creds.Password + "\x00" + creds.IdentityToken))
	key := hex.EncodeToString(h[:])
	s.tokenMu.Lock()
	if t, ok := s.tokens[key]; ok && time.Now().Before(t.expires) {
		s.tokenMu.Unlock()
		return t.token, nil
	}
	s.tokenMu.Unlock()

	var req *http.Request
	if creds.IdentityToken != "" {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {creds.IdentityToken}, "service": {service}, "client_id": {"berth"}}
		if len(scopes) > 0 {
			form.Set("scope", strings.Join(scopes, " "))
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, realm, strings.NewReader(form.Encode()))
		if err != nil {
			return "", errdefs.InvalidArgument("token request: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		q := ru.Query()
		if service != "" {
			q.Set("service", service)
		}
		for _, sc := range scopes {
			q.Add("scope", sc)
		}
		if creds.Username != "" {
			q.Set("account", creds.Username)
		}
		ru.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, ru.String(), nil)
		if err != nil {
			return "", errdefs.InvalidArgument("token request: %w", err)
		}
		if creds.Username != "" || creds.Password != "" {
			req.SetBasicAuth(creds.Username, creds.Password)
		}
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := hc.Do(req)
	if err != nil {
		return "", errdefs.Unavailable("fetch token from %s: %w", realm, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return "", errdefs.Unauthorized("%s", registryErrorText(resp, "unauthorized: incorrect username or password"))
	}
	if resp.StatusCode != http.StatusOK {
		return "", errdefs.Unavailable("fetch token from %s: %s", realm, registryErrorText(resp, resp.Status))
	}
	var tr struct {
		Token        string `json:"token"`
		AccessToken  string `json:"access_token"`
		ExpiresIn    int    `json:"expires_in"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tr); err != nil {
		return "", errdefs.Unavailable("token from %s: %w", realm, err)
	}
	tok := tr.Token
	if tok == "" {
		tok = tr.AccessToken
	}
	if tok == "" {
		return "", errdefs.Unavailable("token from %s: empty token", realm)
	}
	life := time.Duration(tr.ExpiresIn) * time.Second
	if life < 60*time.Second {
		life = 60 * time.Second
	}
	s.tokenMu.Lock()
	s.tokens[key] = cachedToken{token: tok, expires: time.Now().Add(life - 10*time.Second)}
	s.tokenMu.Unlock()
	return tok, nil
}

func mergeScopes(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string{}, a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// registryError is the OCI error body: {"errors":[{"code","message","detail"}]}.
type registryError struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
	Details string `json:"details"` // some token servers
}

// registryErrorText renders an error response like docker: "code: message".
func registryErrorText(resp *http.Response, fallback string) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var re registryError
	if json.Unmarshal(b, &re) == nil && len(re.Errors) > 0 {
		var parts []string
		for _, e := range re.Errors {
			parts = append(parts, strings.ToLower(e.Code)+": "+e.Message)
		}
		return strings.Join(parts, "; ")
	}
	if re.Details != "" {
		return re.Details
	}
	return fallback
}

// registryCode is the first error code of a response, e.g. "MANIFEST_UNKNOWN".
func registryCode(b []byte) string {
	var re registryError
	if json.Unmarshal(b, &re) == nil && len(re.Errors) > 0 {
		return re.Errors[0].Code
	}
	return ""
}

// statusError classes an unexpected response.
func statusError(resp *http.Response, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	text := registryErrorText(resp, resp.Status)
	switch resp.StatusCode {
	case http.StatusNotFound:
		return errdefs.NotFound("%s: %s", what, text)
	case http.StatusUnauthorized:
		return errdefs.Unauthorized("%s: %s", what, text)
	case http.StatusForbidden:
		return errdefs.Forbidden("%s: %s", what, text)
	case http.StatusBadRequest:
		return errdefs.InvalidArgument("%s: %s", what, text)
	}
	return errdefs.Unavailable("%s: %s", what, text)
}
