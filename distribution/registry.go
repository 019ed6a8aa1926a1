package distribution

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/distribution/reference"
	"golang.org/x/sync/singleflight"
)

// Docker Hub's names: references say docker.io, the API is served elsewhere.
const (
	dockerHubDomain   = "docker.io"
	dockerHubRegistry = "registry-1.docker.io"
	// dockerHubIndex is the server address the docker CLI sends and stores for Docker Hub.
	dockerHubIndex = "https://index.docker.io/v1/"
)

// Config says how to reach registries.
type Config struct {
	// InsecureRegistries are host[:port] names or CIDRs that may be reached
	// over plain HTTP (or HTTPS without verification). 127.0.0.0/8 and ::1
	// always may.
	InsecureRegistries []string
	// Mirrors are tried, in order, for docker.io before Docker Hub itself.
	Mirrors []string
	// MaxConcurrentDownloads and MaxConcurrentUploads bound the parallel
	// blob transfers of one pull or push (default 6 and 5).
	MaxConcurrentDownloads int
	MaxConcurrentUploads   int
}

// Service pulls, pushes and logs in. One Service is shared by the daemon:
// its in-flight tables make concurrent pulls of the same layer share one
// download and one unpack.
type Service struct {
	cfg    Config
	store  *image.Store
	nets   []*net.IPNet
	hosts  map[string]bool
	client *http.Client // verifies TLS
	loose  *http.Client // for insecure registries: TLS without verification

	downloads singleflight.Group // blob digest -> download into the content store
	unpacks   singleflight.Group // chain ID -> unpack

	schemeMu sync.Mutex
	schemes  map[string]string // host -> "https" or "http", once probed

	tokenMu sync.Mutex
	tokens  map[string]cachedToken // host + credentials + scope -> bearer token
}

// New returns a Service storing into store.
func New(store *image.Store, cfg Config) (*Service, error) {
	if cfg.MaxConcurrentDownloads <= 0 {
		cfg.MaxConcurrentDownloads = 6
	}
	if cfg.MaxConcurrentUploads <= 0 {
		cfg.MaxConcurrentUploads = 5
	}
	s := &Service{cfg: cfg, store: store, hosts: map[string]bool{}, schemes: map[string]string{}, tokens: map[string]cachedToken{}}
	for _, r := range cfg.InsecureRegistries {
		r = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(r, "http://"), "https://"), "/")
		if _, n, err := net.ParseCIDR(r); err == nil {
			s.nets = append(s.nets, n)
			continue
		}
		if strings.Contains(r, "://") || r == "" {
			return nil, errdefs.InvalidArgument("insecure registry %q: want host[:port] or a CIDR", r)
		}
		s.hosts[r] = true
	}
	for _, m := range cfg.Mirrors {
		u, err := url.Parse(m)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errdefs.InvalidArgument("registry mirror %q: want an http:// or https:// URL", m)
		}
	}
	s.client = &http.Client{Transport: newTransport(false)}
	s.loose = &http.Client{Transport: newTransport(true)}
	return s, nil
}

func newTransport(skipVerify bool) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: skipVerify, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		// Layers are already compressed; asking for gzip again only costs CPU.
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
	}
}

// insecure says whether host (host[:port]) may be reached without verified TLS.
func (s *Service) insecure(host string) bool {
	if s.hosts[host] {
		return true
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if s.hosts[h] || h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	if ip == nil && len(s.nets) > 0 {
		// Only a CIDR entry needs the name resolved.
		if addrs, err := net.LookupIP(h); err == nil && len(addrs) > 0 {
			ip = addrs[0]
		}
	}
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	for _, n := range s.nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// endpoint is one registry base URL.
type endpoint struct {
	host   string // host[:port] as written in URLs
	scheme string
	mirror bool
}

func (e endpoint) url(path string) string { return e.scheme + "://" + e.host + path }

// endpoints lists where a reference's domain is served, best first.
func (s *Service) endpoints(ctx context.Context, domain string) ([]endpoint, error) {
	var out []endpoint
	if domain == dockerHubDomain {
		for _, m := range s.cfg.Mirrors {
			u, _ := url.Parse(m)
			out = append(out, endpoint{host: u.Host, scheme: u.Scheme, mirror: true})
		}
		domain = dockerHubRegistry
	}
	scheme, err := s.scheme(ctx, domain)
	if err != nil {
		return nil, err
	}
	return append(out, endpoint{host: domain, scheme: scheme}), nil
}

// scheme picks https, or for an insecure registry that does not speak TLS,
// http; the answer is remembered per host.
func (s *Service) scheme(ctx context.Context, host string) (string, error) {
	if !s.insecure(host) {
		return "https", nil
	}
	s.schemeMu.Lock()
	sc, ok := s.schemes[host]
	s.schemeMu.Unlock()
	if ok {
		return sc, nil
	}
	sc = "http"
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(pctx, http.MethodGet, "https://"+host+"/v2/", nil)
	resp, err := s.loose.Do(req)
	if err == nil {
		resp.Body.Close()
		sc = "https"
	} else if ctx.Err() != nil {
		return "", ctx.Err()
	}
	var oe *net.OpError
	if err != nil && errors.As(err, &oe) && oe.Op == "dial" {
		// Nobody listens (yet): decide next time, plain HTTP for now.
		return sc, nil
	}
	s.schemeMu.Lock()
	s.schemes[host] = sc
	s.schemeMu.Unlock()
	return sc, nil
}

func (s *Service) httpClient(e endpoint) *http.Client {
	if e.scheme == "https" && s.insecure(e.host) {
		return s.loose
	}
	return s.client
}

// splitReference parses a user's image reference into its normalized name
// and returns the registry domain and repository path.
func splitReference(ref string) (reference.Named, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, errdefs.InvalidArgument("invalid reference format: %s", ref)
	}
	return named, nil
}

// isNetworkError says whether a retry might help.
func isNetworkError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) || strings.Contains(err.Error(), "connection reset") ||
		strings.Contains(err.Error(), "EOF")
}

// backoff waits before retry attempt n (1-based), or returns ctx's error.
func backoff(ctx context.Context, n int) error {
	d := time.Duration(1<<uint(n-1)) * 200 * time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// registryHost is the host a reference's domain means, for messages.
func registryHost(domain string) string {
	if domain == dockerHubDomain {
		return dockerHubRegistry
	}
	return domain
}
