package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/moby/moby/client"
	"golang.org/x/term"

	"github.com/berth-dev/berth/version"
)

// DefaultHost is where berthd listens unless -H, BERTH_HOST or DOCKER_HOST say otherwise.
const DefaultHost = "unix:///run/berth/berth.sock"

// GlobalOptions are the flags before the command name.
type GlobalOptions struct {
	Host      string
	ConfigDir string
	Debug     bool
	LogLevel  string
}

// CLI carries the streams and the lazily built API client every command uses.
type CLI struct {
	in     io.Reader
	out    io.Writer
	err    io.Writer
	opts   GlobalOptions
	api    *client.Client
	config *ConfigFile
}

// New returns a CLI over the given streams.
func New(in io.Reader, out, errOut io.Writer) *CLI {
	return &CLI{in: in, out: out, err: errOut}
}

// In is standard input.
func (c *CLI) In() io.Reader { return c.in }

// Out is standard output.
func (c *CLI) Out() io.Writer { return c.out }

// Err is standard error.
func (c *CLI) Err() io.Writer { return c.err }

// Host is the daemon address in use.
func (c *CLI) Host() string {
	switch {
	case c.opts.Host != "":
		return c.opts.Host
	case os.Getenv("BERTH_HOST") != "":
		return os.Getenv("BERTH_HOST")
	case os.Getenv("DOCKER_HOST") != "":
		return os.Getenv("DOCKER_HOST")
	}
	return DefaultHost
}

// ConfigDir is --config, BERTH_CONFIG, or ~/.berth.
func (c *CLI) ConfigDir() string {
	if c.opts.ConfigDir != "" {
		return c.opts.ConfigDir
	}
	if d := os.Getenv("BERTH_CONFIG"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return home + "/.berth"
}

// Client returns the Engine API client, built on first use with version negotiation.
func (c *CLI) Client() (*client.Client, error) {
	if c.api != nil {
		return c.api, nil
	}
	opts := []client.Opt{
		client.WithHost(c.Host()),
		client.WithAPIVersionNegotiation(),
		client.WithUserAgent("Berth-Client/" + version.Version + " (linux)"),
	}
	if v := os.Getenv("DOCKER_API_VERSION"); v != "" {
		opts = append(opts, client.WithAPIVersion(v))
	}
	api, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot create a client for %s: %w", c.Host(), err)
	}
	c.api = api
	return api, nil
}

// terminalFd reports the file descriptor of s when it is a terminal.
func terminalFd(s any) (int, bool) {
	f, ok := s.(*os.File)
	if !ok {
		return -1, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// InIsTerminal reports whether stdin is a terminal.
func (c *CLI) InIsTerminal() bool { _, ok := terminalFd(c.in); return ok }

// OutIsTerminal reports whether stdout is a terminal.
func (c *CLI) OutIsTerminal() bool { _, ok := terminalFd(c.out); return ok }

// StatusError carries the exit status a command wants; Status, when set, is printed to stderr.
type StatusError struct {
	Status     string
	StatusCode int
	Cause      error
}

func (e StatusError) Error() string {
	if e.Status != "" {
		return e.Status
	}
	if e.Cause != nil {
		return e.Cause.Error()
	}
	return fmt.Sprintf("exit status %d", e.StatusCode)
}

// Unwrap exposes the cause.
func (e StatusError) Unwrap() error { return e.Cause }

// Run executes berth with args (without the program name) and returns the process exit status.
func Run(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) int {
	c := New(in, out, errOut)
	root := NewRootCommand(c)
	root.SetArgs(args)
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	err := root.ExecuteContext(ctx)
	if c.api != nil {
		_ = c.api.Close()
	}
	return ExitStatus(errOut, err)
}

// ExitStatus prints err the way docker does and returns the exit status for it.
func ExitStatus(errOut io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var se StatusError
	if errors.As(err, &se) {
		if se.Status != "" {
			fmt.Fprintln(errOut, se.Status)
		}
		if se.StatusCode == 0 {
			return 1
		}
		return se.StatusCode
	}
	msg := daemonMessage(err)
	if strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown shorthand") {
		msg = "berth: " + msg
	}
	fmt.Fprintln(errOut, msg)
	return 1
}

// daemonMessage rewords the client's connection error for berth.
func daemonMessage(err error) string {
	msg := err.Error()
	if client.IsErrConnectionFailed(err) {
		host := ""
		if _, rest, ok := strings.Cut(msg, " API at "); ok {
			host, _, _ = strings.Cut(rest, ";")
		}
		if host == "" {
			return "Cannot connect to the Berth daemon. Is the berth daemon running on this host?"
		}
		return fmt.Sprintf("Cannot connect to the Berth daemon at %s. Is the berth daemon running?", host)
	}
	return msg
}
