package registry

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/registry/storage"
)

func (rg *registry) blob(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := storage.ParseDigest(rt.ref)
	if err != nil {
		writeError(w, r, err)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		info, err := rg.store.StatBlob(r.Context(), rt.repo, d)
		if err != nil {
			writeError(w, r, err)
			return
		}
		start, end, partial, err := parseRange(r.Header.Get("Range"), info.Size)
		if err != nil {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", info.Size))
			writeError(w, r, newError(http.StatusRequestedRangeNotSatisfiable, "RANGE_INVALID", err.Error()))
			return
		}
		h := w.Header()
		h.Set("Docker-Content-Digest", d.String())
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Accept-Ranges", "bytes")
		h.Set("ETag", `"`+d.String()+`"`)
		h.Set("Cache-Control", "max-age=31536000")
		n := end - start
		h.Set("Content-Length", itoa(n))
		status := http.StatusOK
		if partial {
			status = http.StatusPartialContent
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end-1, info.Size))
		}
		if r.Method == http.MethodHead || n == 0 {
			w.WriteHeader(status)
			return
		}
		rc, _, err := rg.store.OpenBlob(r.Context(), rt.repo, d, start)
		if err != nil {
			h.Del("Content-Length")
			h.Del("Content-Range")
			writeError(w, r, err)
			return
		}
		defer rc.Close()
		w.WriteHeader(status)
		// io.CopyN over an *os.File reaches the connection's ReadFrom: sendfile.
		io.CopyN(w, rc, n)
	case http.MethodDelete:
		if err := rg.store.DeleteBlob(r.Context(), rt.repo, d); err != nil {
			writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
	default:
		methodNotAllowed(w, r, "GET, HEAD, DELETE")
	}
}

// parseRange reads a single "bytes=" range against size and returns the
// half-open interval to send. No header means the whole blob.
func parseRange(h string, size int64) (start, end int64, partial bool, err error) {
	if h == "" {
		return 0, size, false, nil
	}
	spec, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, 0, false, fmt.Errorf("unsupported range %q", h)
	}
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, false, fmt.Errorf("malformed range %q", h)
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 || size == 0 {
			return 0, 0, false, fmt.Errorf("unsatisfiable range %q", h)
		}
		if n > size {
			n = size
		}
		return size - n, size, true, nil
	}
	s, err := strconv.ParseInt(first, 10, 64)
	if err != nil || s < 0 || s >= size {
		return 0, 0, false, fmt.Errorf("unsatisfiable range %q for %d bytes", h, size)
	}
	e := size - 1
	if last != "" {
		e, err = strconv.ParseInt(last, 10, 64)
		if err != nil || e < s {
			return 0, 0, false, fmt.Errorf("unsatisfiable range %q", h)
		}
		if e > size-1 {
			e = size - 1
		}
	}
	return s, e + 1, true, nil
}
