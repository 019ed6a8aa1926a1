package registry

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/berth-dev/berth/registry/storage"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func (rg *registry) manifest(w http.ResponseWriter, r *http.Request, rt route) {
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		m, err := rg.store.GetManifest(ctx, rt.repo, rt.ref)
		if err != nil {
			writeError(w, r, err)
			return
		}
		h := w.Header()
		h.Set("Content-Type", m.MediaType)
		h.Set("Content-Length", itoa(int64(len(m.Body))))
		h.Set("Docker-Content-Digest", m.Digest.String())
		h.Set("ETag", `"`+m.Digest.String()+`"`)
		if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, m.Digest.String()) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(m.Body)
		}
	case http.MethodPut:
		b, err := io.ReadAll(io.LimitReader(r.Body, storage.MaxManifestSize+1))
		if err != nil {
			writeError(w, r, fmt.Errorf("read manifest body: %v: %w", err, storage.ErrManifestInvalid))
			return
		}
		res, err := rg.store.PutManifest(ctx, rt.repo, rt.ref, r.Header.Get("Content-Type"), b, r.URL.Query()["tag"])
		if err != nil {
			writeError(w, r, err)
			return
		}
		h := w.Header()
		h.Set("Location", "/v2/"+rt.repo+"/manifests/"+res.Digest.String())
		h.Set("Docker-Content-Digest", res.Digest.String())
		h.Set("Content-Length", "0")
		if res.Subject != "" {
			h.Set("OCI-Subject", res.Subject.String())
		}
		if len(r.URL.Query()["tag"]) > 0 {
			for _, t := range res.Tags {
				h.Add("OCI-Tag", t)
			}
		}
		w.WriteHeader(http.StatusCreated)
	case http.MethodDelete:
		if err := rg.store.DeleteManifest(ctx, rt.repo, rt.ref); err != nil {
			writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
	default:
		methodNotAllowed(w, r, "GET, HEAD, PUT, DELETE")
	}
}

func (rg *registry) referrers(w http.ResponseWriter, r *http.Request, rt route) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, "GET, HEAD")
		return
	}
	d, err := storage.ParseDigest(rt.ref)
	if err != nil {
		writeError(w, r, err)
		return
	}
	at := r.URL.Query().Get("artifactType")
	descs, err := rg.store.Referrers(r.Context(), rt.repo, d, at)
	if err != nil {
		writeError(w, r, err)
		return
	}
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: descs}
	idx.SchemaVersion = 2
	b, _ := json.Marshal(idx)
	h := w.Header()
	h.Set("Content-Type", v1.MediaTypeImageIndex)
	h.Set("Content-Length", itoa(int64(len(b))))
	if at != "" {
		h.Set("OCI-Filters-Applied", "artifactType")
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(b)
	}
}
