package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/jsonmessage"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/opts"
)

type runOptions struct {
	detach     bool
	sigProxy   bool
	detachKeys string
	quiet      bool
}

func newRunCommand(c *CLI) *cobra.Command {
	var ro runOptions
	var copts *opts.ContainerOptions
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a new container from an image",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			copts.Image, copts.Args = args[0], args[1:]
			return runRun(cmd, c, copts, ro)
		},
	}
	flags := cmd.Flags()
	helpFlagOnly(flags)
	copts = opts.AddContainerFlags(flags)
	flags.BoolVarP(&ro.detach, "detach", "d", false, "Run container in background and print container ID")
	flags.BoolVar(&ro.sigProxy, "sig-proxy", true, "Proxy received signals to the process")
	flags.StringVar(&ro.detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	flags.BoolVarP(&ro.quiet, "quiet", "q", false, "Suppress the pull output")
	return cmd
}

func newCreateCommand(c *CLI) *cobra.Command {
	var quiet bool
	var copts *opts.ContainerOptions
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new container",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			copts.Image, copts.Args = args[0], args[1:]
			cc, err := opts.Parse(cmd.Flags(), copts, false)
			if err != nil {
				return withHelp(cmd, err, 125)
			}
			if cc.HostConfig.AutoRemove && !cc.HostConfig.RestartPolicy.IsNone() {
				return withHelp(cmd, errors.New("conflicting options: cannot specify both --restart and --rm"), 125)
			}
			id, err := c.createContainer(cmd.Context(), cc, copts, quiet)
			if err != nil {
				return withHelp(cmd, err, 125)
			}
			fmt.Fprintln(c.out, id)
			return nil
		},
	}
	flags := cmd.Flags()
	helpFlagOnly(flags)
	copts = opts.AddContainerFlags(flags)
	flags.BoolVarP(&quiet, "quiet", "q", false, "Suppress the pull output")
	return cmd
}

// parsePlatform reads "os/arch[/variant]".
func parsePlatform(s string) (*ocispec.Platform, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(strings.ToLower(s), "/")
	p := &ocispec.Platform{OS: parts[0]}
	if len(parts) > 1 {
		p.Architecture = parts[1]
	}
	if len(parts) > 2 {
		p.Variant = parts[2]
	}
	if len(parts) > 3 || p.OS == "" {
		return nil, fmt.Errorf("invalid platform %q: expected os/arch[/variant]", s)
	}
	return p, nil
}

// createContainer creates the container, pulling the image first when the daemon does not have it
// and --pull allows it. It writes --cidfile and prints the daemon's warnings.
func (c *CLI) createContainer(ctx context.Context, cc *opts.ContainerConfig, copts *opts.ContainerOptions, quiet bool) (string, error) {
	api, err := c.Client()
	if err != nil {
		return "", err
	}
	switch copts.Pull {
	case "missing", "never":
	case "always":
		return "", fmt.Errorf("--pull=always is not supported by berth yet: use missing or never")
	default:
		return "", fmt.Errorf("invalid pull option: '%s': must be one of \"always\", \"missing\" or \"never\"", copts.Pull)
	}
	platform, err := parsePlatform(copts.Platform)
	if err != nil {
		return "", err
	}
	var cidFile *os.File
	if copts.CIDFile != "" {
		if _, err := os.Stat(copts.CIDFile); err == nil {
			return "", fmt.Errorf("container ID file found, make sure the other container isn't running or delete %s", copts.CIDFile)
		}
		cidFile, err = os.Create(copts.CIDFile)
		if err != nil {
			return "", fmt.Errorf("failed to create the container ID file: %w", err)
		}
	}
	create := func() (client.ContainerCreateResult, error) {
		return api.ContainerCreate(ctx, client.ContainerCreateOptions{
			Config: cc.Config, HostConfig: cc.HostConfig, NetworkingConfig: cc.NetworkingConfig,
			Platform: platform, Name: copts.Name,
		})
	}
	res, err := create()
	if err != nil && cerrdefs.IsNotFound(err) && copts.Pull == "missing" {
		if named, perr := reference.ParseNormalizedNamed(cc.Config.Image); perr == nil {
			if _, digested := named.(reference.Digested); !digested {
				named = reference.TagNameOnly(named)
			}
			fmt.Fprintf(c.err, "Unable to find image '%s' locally\n", reference.FamiliarString(named))
			var out io.Writer = c.err
			if quiet {
				out = io.Discard
			}
			if perr := c.pullImage(ctx, reference.FamiliarString(named), platform, out); perr != nil {
				err = perr
			} else {
				res, err = create()
			}
		}
	}
	if err != nil {
		if cidFile != nil {
			_ = cidFile.Close()
			_ = os.Remove(copts.CIDFile)
		}
		return "", err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(c.err, "WARNING: %s\n", w)
	}
	if cidFile != nil {
		_, werr := cidFile.WriteString(res.ID)
		if cerr := cidFile.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return res.ID, fmt.Errorf("failed to write the container ID %s to %s: %w", res.ID, copts.CIDFile, werr)
		}
	}
	return res.ID, nil
}

// pullImage pulls ref and renders the progress stream to out.
func (c *CLI) pullImage(ctx context.Context, ref string, platform *ocispec.Platform, out io.Writer) error {
	api, err := c.Client()
	if err != nil {
		return err
	}
	o := client.ImagePullOptions{RegistryAuth: c.pullAuth(ctx, ref)}
	if platform != nil {
		o.Platforms = []ocispec.Platform{*platform}
	}
	resp, err := api.ImagePull(ctx, ref, o)
	if err != nil {
		return err
	}
	defer resp.Close()
	return c.displayJSONMessages(resp, out)
}

// displayJSONMessages renders a JSON message stream (pull, import, load) like docker:
// progress bars on a terminal, plain lines otherwise.
func (c *CLI) displayJSONMessages(in io.Reader, out io.Writer) error {
	fd, isTerm := terminalFd(out)
	return jsonmessage.DisplayJSONMessagesStream(in, out, uintptr(fd), isTerm, nil)
}

// startErrorStatus maps a start failure to run's exit status as docker does:
// 127 command not found, 126 not executable, 125 anything else.
func startErrorStatus(err error) int {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory"),
		strings.Contains(msg, "system cannot find the file specified"):
		return 127
	case strings.Contains(msg, syscall.EACCES.Error()), strings.Contains(msg, syscall.EISDIR.Error()):
		return 126
	}
	return 125
}

func runRun(cmd *cobra.Command, c *CLI, copts *opts.ContainerOptions, ro runOptions) error {
	ctx := cmd.Context()
	ro.detachKeys = c.detachKeysOr(ro.detachKeys)
	cc, err := opts.Parse(cmd.Flags(), copts, ro.detach)
	if err != nil {
		return withHelp(cmd, err, 125)
	}
	hc, cfg := cc.HostConfig, cc.Config
	if ro.detach && len(copts.Attach) > 0 {
		return errors.New("conflicting options: cannot specify both --attach and --detach")
	}
	if hc.AutoRemove && !hc.RestartPolicy.IsNone() {
		return withHelp(cmd, errors.New("conflicting options: cannot specify both --restart and --rm"), 125)
	}
	if !ro.detach && cfg.AttachStdin && cfg.Tty && !c.InIsTerminal() {
		return errors.New("the input device is not a TTY")
	}
	if cfg.Tty {
		if h, w := c.consoleSize(); h > 0 {
			hc.ConsoleSize = [2]uint{h, w}
		}
	}
	id, err := c.createContainer(ctx, cc, copts, ro.quiet)
	if err != nil {
		return withHelp(cmd, err, 125)
	}
	api, _ := c.Client()

	if ro.detach {
		if _, err := api.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			return withHelp(cmd, err, startErrorStatus(err))
		}
		fmt.Fprintln(c.out, id)
		return nil
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if ro.sigProxy && !cfg.Tty {
		defer c.forwardSignals(runCtx, api, id)()
	}

	attached := cfg.AttachStdin || cfg.AttachStdout || cfg.AttachStderr
	var streamDone chan error
	if attached {
		resp, err := api.ContainerAttach(runCtx, id, client.ContainerAttachOptions{
			Stream: true, Stdin: cfg.AttachStdin, Stdout: cfg.AttachStdout, Stderr: cfg.AttachStderr,
			DetachKeys: ro.detachKeys,
		})
		if err != nil {
			return withHelp(cmd, err, 125)
		}
		defer resp.Close()
		so := streamOptions{tty: cfg.Tty, out: io.Discard, err: io.Discard, detachKeys: ro.detachKeys}
		if cfg.AttachStdin {
			so.in = c.in
		}
		if cfg.AttachStdout {
			so.out = c.out
		}
		if cfg.AttachStderr {
			so.err = c.err
			if cfg.Tty {
				so.err = c.out
			}
		}
		streamDone = make(chan error, 1)
		go func() { streamDone <- streamHijacked(runCtx, resp.HijackedResponse, so) }()
	}

	// register the wait before start so a fast exit is not missed
	statusC := waitExitOrRemoved(runCtx, c, api, id, hc.AutoRemove)

	if _, err := api.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		cancel()
		if hc.AutoRemove {
			<-statusC
		}
		return withHelp(cmd, err, startErrorStatus(err))
	}
	if cfg.Tty && c.OutIsTerminal() {
		c.monitorTTYSize(runCtx, func(h, w uint) error {
			_, err := api.ContainerResize(runCtx, id, client.ContainerResizeOptions{Height: h, Width: w})
			return err
		})
	}
	if streamDone != nil {
		if err := <-streamDone; err != nil {
			if errors.Is(err, errDetached) {
				fmt.Fprintln(c.err)
				return nil
			}
			if !errors.Is(err, context.Canceled) {
				fmt.Fprintf(c.err, "Error: %v\n", err)
			}
		}
	}
	status := <-statusC
	if status != 0 {
		return StatusError{StatusCode: status}
	}
	return nil
}

// waitExitOrRemoved waits (condition next-exit, or removed with --rm) and delivers the exit status;
// it returns only after the daemon has answered the wait's headers.
func waitExitOrRemoved(ctx context.Context, c *CLI, api *client.Client, id string, autoRemove bool) <-chan int {
	cond := container.WaitConditionNextExit
	if autoRemove {
		cond = container.WaitConditionRemoved
	}
	res := api.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: cond})
	statusC := make(chan int, 1)
	go func() {
		select {
		case r := <-res.Result:
			if r.Error != nil {
				fmt.Fprintf(c.err, "Error waiting for container: %v\n", r.Error.Message)
				statusC <- 125
				return
			}
			statusC <- int(r.StatusCode)
		case err := <-res.Error:
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				// berth gave up waiting itself (start failed): nothing to report
				statusC <- 125
				return
			}
			fmt.Fprintf(c.err, "Error waiting for container: %v\n", err)
			statusC <- 125
		}
	}()
	return statusC
}
