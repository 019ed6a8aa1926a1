package registry

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/registry/storage"
	digest "github.com/opencontainers/go-digest"
)

func uploadLocation(repo, id string) string { return "/v2/" + repo + "/blobs/uploads/" + id }

func blobLocation(repo string, d digest.Digest) string { return "/v2/" + repo + "/blobs/" + d.String() }

// uploadAccepted answers a request that leaves an upload open.
func uploadAccepted(w http.ResponseWriter, repo, id string, size int64) {
	h := w.Header()
	h.Set("Location", uploadLocation(repo, id))
	h.Set("Docker-Upload-UUID", id)
	end := size - 1
	if end < 0 {
		end = 0
	}
	h.Set("Range", fmt.Sprintf("0-%d", end))
	h.Set("Content-Length", "0")
}

func blobCreated(w http.ResponseWriter, repo string, d digest.Digest) {
	h := w.Header()
	h.Set("Location", blobLocation(repo, d))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// body returns the request body, or nil when the request carries none.
func body(r *http.Request) io.Reader {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	return r.Body
}

// chunkStart reads Content-Range ("first-last", optionally "bytes "
// prefixed) and checks it against Content-Length; -1 means none was sent.
func chunkStart(r *http.Request) (int64, error) {
	cr := strings.TrimSpace(r.Header.Get("Content-Range"))
	if cr == "" {
		return -1, nil
	}
	cr = strings.TrimPrefix(cr, "bytes ")
	cr, _, _ = strings.Cut(cr, "/")
	a, b, ok := strings.Cut(cr, "-")
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || first < 0 || last < first {
		return 0, fmt.Errorf("Content-Range %q: %w", r.Header.Get("Content-Range"), storage.ErrRangeInvalid)
	}
	if r.ContentLength >= 0 && r.ContentLength != last-first+1 {
		return 0, fmt.Errorf("Content-Range %q covers %d bytes, Content-Length is %d: %w", cr, last-first+1, r.ContentLength, storage.ErrRangeInvalid)
	}
	return first, nil
}

// uploadStart handles POST /v2/<name>/blobs/uploads/: mounts, monolithic
// uploads, and opening an upload session.
func (rg *registry) uploadStart(w http.ResponseWriter, r *http.Request, rt route) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r, "POST")
		return
	}
	ctx := r.Context()
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, err := storage.ParseDigest(m)
		if err != nil {
			writeError(w, r, err)
			return
		}
		from := q.Get("from")
		ok := true
		if from != "" {
			if storage.ValidateName(from) != nil || !rg.mayPull(r, from) {
				ok = false
			}
		}
		if ok {
			if _, err := rg.store.MountBlob(ctx, rt.repo, from, d, rg.pullFilter(r)); err == nil {
				blobCreated(w, rt.repo, d)
				return
			}
		}
		// Fall through: the spec says to answer a failed mount with an upload.
	}
	if dg := q.Get("digest"); dg != "" {
		d, err := storage.ParseDigest(dg)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if _, err := rg.store.PutBlob(ctx, rt.repo, d, bodyOrEmpty(r)); err != nil {
			writeError(w, r, err)
			return
		}
		blobCreated(w, rt.repo, d)
		return
	}
	id, err := rg.store.StartUpload(ctx, rt.repo)
	if err != nil {
		writeError(w, r, err)
		return
	}
	uploadAccepted(w, rt.repo, id, 0)
	w.WriteHeader(http.StatusAccepted)
}

func bodyOrEmpty(r *http.Request) io.Reader {
	if b := body(r); b != nil {
		return b
	}
	return strings.NewReader("")
}

// upload handles an open upload session: GET (status), PATCH (append),
// PUT (commit) and DELETE (cancel).
func (rg *registry) upload(w http.ResponseWriter, r *http.Request, rt route) {
	ctx := r.Context()
	id := rt.ref
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		size, err := rg.store.UploadSize(ctx, rt.repo, id)
		if err != nil {
			writeError(w, r, err)
			return
		}
		uploadAccepted(w, rt.repo, id, size)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPatch:
		start, err := chunkStart(r)
		if err != nil {
			rg.rangeError(w, r, rt, err)
			return
		}
		size, err := rg.store.AppendUpload(ctx, rt.repo, id, start, body(r))
		if err != nil {
			rg.rangeError(w, r, rt, err)
			return
		}
		uploadAccepted(w, rt.repo, id, size)
		w.WriteHeader(http.StatusAccepted)
	case http.MethodPut:
		dg := r.URL.Query().Get("digest")
		if dg == "" {
			writeError(w, r, fmt.Errorf("PUT of upload %s without a digest: %w", id, storage.ErrDigestInvalid))
			return
		}
		d, err := storage.ParseDigest(dg)
		if err != nil {
			writeError(w, r, err)
			return
		}
		start, err := chunkStart(r)
		if err != nil {
			rg.rangeError(w, r, rt, err)
			return
		}
		if _, err := rg.store.CommitUpload(ctx, rt.repo, id, d, start, body(r)); err != nil {
			rg.rangeError(w, r, rt, err)
			return
		}
		blobCreated(w, rt.repo, d)
	case http.MethodDelete:
		if err := rg.store.CancelUpload(ctx, rt.repo, id); err != nil {
			writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusNoContent)
	default:
		methodNotAllowed(w, r, "GET, PATCH, PUT, DELETE")
	}
}

// rangeError answers an out-of-order chunk with the upload's real state so
// the client can resume from it.
func (rg *registry) rangeError(w http.ResponseWriter, r *http.Request, rt route, err error) {
	if toError(err).Status == http.StatusRequestedRangeNotSatisfiable {
		if size, serr := rg.store.UploadSize(r.Context(), rt.repo, rt.ref); serr == nil {
			uploadAccepted(w, rt.repo, rt.ref, size)
		}
	}
	writeError(w, r, err)
}
