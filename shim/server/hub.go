package server

import (
	"errors"
	"io"
	"sync"

	"github.com/berth-dev/berth/shim/internal/proto"
)

// maxQueued bounds what one attached client may lag behind: past it the client is dropped, so a slow reader
// never blocks the container's output (the log file still gets every byte).
const maxQueued = 2 << 20

var errDropped = errors.New("attach client dropped: it fell more than 2 MiB behind the output")

// hub fans the container's output out to the attached clients. Each one gets everything published after it
// was added, in order, followed by an end frame once the output is over.
type hub struct {
	mu    sync.Mutex
	subs  map[*sub]struct{}
	ended bool
}

// sub is one attached client's queue of encoded frames.
type sub struct {
	want    [3]bool // by stream: [proto.StreamStdout], [proto.StreamStderr]
	mu      sync.Mutex
	buf     []byte
	spare   []byte
	ended   bool
	dropped bool
	wake    chan struct{}
}

func newHub() *hub { return &hub{subs: make(map[*sub]struct{})} }

// add registers a client. Once add returns, the client will see all output published afterwards.
func (h *hub) add(stdout, stderr bool) *sub {
	s := &sub{wake: make(chan struct{}, 1)}
	s.want[proto.StreamStdout] = stdout
	s.want[proto.StreamStderr] = stderr
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended {
		s.ended = true
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

func (h *hub) remove(s *sub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// publish queues p for every client that wants stream, dropping those that fell too far behind.
func (h *hub) publish(stream byte, p []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if !s.want[stream] {
			continue
		}
		if !s.push(stream, p) {
			delete(h.subs, s)
		}
	}
}

// end tells every client that no more output will come.
func (h *hub) end() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended = true
	for s := range h.subs {
		s.mu.Lock()
		s.ended = true
		s.mu.Unlock()
		s.notify()
		delete(h.subs, s)
	}
}

func (s *sub) push(stream byte, p []byte) bool {
	s.mu.Lock()
	if len(s.buf)+len(p) > maxQueued {
		s.dropped = true
		s.buf = nil
		s.mu.Unlock()
		s.notify()
		return false
	}
	s.buf = proto.AppendFrame(s.buf, stream, p)
	s.mu.Unlock()
	s.notify()
	return true
}

func (s *sub) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// deliver writes the queued frames to w until the output is over (then writes the end frame and returns nil)
// or the client is dropped or gone.
func (s *sub) deliver(w io.Writer) error {
	for {
		s.mu.Lock()
		for len(s.buf) == 0 && !s.ended && !s.dropped {
			s.mu.Unlock()
			<-s.wake
			s.mu.Lock()
		}
		if s.dropped {
			s.mu.Unlock()
			return errDropped
		}
		out := s.buf
		s.buf, s.spare = s.spare[:0], nil
		ended := s.ended
		s.mu.Unlock()

		if len(out) > 0 {
			if _, err := w.Write(out); err != nil {
				return err
			}
			if cap(out) <= 64<<10 { // keep a small buffer for the next round, let a burst's go
				s.mu.Lock()
				s.spare = out[:0]
				s.mu.Unlock()
			}
			continue
		}
		if ended {
			_, err := w.Write(proto.AppendFrame(nil, proto.StreamEnd, nil))
			return err
		}
	}
}
