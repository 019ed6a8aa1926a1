package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/berth-dev/berth/errdefs"
)

// writeJSON writes v with exactly "application/json" (a charset suffix makes
// the docker CLI print raw JSON instead of the message).
func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// headerWritten tracks whether a streaming handler already sent its status,
// so a late error is not written as a second header.
type headerWritten interface{ Written() bool }

func writeError(w http.ResponseWriter, err error) {
	if hw, ok := w.(headerWritten); ok && hw.Written() {
		return
	}
	status := errdefs.HTTPStatus(err)
	if status == http.StatusNotModified {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, map[string]string{"message": err.Error()})
}

// boolValue reads a query boolean: "", "0", "false", "no" and "none" are false.
func boolValue(r *http.Request, name string) bool {
	v := strings.ToLower(strings.TrimSpace(r.URL.Query().Get(name)))
	return !(v == "" || v == "0" || v == "false" || v == "no" || v == "none")
}

// intValue reads a query integer with a default; bad values are 400.
func intValue(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, errdefs.InvalidArgument("invalid value for %s: %q", name, v)
	}
	return n, nil
}

// terminalSize reads resize's h and w (0 to 65535).
func terminalSize(r *http.Request) (height, width uint16, err error) {
	h, err := intValue(r, "h", 0)
	if err != nil {
		return 0, 0, err
	}
	w, err := intValue(r, "w", 0)
	if err != nil {
		return 0, 0, err
	}
	if h < 0 || w < 0 || h > 65535 || w > 65535 {
		return 0, 0, errdefs.InvalidArgument("invalid terminal size %dx%d", h, w)
	}
	return uint16(h), uint16(w), nil
}

// filters is the decoded "filters" parameter: key -> values.
type filters map[string][]string

// parseFilters accepts both shapes clients send:
// {"label":{"a=b":true}} and {"label":["a=b"]}.
func parseFilters(r *http.Request) (filters, error) {
	raw := r.URL.Query().Get("filters")
	out := filters{}
	if raw == "" {
		return out, nil
	}
	var generic map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &generic); err != nil {
		return nil, errdefs.InvalidArgument("invalid filter: %v", err)
	}
	for k, v := range generic {
		var list []string
		if err := json.Unmarshal(v, &list); err == nil {
			out[k] = list
			continue
		}
		var set map[string]bool
		if err := json.Unmarshal(v, &set); err != nil {
			return nil, errdefs.InvalidArgument("invalid filter %q", k)
		}
		for val, on := range set {
			if on {
				out[k] = append(out[k], val)
			}
		}
	}
	return out, nil
}

// decodeBody decodes a JSON body; an empty body leaves v untouched.
func decodeBody(r *http.Request, v any) error {
	if r.Body == nil {
		return nil
	}
	err := json.NewDecoder(r.Body).Decode(v)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return errdefs.InvalidArgument("invalid JSON body: %v", err)
	}
	return nil
}

// flushWriter flushes after every write so streams reach clients at once,
// and remembers that the header went out.
type flushWriter struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	f       http.Flusher
	written bool
}

func newFlushWriter(w http.ResponseWriter) *flushWriter {
	f, _ := w.(http.Flusher)
	return &flushWriter{w: w, f: f}
}

func (fw *flushWriter) Header() http.Header { return fw.w.Header() }

func (fw *flushWriter) WriteHeader(code int) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.written = true
	fw.w.WriteHeader(code)
	if fw.f != nil {
		fw.f.Flush()
	}
}

func (fw *flushWriter) Write(p []byte) (int, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.written = true
	n, err := fw.w.Write(p)
	if fw.f != nil {
		fw.f.Flush()
	}
	return n, err
}

func (fw *flushWriter) Written() bool {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.written
}

// progressStream writes Docker's JSON message stream (pull, push, import,
// load, build): one object per line, flushed each.
type progressStream struct {
	fw  *flushWriter
	enc *json.Encoder
}

// ProgressDetail and Message mirror docker's jsonmessage wire format.
type ProgressDetail struct {
	Current int64 `json:"current,omitempty"`
	Total   int64 `json:"total,omitempty"`
}

type ErrorDetail struct {
	Code    int    `json:"code,omitempty"`
	Message string `json:"message"`
}

type Message struct {
	Stream         string          `json:"stream,omitempty"`
	Status         string          `json:"status,omitempty"`
	ID             string          `json:"id,omitempty"`
	ProgressDetail *ProgressDetail `json:"progressDetail,omitempty"`
	Progress       string          `json:"progress,omitempty"`
	ErrorDetail    *ErrorDetail    `json:"errorDetail,omitempty"`
	Error          string          `json:"error,omitempty"`
	Aux            any             `json:"aux,omitempty"`
}

func newProgressStream(w http.ResponseWriter) *progressStream {
	fw := newFlushWriter(w)
	return &progressStream{fw: fw, enc: json.NewEncoder(fw)}
}

// Write sends one message; the first one sends the 200 header.
func (p *progressStream) Write(m Message) error {
	if !p.fw.Written() {
		p.fw.Header().Set("Content-Type", "application/json")
		p.fw.WriteHeader(http.StatusOK)
	}
	return p.enc.Encode(m)
}

// Error sends a failure in both the new and the old field.
func (p *progressStream) Error(err error) error {
	return p.Write(Message{ErrorDetail: &ErrorDetail{Message: err.Error()}, Error: err.Error()})
}
