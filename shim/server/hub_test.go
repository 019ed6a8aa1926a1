package server

import (
	"bytes"
	"errors"
	"testing"

	"github.com/berth-dev/berth/shim/internal/proto"
)

// frames decodes everything a client received.
func frames(t *testing.T, b []byte) (stdout, stderr string, ended bool) {
	t.Helper()
	r := bytes.NewReader(b)
	var buf []byte
	for r.Len() > 0 {
		stream, p, err := proto.ReadFrame(r, buf)
		if err != nil {
			t.Fatalf("bad frame: %v", err)
		}
		switch stream {
		case proto.StreamStdout:
			stdout += string(p)
		case proto.StreamStderr:
			stderr += string(p)
		case proto.StreamEnd:
			if r.Len() != 0 {
				t.Fatal("data after the end frame")
			}
			ended = true
		}
	}
	return stdout, stderr, ended
}

func TestHub(t *testing.T) {
	tests := []struct {
		name             string
		stdout, stderr   bool
		wantOut, wantErr string
	}{
		{"both", true, true, "early late", "err"},
		{"stdout only", true, false, "early late", ""},
		{"stderr only", false, true, "", "err"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHub()
			h.publish(proto.StreamStdout, []byte("before ")) // nobody attached: not seen
			s := h.add(tt.stdout, tt.stderr)
			h.publish(proto.StreamStdout, []byte("early "))
			h.publish(proto.StreamStderr, []byte("err"))
			h.publish(proto.StreamStdout, []byte("late"))
			h.end()
			var out bytes.Buffer
			if err := s.deliver(&out); err != nil {
				t.Fatal(err)
			}
			o, e, ended := frames(t, out.Bytes())
			if o != tt.wantOut || e != tt.wantErr || !ended {
				t.Errorf("got stdout %q stderr %q ended %v, want %q %q true", o, e, ended, tt.wantOut, tt.wantErr)
			}
		})
	}
}

func TestHubAddAfterEnd(t *testing.T) {
	h := newHub()
	h.end()
	var out bytes.Buffer
	if err := h.add(true, true).deliver(&out); err != nil {
		t.Fatal(err)
	}
	if o, e, ended := frames(t, out.Bytes()); o != "" || e != "" || !ended {
		t.Errorf("late client got %q %q ended=%v", o, e, ended)
	}
}

func TestHubDropsSlowClient(t *testing.T) {
	h := newHub()
	slow := h.add(true, false)
	fast := h.add(true, false)
	chunk := bytes.Repeat([]byte("z"), 64<<10)
	var fastOut bytes.Buffer
	for i := 0; i < maxQueued/len(chunk)+2; i++ {
		h.publish(proto.StreamStdout, chunk) // never blocks, whatever the clients do
		fast.mu.Lock()
		fastOut.Write(fast.buf) // the fast client keeps up
		fast.buf = fast.buf[:0]
		fast.mu.Unlock()
	}
	h.end()
	if err := slow.deliver(&bytes.Buffer{}); !errors.Is(err, errDropped) {
		t.Errorf("slow client: %v, want dropped", err)
	}
	if err := fast.deliver(&fastOut); err != nil {
		t.Errorf("fast client: %v", err)
	}
	if o, _, ended := frames(t, fastOut.Bytes()); len(o) != (maxQueued/len(chunk)+2)*len(chunk) || !ended {
		t.Errorf("fast client got %d bytes, ended=%v", len(o), ended)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("gone") }

func TestDeliverWriteError(t *testing.T) {
	h := newHub()
	s := h.add(true, true)
	h.publish(proto.StreamStdout, []byte("x"))
	if err := s.deliver(failWriter{}); err == nil {
		t.Error("deliver to a broken writer succeeded")
	}
}

func TestFrames(t *testing.T) {
	var b []byte
	b = proto.AppendFrame(b, proto.StreamStdout, []byte("hello"))
	b = proto.AppendFrame(b, proto.StreamStderr, nil)
	r := bytes.NewReader(b)
	for _, want := range []struct {
		stream byte
		p      string
	}{{proto.StreamStdout, "hello"}, {proto.StreamStderr, ""}} {
		stream, p, err := proto.ReadFrame(r, nil)
		if err != nil || stream != want.stream || string(p) != want.p {
			t.Errorf("ReadFrame = %d %q %v, want %d %q", stream, p, err, want.stream, want.p)
		}
	}
	huge := []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
	if _, _, err := proto.ReadFrame(bytes.NewReader(huge), nil); err == nil {
		t.Error("a 4 GiB frame was accepted")
	}
	if _, _, err := proto.ReadFrame(bytes.NewReader(b[:10]), nil); err == nil {
		t.Error("a truncated frame was accepted")
	}
}
