package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/golang-jwt/jwt/v5"
)

// Access is one resource grant in a token, as Docker's token protocol spells it.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Claims are a token's claims.
type Claims struct {
	jwt.RegisteredClaims
	Access []Access `json:"access"`
}

// Allows reports whether the token grants action on the repository.
func (c *Claims) Allows(typ, name, action string) bool {
	for _, a := range c.Access {
		if a.Type == typ && a.Name == name && (slices.Contains(a.Actions, action) || slices.Contains(a.Actions, "*")) {
			return true
		}
	}
	return false
}

// VisibilityFunc reports whether a repository is public.
type VisibilityFunc func(ctx context.Context, repo string) bool

// Authority issues and checks tokens and decides who may do what.
type Authority struct {
	Users   *Users
	Service string
	Issuer  string
	TTL     time.Duration

	key    *ecdsa.PrivateKey
	kid    string
	public VisibilityFunc
}

// TokenTTL is how long an issued token is valid.
const TokenTTL = 5 * time.Minute

// New opens the authority whose key and users live in dir, generating the
// signing key on first use. public tells which repositories are public.
func New(dir, service string, public VisibilityFunc) (*Authority, error) {
	if service == "" {
		return nil, errdefs.InvalidArgument("auth: empty service name")
	}
	if public == nil {
		return nil, errdefs.InvalidArgument("auth: no visibility function")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, errdefs.System("auth: create %s: %v", dir, err)
	}
	users, err := OpenUsers(filepath.Join(dir, "users"))
	if err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(filepath.Join(dir, "token.key"))
	if err != nil {
		return nil, err
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	sum := sha256.Sum256(der)
	return &Authority{
		Users:   users,
		Service: service,
		Issuer:  service,
		TTL:     TokenTTL,
		key:     key,
		kid:     kidOf(sum[:30]),
		public:  public,
	}, nil
}

// kidOf formats a key id the way libtrust did (base32, groups of four).
func kidOf(b []byte) string {
	s := strings.TrimRight(base32.StdEncoding.EncodeToString(b), "=")
	var parts []string
	for i := 0; i < len(s); i += 4 {
		parts = append(parts, s[i:min(i+4, len(s))])
	}
	return strings.Join(parts, ":")
}

func loadOrCreateKey(p string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(p)
	if err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, errdefs.InvalidArgument("auth: %s is not PEM", p)
		}
		k, err := x509.ParseECPrivateKey(blk.Bytes)
		if err != nil {
			return nil, errdefs.InvalidArgument("auth: %s: %v", p, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.System("auth: read %s: %v", p, err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, errdefs.System("auth: generate key: %v", err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, errdefs.System("auth: encode key: %v", err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, errdefs.System("auth: write %s: %v", tmp, err)
	}
	if err := os.Link(tmp, p); err != nil {
		os.Remove(tmp)
		if errors.Is(err, fs.ErrExist) {
			// Another process made the key first: use theirs.
			return loadOrCreateKey(p)
		}
		return nil, errdefs.System("auth: install %s: %v", p, err)
	}
	os.Remove(tmp)
	return k, nil
}

// Owner is the user who owns repo: its first path component.
func Owner(repo string) string {
	owner, _, _ := strings.Cut(repo, "/")
	return owner
}

// Allowed returns the actions user ("" for anonymous) may take on repo:
// the owner (an existing account named like the first path component, with
// at least one more component) pulls, pushes and deletes; everyone pulls a
// public repository.
func (a *Authority) Allowed(ctx context.Context, user, repo string) []string {
	var acts []string
	if user != "" && strings.Contains(repo, "/") && Owner(repo) == user && a.Users.Exists(user) {
		return []string{"pull", "push", "delete"}
	}
	if a.public(ctx, repo) {
		acts = append(acts, "pull")
	}
	return acts
}

// Scope is one requested resource scope ("repository:name:pull,push").
type Scope struct {
	Type    string
	Name    string
	Actions []string
}

// ParseScopes reads scope strings; several may share one parameter,
// separated by spaces. Malformed scopes are skipped, as Docker's servers do.
func ParseScopes(params []string) []Scope {
	var out []Scope
	for _, p := range params {
		for _, s := range strings.Fields(p) {
			i := strings.Index(s, ":")
			j := strings.LastIndex(s, ":")
			if i <= 0 || j <= i {
				continue
			}
			typ := s[:i]
			if k := strings.Index(typ, "("); k > 0 {
				typ = typ[:k] // "repository(plugin)"
			}
			out = append(out, Scope{Type: typ, Name: s[i+1 : j], Actions: strings.Split(s[j+1:], ",")})
		}
	}
	return out
}

// Grant intersects the requested scopes with what user may do.
func (a *Authority) Grant(ctx context.Context, user string, scopes []Scope) []Access {
	out := []Access{}
	for _, sc := range scopes {
		var allowed []string
		switch sc.Type {
		case "repository":
			allowed = a.Allowed(ctx, user, sc.Name)
		case "registry":
			if sc.Name == "catalog" {
				allowed = []string{"*"}
			}
		}
		acc := Access{Type: sc.Type, Name: sc.Name, Actions: []string{}}
		for _, act := range sc.Actions {
			if act == "*" && sc.Type == "repository" {
				acc.Actions = append(acc.Actions, allowed...)
				continue
			}
			if slices.Contains(allowed, act) && !slices.Contains(acc.Actions, act) {
				acc.Actions = append(acc.Actions, act)
			}
		}
		out = append(out, acc)
	}
	return out
}

// Issue signs a token for user with the given access.
func (a *Authority) Issue(user string, access []Access) (string, time.Time, error) {
	now := time.Now()
	var jti [16]byte
	rand.Read(jti[:])
	exp := now.Add(a.TTL)
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    a.Issuer,
			Subject:   user,
			Audience:  jwt.ClaimStrings{a.Service},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now.Add(-10 * time.Second)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        hex.EncodeToString(jti[:]),
		},
		Access: access,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	t.Header["kid"] = a.kid
	s, err := t.SignedString(a.key)
	if err != nil {
		return "", time.Time{}, errdefs.System("sign token for %q: %v", user, err)
	}
	return s, now, nil
}

// Verify checks a token's signature, issuer, audience and lifetime.
func (a *Authority) Verify(token string) (*Claims, error) {
	c := &Claims{}
	_, err := jwt.ParseWithClaims(token, c, func(t *jwt.Token) (any, error) {
		return &a.key.PublicKey, nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuer(a.Issuer),
		jwt.WithAudience(a.Service),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(30*time.Second),
	)
	if err != nil {
		return nil, errdefs.Unauthorized("invalid token: %v", err)
	}
	return c, nil
}
