package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/builder"
	"github.com/berth-dev/berth/errdefs"
	"github.com/moby/moby/api/types/registry"
	"github.com/opencontainers/go-digest"
)

func (s *Server) buildRoutes() []route {
	return []route{
		{http.MethodPost, "/build", s.postBuild},
		{http.MethodPost, "/build/prune", s.postBuildPrune},
	}
}

// localDirPrefix marks berth's local-context extension of the remote
// parameter: remote=dir:/abs/path builds from a directory on the daemon's
// host (only over the unix socket, whose clients are root anyway).
const localDirPrefix = "dir:"

func (s *Server) postBuild(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	q := r.URL.Query()
	if q.Get("version") == "2" {
		return errdefs.NotImplemented("BuildKit builds are not supported by berthd: use the classic builder (DOCKER_BUILDKIT=0)")
	}
	o := builder.Options{
		Dockerfile:  q.Get("dockerfile"),
		Tags:        q["t"],
		Target:      q.Get("target"),
		NoCache:     boolValue(r, "nocache"),
		Pull:        boolValue(r, "pull"),
		Quiet:       boolValue(r, "q"),
		NetworkMode: q.Get("networkmode"),
		Platform:    q.Get("platform"),
	}
	for name, dst := range map[string]any{"buildargs": &o.BuildArgs, "labels": &o.Labels, "cachefrom": &o.CacheFrom} {
		if v := q.Get(name); v != "" {
			if err := json.Unmarshal([]byte(v), dst); err != nil {
				return errdefs.InvalidArgument("invalid %s: %v", name, err)
			}
		}
	}
	o.Auth = buildAuth(r.Header.Get("X-Registry-Config"))
	src := builder.Source{Tar: r.Body}
	if remote := q.Get("remote"); remote != "" {
		dir, ok := strings.CutPrefix(remote, localDirPrefix)
		if !ok {
			return errdefs.InvalidArgument("remote build contexts (%s) are not supported: berthd builds have no network", remote)
		}
		if _, unix := r.Context().Value(http.LocalAddrContextKey).(*net.UnixAddr); !unix {
			return errdefs.Forbidden("local directory contexts are only accepted over the unix socket")
		}
		if !filepath.IsAbs(dir) {
			return errdefs.InvalidArgument("local context directory must be absolute: %s", dir)
		}
		src = builder.Source{Dir: dir}
	}
	b, err := s.daemon.Builder()
	if err != nil {
		return err
	}
	ps := newProgressStream(w)
	_, err = b.Build(ctx, src, o, builder.Output{
		Stream: streamWriter{ps},
		Aux: func(id digest.Digest) {
			ps.Write(Message{ID: "moby.image.id", Aux: map[string]string{"ID": id.String()}})
		},
	})
	if err == nil {
		return nil
	}
	if !ps.fw.Written() {
		return err
	}
	detail := &ErrorDetail{Message: err.Error()}
	var se *builder.StepError
	if errors.As(err, &se) {
		detail.Code = se.Code
	}
	ps.Write(Message{ErrorDetail: detail, Error: err.Error()})
	return nil
}

// streamWriter turns builder output into {"stream": ...} messages.
type streamWriter struct{ ps *progressStream }

func (sw streamWriter) Write(p []byte) (int, error) {
	if err := sw.ps.Write(Message{Stream: string(p)}); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *Server) postBuildPrune(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	b, err := s.daemon.Builder()
	if err != nil {
		return err
	}
	res, err := b.Prune(ctx)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"CachesDeleted": res.CachesDeleted, "SpaceReclaimed": 0})
}

var _ io.Writer = streamWriter{}

// buildAuth decodes X-Registry-Config: base64url JSON of registry ->
// AuthConfig (padded or not; an unreadable header means no credentials).
func buildAuth(h string) map[string]builder.RegistryAuth {
	h = strings.TrimSpace(h)
	if h == "" {
		return nil
	}
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		raw, err := enc.DecodeString(h)
		if err != nil {
			continue
		}
		var m map[string]registry.AuthConfig
		if json.Unmarshal(raw, &m) != nil {
			return nil
		}
		out := map[string]builder.RegistryAuth{}
		for k, ac := range m {
			out[k] = builder.RegistryAuth{Username: ac.Username, Password: ac.Password, IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}
		}
		return out
	}
	return nil
}
