// Package proto is the wire format between package shim (the daemon's client) and the berth-shim process. It
// uses only the standard library's smallest packages, because the shim imports it and must stay small.
//
// Every request is one connection to <state-dir>/shim.sock. The client writes one request line, words
// separated by spaces:
//
//	info                          -> ok pid=<init pid> terminal=<0|1> exited=<0|1>
//	start                         -> ok
//	resize <height> <width>       -> ok
//	wait                          -> ok <exit.json content, one line>   (sent when the init has exited)
//	attach [stdin] [stdout] [stderr] -> ok, then frames
//
// A failed request is answered "error <code> <message>" with code one of the Code* constants. After an attach
// answer the shim sends frames (AppendFrame), the last of kind StreamEnd; the client sends the raw stdin bytes
// and half-closes the connection at stdin's EOF.
package proto

import (
	"encoding/binary"
	"errors"
	"io"
	"strconv"
)

// Files in the state directory.
const (
	SocketFile  = "shim.sock"    // the shim's control socket (0600)
	PidFile     = "shim.pid"     // the shim's own pid
	InitPidFile = "init.pid"     // the container init's pid, written by the runtime (--pid-file)
	ExitFile    = "exit.json"    // the init's exit, written atomically once it is reaped
	LogFile     = "shim.log"     // the shim's diagnostics (also its stderr)
	LockFile    = "shim.lock"    // flock held by the shim for its whole life; Start takes it first
	RuntimeLog  = "runtime.log"  // the runtime's --log (json), read for error messages
	ConsoleSock = "console.sock" // --console-socket while the runtime creates a tty container
)

// Ops, the first word of a request.
const (
	OpInfo   = "info"
	OpStart  = "start"
	OpAttach = "attach"
	OpResize = "resize"
	OpWait   = "wait"
)

// MaxLine bounds a request or response line.
const MaxLine = 64 << 10

// Error classes of an "error" answer; the client maps them onto errdefs.
const (
	CodeInvalid  = "invalid"
	CodeConflict = "conflict"
	CodeSystem   = "system"
)

// Stream kinds of a frame.
const (
	StreamStdout byte = 1
	StreamStderr byte = 2
	StreamEnd    byte = 0xff // output is over; no payload
)

// MaxFrame bounds a frame's payload so a broken peer cannot make the reader allocate without limit.
const MaxFrame = 1 << 20

// AppendFrame appends a frame: 1 byte stream, 3 zero bytes, 4 bytes big-endian length, payload (the layout of
// Docker's multiplexed stream, so it reads familiar in a hex dump).
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
		return 0, buf, errors.New("frame of " + strconv.Itoa(int(n)) + " bytes exceeds the limit")
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
