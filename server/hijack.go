package server

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/berth-dev/berth/errdefs"
)

const (
	rawStream         = "application/vnd.docker.raw-stream"
	multiplexedStream = "application/vnd.docker.multiplexed-stream"
)

// streamContentType picks the media type: multiplexed only without a TTY
// and from API 1.42 on (the bytes are framed without a TTY either way).
func streamContentType(version string, tty bool) string {
	if !tty && versionAtLeast(version, "1.42") {
		return multiplexedStream
	}
	return rawStream
}

// hijacked is a connection taken over from net/http for attach and exec.
type hijacked struct {
	conn net.Conn
	in   *bufio.Reader // may already hold stdin bytes read with the request
}

// hijack answers 101 UPGRADED when the client asked for an upgrade and
// 200 OK otherwise, then hands over the socket. Like dockerd, only the
// upgrade answer names the multiplexed type; a plain 200 always says
// raw-stream (the bytes are framed without a TTY either way).
func hijack(w http.ResponseWriter, r *http.Request, contentType string) (*hijacked, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, errdefs.System("connection cannot be hijacked")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, errdefs.System("hijack connection: %w", err)
	}
	var b strings.Builder
	if strings.EqualFold(r.Header.Get("Upgrade"), "tcp") || strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
		fmt.Fprintf(&b, "HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n", contentType)
	} else {
		fmt.Fprintf(&b, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n", rawStream)
	}
	h := http.Header{}
	setCommonHeaders(h)
	for k := range h {
		fmt.Fprintf(&b, "%s: %s\r\n", k, h.Get(k))
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		conn.Close()
		return nil, err
	}
	return &hijacked{conn: conn, in: brw.Reader}, nil
}

// stdin returns a reader over the client's input that ends at its half-close.
func (h *hijacked) stdin() io.Reader { return h.in }

func (h *hijacked) Close() error { return h.conn.Close() }

// streams returns writers for stdout and stderr: raw with a TTY (stderr is
// merged), stdcopy frames otherwise.
func (h *hijacked) streams(tty bool) (stdout, stderr io.Writer) {
	if tty {
		return h.conn, h.conn
	}
	return newFrameWriters(h.conn)
}

// frameWriter writes stdcopy frames: [stream,0,0,0,size uint32 BE] payload.
type frameWriter struct {
	w      io.Writer
	stream byte
	mu     *sync.Mutex
}

func (f *frameWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	buf := make([]byte, 8+len(p))
	buf[0] = f.stream
	binary.BigEndian.PutUint32(buf[4:], uint32(len(p)))
	copy(buf[8:], p)
	if _, err := f.w.Write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

func newFrameWriters(w io.Writer) (stdout, stderr io.Writer) {
	mu := &sync.Mutex{}
	return &frameWriter{w: w, stream: 1, mu: mu}, &frameWriter{w: w, stream: 2, mu: mu}
}
