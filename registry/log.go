package registry

import (
	"io"
	"net/http"
	"time"
)

// logWriter records the status and size of a response for the access log.
type logWriter struct {
	http.ResponseWriter
	status  int
	written int64
}

func (w *logWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	return n, err
}

// ReadFrom keeps sendfile available when a blob file is copied to the client.
func (w *logWriter) ReadFrom(src io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
	}
	w.written += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (rg *registry) logAccess(w *logWriter, r *http.Request, start time.Time) {
	if !rg.access {
		return
	}
	user, _ := r.Context().Value(identityKey).(string)
	rg.log.Info("access",
		"method", r.Method,
		"path", r.URL.Path,
		"status", w.status,
		"bytes", w.written,
		"duration_ms", float64(time.Since(start).Microseconds())/1000,
		"remote", r.RemoteAddr,
		"user", user,
		"user_agent", r.UserAgent(),
	)
}
