package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"golang.org/x/term"
)

// DefaultDetachKeys is docker's detach sequence.
const DefaultDetachKeys = "ctrl-p,ctrl-q"

// errDetached says the user typed the detach sequence.
var errDetached = errors.New("read escape sequence")

// streamOptions says which local streams a hijacked connection is joined to.
type streamOptions struct {
	tty        bool
	in         io.Reader // nil: no stdin
	out        io.Writer
	err        io.Writer
	detachKeys string
}

// streamHijacked joins the hijacked connection to the local streams: output demultiplexed
// (raw with a TTY), stdin copied and half-closed at EOF, the terminal raw while a TTY is attached.
// It returns when the output ends, or errDetached when the user detaches.
func streamHijacked(ctx context.Context, resp client.HijackedResponse, o streamOptions) error {
	if o.tty && o.in != nil {
		if fd, ok := terminalFd(o.in); ok {
			if st, err := term.MakeRaw(fd); err == nil {
				defer func() { _ = term.Restore(fd, st) }()
			}
		}
	}
	outDone := make(chan error, 1)
	go func() {
		var err error
		if o.tty {
			_, err = io.Copy(o.out, resp.Reader)
		} else {
			_, err = stdcopy.StdCopy(o.out, o.err, resp.Reader)
		}
		outDone <- err
	}()
	inDone := make(chan error, 1)
	if o.in != nil {
		go func() {
			in := o.in
			if o.tty {
				keys, err := parseDetachKeys(o.detachKeys)
				if err == nil && len(keys) > 0 {
					in = &escapeProxy{r: in, keys: keys}
				}
			}
			_, err := io.Copy(resp.Conn, in)
			if errors.Is(err, errDetached) {
				inDone <- err
				return
			}
			// half-close: the process sees EOF on stdin and output keeps coming
			_ = resp.CloseWrite()
			inDone <- nil
		}()
	}
	select {
	case err := <-outDone:
		return err
	case err := <-inDone:
		if err != nil {
			return err
		}
		select {
		case err := <-outDone:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// parseDetachKeys turns "ctrl-p,ctrl-q" into bytes.
func parseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		s = DefaultDetachKeys
	}
	var out []byte
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		switch {
		case len(k) == 1:
			out = append(out, k[0])
		case strings.HasPrefix(k, "ctrl-") && len(k) == 6:
			ch := k[5]
			switch {
			case ch >= 'a' && ch <= 'z':
				out = append(out, ch-'a'+1)
			case ch == '@':
				out = append(out, 0)
			case ch >= '[' && ch <= '_':
				out = append(out, ch-'['+27)
			default:
				return nil, fmt.Errorf("invalid detach key: %s", k)
			}
		default:
			return nil, fmt.Errorf("invalid detach key: %s", k)
		}
	}
	return out, nil
}

// escapeProxy passes input through until it sees the detach sequence, then fails with errDetached.
// Bytes that start the sequence but do not complete it are passed on late, as docker does.
type escapeProxy struct {
	r       io.Reader
	keys    []byte
	matched int
	pending []byte
}

func (e *escapeProxy) Read(p []byte) (int, error) {
	if len(e.pending) > 0 {
		n := copy(p, e.pending)
		e.pending = e.pending[n:]
		return n, nil
	}
	buf := make([]byte, len(p))
	n, err := e.r.Read(buf)
	out := p[:0]
	for i := 0; i < n; i++ {
		b := buf[i]
		if b == e.keys[e.matched] {
			e.matched++
			if e.matched == len(e.keys) {
				return len(out), errDetached
			}
			continue
		}
		if e.matched > 0 {
			out = append(out, e.keys[:e.matched]...)
			e.matched = 0
		}
		out = append(out, b)
	}
	if len(out) > len(p) {
		e.pending = append(e.pending, out[len(p):]...)
		out = out[:len(p)]
	}
	copy(p, out)
	return len(out), err
}

// monitorTTYSize resizes the container's (or exec's) TTY now and on every SIGWINCH until ctx ends.
func (c *CLI) monitorTTYSize(ctx context.Context, resize func(h, w uint) error) {
	fd, ok := terminalFd(c.out)
	if !ok {
		if fd, ok = terminalFd(c.in); !ok {
			return
		}
	}
	do := func() {
		w, h, err := term.GetSize(fd)
		if err == nil && h > 0 && w > 0 {
			_ = resize(uint(h), uint(w))
		}
	}
	do()
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				do()
			}
		}
	}()
}

// consoleSize is the local terminal's size as [height, width], zero when not a terminal.
func (c *CLI) consoleSize() (uint, uint) {
	fd, ok := terminalFd(c.out)
	if !ok {
		return 0, 0
	}
	w, h, err := term.GetSize(fd)
	if err != nil {
		return 0, 0
	}
	return uint(h), uint(w)
}

// forwardSignals sends the signals berth receives to the container (--sig-proxy) until the
// returned stop function is called; stop returns once forwarding has ended.
func (c *CLI) forwardSignals(ctx context.Context, api *client.Client, id string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan os.Signal, 16)
	done := make(chan struct{})
	signal.Notify(ch)
	go func() {
		defer close(done)
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-ch:
				sig, ok := s.(syscall.Signal)
				if !ok {
					continue
				}
				switch sig {
				case syscall.SIGCHLD, syscall.SIGPIPE, syscall.SIGURG, syscall.SIGWINCH:
					continue
				}
				name := signalName(sig)
				if name == "" {
					continue
				}
				if _, err := api.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: name}); err != nil && ctx.Err() == nil {
					fmt.Fprintf(c.err, "error sending signal: %v\n", err)
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// signalName is the signal's name without "SIG" ("INT"), as docker sends it.
func signalName(sig syscall.Signal) string {
	for name, s := range signalMap {
		if s == sig {
			return name
		}
	}
	return ""
}

var signalMap = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "BUS": syscall.SIGBUS, "CONT": syscall.SIGCONT,
	"FPE": syscall.SIGFPE, "HUP": syscall.SIGHUP, "ILL": syscall.SIGILL, "INT": syscall.SIGINT,
	"IO": syscall.SIGIO, "PROF": syscall.SIGPROF, "PWR": syscall.SIGPWR, "QUIT": syscall.SIGQUIT,
	"SEGV": syscall.SIGSEGV, "STKFLT": syscall.SIGSTKFLT, "SYS": syscall.SIGSYS, "TERM": syscall.SIGTERM,
	"TRAP": syscall.SIGTRAP, "TSTP": syscall.SIGTSTP, "TTIN": syscall.SIGTTIN, "TTOU": syscall.SIGTTOU,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "VTALRM": syscall.SIGVTALRM, "XCPU": syscall.SIGXCPU,
	"XFSZ": syscall.SIGXFSZ,
}
