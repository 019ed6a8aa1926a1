package registry

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/registry/storage"
	specs "github.com/opencontainers/distribution-spec/specs-go/v1"
)

// Error is the one error type the registry renders; it becomes the OCI
// error body {"errors":[{"code","message","detail"}]}.
type Error struct {
	Status  int
	Code    string
	Message string
	Detail  string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// toError maps any error to the OCI code and HTTP status a client expects.
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	msg := err.Error()
	switch {
	case errors.Is(err, storage.ErrBlobUnknown):
		return newError(http.StatusNotFound, "BLOB_UNKNOWN", msg)
	case errors.Is(err, storage.ErrBlobUploadUnknown):
		return newError(http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", msg)
	case errors.Is(err, storage.ErrBlobUploadInvalid):
		return newError(http.StatusBadRequest, "BLOB_UPLOAD_INVALID", msg)
	case errors.Is(err, storage.ErrRangeInvalid):
		return newError(http.StatusRequestedRangeNotSatisfiable, "RANGE_INVALID", msg)
	case errors.Is(err, storage.ErrDigestInvalid):
		return newError(http.StatusBadRequest, "DIGEST_INVALID", msg)
	case errors.Is(err, storage.ErrManifestUnknown):
		return newError(http.StatusNotFound, "MANIFEST_UNKNOWN", msg)
	case errors.Is(err, storage.ErrManifestBlobUnknown):
		return newError(http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", msg)
	case errors.Is(err, storage.ErrManifestInvalid):
		return newError(http.StatusBadRequest, "MANIFEST_INVALID", msg)
	case errors.Is(err, storage.ErrTagInvalid):
		return newError(http.StatusBadRequest, "TAG_INVALID", msg)
	case errors.Is(err, storage.ErrNameInvalid):
		return newError(http.StatusBadRequest, "NAME_INVALID", msg)
	case errors.Is(err, storage.ErrNameUnknown):
		return newError(http.StatusNotFound, "NAME_UNKNOWN", msg)
	case errors.Is(err, storage.ErrSizeInvalid):
		return newError(http.StatusBadRequest, "SIZE_INVALID", msg)
	case errors.Is(err, storage.ErrTooLarge):
		return newError(http.StatusRequestEntityTooLarge, "SIZE_INVALID", msg)
	case errors.Is(err, storage.ErrUnsupported):
		return newError(http.StatusMethodNotAllowed, "UNSUPPORTED", msg)
	case errors.Is(err, errdefs.ErrUnauthorized):
		return newError(http.StatusUnauthorized, "UNAUTHORIZED", msg)
	case errors.Is(err, errdefs.ErrForbidden):
		return newError(http.StatusForbidden, "DENIED", msg)
	case errors.Is(err, errdefs.ErrNotFound):
		return newError(http.StatusNotFound, "NAME_UNKNOWN", msg)
	case errors.Is(err, errdefs.ErrInvalidArgument):
		return newError(http.StatusBadRequest, "UNSUPPORTED", msg)
	}
	return newError(http.StatusInternalServerError, "UNKNOWN", msg)
}

// writeError renders err as an OCI error response.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := toError(err)
	if e.Status == http.StatusInternalServerError {
		if l := loggerFrom(r); l != nil {
			l.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
	}
	b, _ := json.Marshal(specs.ErrorResponse{Errors: []specs.ErrorInfo{{Code: e.Code, Message: e.Message, Detail: e.Detail}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", itoa(int64(len(b))))
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}
