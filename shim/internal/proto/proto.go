// Package proto is the wire format between package shim (the daemon's client) and the berth-shim process.
//
// Every request is one connection to <state-dir>/shim.sock. The client writes one JSON Request line; the shim
// answers one JSON Response line. For OpAttach the connection then carries, shim to client, a sequence of
// frames (Frame), the last one of kind StreamEnd; client to shim, the raw stdin bytes, ended by a half-close.
package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Files in the state directory.
const (
	SocketFile  = "shim.sock"    // the shim's control socket (0600)
	PidFile     = "shim.pid"     // the shim's own pid
	InitPidFile = "init.pid"     // the container init's pid, written by the runtime (--pid-file)
	ExitFile    = "exit.json"    // the init's exit, written atomically once it is reaped
	LogFile     = "shim.log"     // the shim's diagnostics (also its stderr)
	RuntimeLog  = "runtime.log"  // the runtime's --log (json), read for error messages
	ConsoleSock = "console.sock" // --console-socket while the runtime creates a tty container
)

// Ops a Request can carry.
const (
	OpInfo   = "info"   // Response.Pid, Response.Terminal
	OpStart  = "start"  // runtime start
	OpAttach = "attach" // Response line, then frames
	OpResize = "resize" // Height, Width
	OpWait   = "wait"   // answered when the init has exited: Response.Exit
)

// Request is the first line a client writes.
type Request struct {
	Op     string `json:"op"`
	Stdin  bool   `json:"stdin,omitempty"`
	Stdout bool   `json:"stdout,omitempty"`
	Stderr bool   `json:"stderr,omitempty"`
	Height uint16 `json:"height,omitempty"`
	Width  uint16 `json:"width,omitempty"`
}

// Response is the line the shim answers. Error is set when the request failed; Code classifies it.
type Response struct {
	Error    string `json:"error,omitempty"`
	Code     string `json:"code,omitempty"` // one of the Code* constants
	Pid      int    `json:"pid,omitempty"`
	Terminal bool   `json:"terminal,omitempty"`
	Exit     *Exit  `json:"exit,omitempty"`
}

// Error classes a Response can carry; the client maps them onto errdefs.
const (
	CodeInvalid  = "invalid"
	CodeConflict = "conflict"
	CodeSystem   = "system"
)

// Exit is the content of exit.json (the same shape as shim.Exit).
type Exit struct {
	Code     int       `json:"code"`
	ExitedAt time.Time `json:"exited_at"`
	Error    string    `json:"error,omitempty"`
}

// Stream kinds of a frame.
const (
	StreamStdout byte = 1
	StreamStderr byte = 2
	StreamEnd    byte = 0xff // output is over; no payload
)

// MaxFrame bounds a frame's payload so a broken peer cannot make the reader allocate without limit.
const MaxFrame = 1 << 20

// AppendFrame appends a frame header and payload to b: 1 byte stream, 3 zero bytes, 4 bytes big-endian length
// (the layout of Docker's multiplexed stream, so it reads familiar in a hex dump).
func AppendFrame(b []byte, stream byte, p []byte) []byte {
	var h [8]byte
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(p)))
	b = append(b, h[:]...)
	return append(b, p...)
}

// ReadFrame reads one frame into buf (grown as needed) and returns its stream and payload.
func ReadFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, buf, err
	}
	n := binary.BigEndian.Uint32(h[4:])
	if n > MaxFrame {
		return 0, buf, fmt.Errorf("frame of %d bytes exceeds the limit of %d", n, MaxFrame)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, buf, err
	}
	return h[0], buf, nil
}
