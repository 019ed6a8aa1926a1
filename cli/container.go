package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/formatter"
	"github.com/berth-dev/berth/cli/opts"
)

// forEach runs fn for every name, prints each name that succeeded, and joins the failures (docker's style).
func (c *CLI) forEach(names []string, fn func(name string) error) error {
	var errs []error
	for _, n := range names {
		if err := fn(n); err != nil {
			errs = append(errs, errors.New(daemonMessage(err)))
			continue
		}
		fmt.Fprintln(c.out, n)
	}
	return errors.Join(errs...)
}

func newStartCommand(c *CLI) *cobra.Command {
	var attach, interactive bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if !attach && !interactive {
				var failed []string
				for _, n := range args {
					if _, err := api.ContainerStart(ctx, n, client.ContainerStartOptions{}); err != nil {
						fmt.Fprintln(c.err, daemonMessage(err))
						failed = append(failed, n)
						continue
					}
					fmt.Fprintln(c.out, n)
				}
				if len(failed) > 0 {
					return fmt.Errorf("Error: failed to start containers: %s", strings.Join(failed, ", "))
				}
				return nil
			}
			if len(args) > 1 {
				return errors.New("you cannot start and attach multiple containers at once")
			}
			return c.startAttached(ctx, api, args[0], interactive, c.detachKeysOr(detachKeys))
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	flags.BoolVarP(&interactive, "interactive", "i", false, "Attach container's STDIN")
	flags.StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

// startAttached is `start -a [-i]`: inspect, attach, wait, start, resize, then the container's exit status.
func (c *CLI) startAttached(ctx context.Context, api *client.Client, name string, interactive bool, detachKeys string) error {
	insp, err := api.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return err
	}
	ctr := insp.Container
	if ctr.State != nil && ctr.State.Running {
		return fmt.Errorf("you cannot start and attach a running container; use attach instead")
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	tty := ctr.Config != nil && ctr.Config.Tty
	stdin := interactive && ctr.Config != nil && ctr.Config.OpenStdin
	if !tty {
		defer c.forwardSignals(runCtx, api, ctr.ID)()
	}
	resp, err := api.ContainerAttach(runCtx, ctr.ID, client.ContainerAttachOptions{
		Stream: true, Stdin: stdin, Stdout: true, Stderr: true, DetachKeys: detachKeys,
	})
	if err != nil {
		return err
	}
	defer resp.Close()
	so := streamOptions{tty: tty, out: c.out, err: c.err, detachKeys: detachKeys}
	if stdin {
		so.in = c.in
	}
	done := make(chan error, 1)
	go func() { done <- streamHijacked(runCtx, resp.HijackedResponse, so) }()
	autoRemove := ctr.HostConfig != nil && ctr.HostConfig.AutoRemove
	statusC := waitExitOrRemoved(runCtx, c, api, ctr.ID, autoRemove)
	if _, err := api.ContainerStart(ctx, ctr.ID, client.ContainerStartOptions{}); err != nil {
		cancel()
		return err
	}
	if tty && c.OutIsTerminal() {
		c.monitorTTYSize(runCtx, func(h, w uint) error {
			_, err := api.ContainerResize(runCtx, ctr.ID, client.ContainerResizeOptions{Height: h, Width: w})
			return err
		})
	}
	if err := <-done; err != nil {
		if errors.Is(err, errDetached) {
			return nil
		}
		return err
	}
	if status := <-statusC; status != 0 {
		return StatusError{StatusCode: status}
	}
	return nil
}

func newStopCommand(c *CLI) *cobra.Command {
	return stopLike(c, "stop", "Stop one or more running containers", func(ctx context.Context, api *client.Client, n, sig string, t *int) error {
		_, err := api.ContainerStop(ctx, n, client.ContainerStopOptions{Signal: sig, Timeout: t})
		return err
	})
}

func newRestartCommand(c *CLI) *cobra.Command {
	return stopLike(c, "restart", "Restart one or more containers", func(ctx context.Context, api *client.Client, n, sig string, t *int) error {
		_, err := api.ContainerRestart(ctx, n, client.ContainerRestartOptions{Signal: sig, Timeout: t})
		return err
	})
}

func stopLike(c *CLI, verb, short string, do func(context.Context, *client.Client, string, string, *int) error) *cobra.Command {
	var signal string
	var timeout int
	cmd := &cobra.Command{
		Use:   verb + " [OPTIONS] CONTAINER [CONTAINER...]",
		Short: short,
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			var t *int
			if cmd.Flags().Changed("timeout") || cmd.Flags().Changed("time") {
				t = &timeout
			}
			return c.forEach(args, func(n string) error { return do(cmd.Context(), api, n, signal, t) })
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&signal, "signal", "s", "", "Signal to send to the container")
	flags.IntVarP(&timeout, "timeout", "t", 0, "Seconds to wait before killing the container")
	flags.IntVar(&timeout, "time", 0, "Seconds to wait before killing the container (deprecated: use --timeout)")
	_ = flags.MarkHidden("time")
	return cmd
}

func newKillCommand(c *CLI) *cobra.Command {
	var signal string
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Kill one or more running containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			return c.forEach(args, func(n string) error {
				_, err := api.ContainerKill(cmd.Context(), n, client.ContainerKillOptions{Signal: signal})
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "Signal to send to the container")
	return cmd
}

func newPauseCommand(c *CLI) *cobra.Command {
	return simpleEach(c, "pause", "Pause all processes within one or more containers", func(ctx context.Context, api *client.Client, n string) error {
		_, err := api.ContainerPause(ctx, n, client.ContainerPauseOptions{})
		return err
	})
}

func newUnpauseCommand(c *CLI) *cobra.Command {
	return simpleEach(c, "unpause", "Unpause all processes within one or more containers", func(ctx context.Context, api *client.Client, n string) error {
		_, err := api.ContainerUnpause(ctx, n, client.ContainerUnpauseOptions{})
		return err
	})
}

func simpleEach(c *CLI, verb, short string, do func(context.Context, *client.Client, string) error) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " CONTAINER [CONTAINER...]",
		Short: short,
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			return c.forEach(args, func(n string) error { return do(cmd.Context(), api, n) })
		},
	}
}

func newRmCommand(c *CLI) *cobra.Command {
	var force, volumes, links bool
	cmd := &cobra.Command{
		Use:   "rm [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Remove one or more containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			var errs []error
			for _, n := range args {
				n = strings.Trim(n, "/")
				if n == "" {
					errs = append(errs, errors.New("container name cannot be empty"))
					continue
				}
				_, err := api.ContainerRemove(cmd.Context(), n, client.ContainerRemoveOptions{Force: force, RemoveVolumes: volumes, RemoveLinks: links})
				if err != nil {
					if force && cerrdefs.IsNotFound(err) {
						// docker reports it and still succeeds
						fmt.Fprintln(c.err, daemonMessage(err))
						continue
					}
					errs = append(errs, errors.New(daemonMessage(err)))
					continue
				}
				fmt.Fprintln(c.out, n)
			}
			return errors.Join(errs...)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	flags.BoolVarP(&volumes, "volumes", "v", false, "Remove anonymous volumes associated with the container")
	flags.BoolVarP(&links, "link", "l", false, "Remove the specified link")
	return cmd
}

// toFilters turns -f key=value values into the client's filter set.
func toFilters(values []string) (client.Filters, error) {
	parsed, err := parseFilters(values)
	if err != nil {
		return nil, err
	}
	f := client.Filters{}
	for k, vs := range parsed {
		f.Add(k, vs...)
	}
	return f, nil
}

func newPsCommand(c *CLI) *cobra.Command {
	var all, quiet, latest, size, noTrunc bool
	var last int
	var format string
	var filters []string
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS]",
		Short: "List containers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			f, err := toFilters(filters)
			if err != nil {
				return err
			}
			if format == "" && !quiet {
				format = c.Config().PsFormat
			}
			if format == "" || format == formatter.TableFormatKey {
				format = formatter.ContainerTableFormat
				if size {
					format = formatter.ContainerTableFormatSize
				}
			}
			if quiet {
				format = formatter.QuietIDFormat
			}
			// like docker, ask for sizes whenever the output will show them
			wantSize := size || strings.Contains(format, ".Size") || strings.Contains(format, "json .")
			lo := client.ContainerListOptions{All: all, Limit: last, Size: wantSize, Filters: f}
			if latest {
				lo.Limit = 1
			}
			if lo.Limit > 0 {
				lo.All = true
			}
			res, err := api.ContainerList(cmd.Context(), lo)
			if err != nil {
				return err
			}
			now := time.Now()
			rows := make([]any, 0, len(res.Items))
			for _, s := range res.Items {
				rows = append(rows, &formatter.ContainerContext{C: s, Trunc: !noTrunc, Now: now})
			}
			return formatter.Write(c.out, formatter.Format(format), formatter.ContainerHeaders, rows)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	flags.BoolVarP(&quiet, "quiet", "q", false, "Only display container IDs")
	flags.BoolVarP(&size, "size", "s", false, "Display total file sizes")
	flags.BoolVarP(&latest, "latest", "l", false, "Show the latest created container (includes all states)")
	flags.IntVarP(&last, "last", "n", -1, "Show n last created containers (includes all states)")
	flags.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	flags.StringVar(&format, "format", "", "Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')")
	flags.VarP(newFilterValue(&filters), "filter", "f", "Filter output based on conditions provided")
	return cmd
}

func newLogsCommand(c *CLI) *cobra.Command {
	var o client.ContainerLogsOptions
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			insp, err := api.ContainerInspect(ctx, args[0], client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			now := time.Now()
			if o.Since != "" {
				if o.Since, err = getTimestamp(o.Since, now); err != nil {
					return err
				}
			}
			if o.Until != "" {
				if o.Until, err = getTimestamp(o.Until, now); err != nil {
					return err
				}
			}
			o.ShowStdout, o.ShowStderr = true, true
			rc, err := api.ContainerLogs(ctx, insp.Container.ID, o)
			if err != nil {
				return err
			}
			defer rc.Close()
			if insp.Container.Config != nil && insp.Container.Config.Tty {
				_, err = io.Copy(c.out, rc)
			} else {
				_, err = stdcopy.StdCopy(c.out, c.err, rc)
			}
			return err
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.Follow, "follow", "f", false, "Follow log output")
	flags.BoolVarP(&o.Timestamps, "timestamps", "t", false, "Show timestamps")
	flags.StringVarP(&o.Tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	flags.StringVar(&o.Since, "since", "", `Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	flags.StringVar(&o.Until, "until", "", `Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	flags.BoolVar(&o.Details, "details", false, "Show extra details provided to logs")
	return cmd
}

func newExecCommand(c *CLI) *cobra.Command {
	var interactive, tty, detach, privileged bool
	var env, envFile []string
	var user, workdir, detachKeys string
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  requiresMinArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var envs []string
			for _, f := range envFile {
				lines, err := opts.ReadKVFile(f, os.LookupEnv)
				if err != nil {
					return err
				}
				envs = append(envs, lines...)
			}
			for _, e := range env {
				v, err := opts.ValidateEnv(e)
				if err != nil {
					return err
				}
				envs = append(envs, v)
			}
			if _, err := api.ContainerInspect(ctx, args[0], client.ContainerInspectOptions{}); err != nil {
				return err
			}
			if !detach && interactive && tty && !c.InIsTerminal() {
				return errors.New("the input device is not a TTY")
			}
			h, w := uint(0), uint(0)
			if tty {
				h, w = c.consoleSize()
			}
			created, err := api.ExecCreate(ctx, args[0], client.ExecCreateOptions{
				User: user, Privileged: privileged, TTY: tty, AttachStdin: interactive && !detach,
				AttachStdout: !detach, AttachStderr: !detach, DetachKeys: c.detachKeysOr(detachKeys), Env: envs,
				WorkingDir: workdir, Cmd: args[1:], ConsoleSize: client.ConsoleSize{Height: h, Width: w},
			})
			if err != nil {
				return err
			}
			if detach {
				_, err := api.ExecStart(ctx, created.ID, client.ExecStartOptions{Detach: true, TTY: tty})
				return err
			}
			resp, err := api.ExecAttach(ctx, created.ID, client.ExecAttachOptions{TTY: tty, ConsoleSize: client.ConsoleSize{Height: h, Width: w}})
			if err != nil {
				return err
			}
			defer resp.Close()
			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			so := streamOptions{tty: tty, out: c.out, err: c.err, detachKeys: c.detachKeysOr(detachKeys)}
			if interactive {
				so.in = c.in
			}
			done := make(chan error, 1)
			go func() { done <- streamHijacked(runCtx, resp.HijackedResponse, so) }()
			if tty && c.OutIsTerminal() {
				c.monitorTTYSize(runCtx, func(h, w uint) error {
					_, err := api.ExecResize(runCtx, created.ID, client.ExecResizeOptions{Height: h, Width: w})
					return err
				})
			}
			if err := <-done; err != nil && !errors.Is(err, errDetached) {
				return err
			}
			ins, err := api.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
			if err != nil {
				return err
			}
			if ins.ExitCode != 0 {
				return StatusError{StatusCode: ins.ExitCode}
			}
			return nil
		},
	}
	flags := cmd.Flags()
	flags.SetInterspersed(false)
	flags.BoolVarP(&interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	flags.BoolVarP(&tty, "tty", "t", false, "Allocate a pseudo-TTY")
	flags.BoolVarP(&detach, "detach", "d", false, "Detached mode: run command in the background")
	flags.StringArrayVarP(&env, "env", "e", nil, "Set environment variables")
	flags.StringArrayVar(&envFile, "env-file", nil, "Read in a file of environment variables")
	flags.StringVarP(&user, "user", "u", "", "Username or UID (format: \"<name|uid>[:<group|gid>]\")")
	flags.StringVarP(&workdir, "workdir", "w", "", "Working directory inside the container")
	flags.BoolVar(&privileged, "privileged", false, "Give extended privileges to the command")
	flags.StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

func newAttachCommand(c *CLI) *cobra.Command {
	var noStdin, sigProxy bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach local standard input, output, and error streams to a running container",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			// wait first, so an exit during attach is seen
			waitRes := api.ContainerWait(runCtx, args[0], client.ContainerWaitOptions{})
			insp, err := api.ContainerInspect(ctx, args[0], client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			ctr := insp.Container
			switch {
			case ctr.State == nil || !ctr.State.Running:
				return errors.New("You cannot attach to a stopped container, start it first")
			case ctr.State.Paused:
				return errors.New("You cannot attach to a paused container, unpause it first")
			case ctr.State.Restarting:
				return errors.New("You cannot attach to a restarting container, wait until it is running")
			}
			tty := ctr.Config != nil && ctr.Config.Tty
			stdin := !noStdin && ctr.Config != nil && ctr.Config.OpenStdin
			if stdin && tty && !c.InIsTerminal() {
				return errors.New("the input device is not a TTY")
			}
			if sigProxy && !tty {
				defer c.forwardSignals(runCtx, api, ctr.ID)()
			}
			resp, err := api.ContainerAttach(runCtx, ctr.ID, client.ContainerAttachOptions{
				Stream: true, Stdin: stdin, Stdout: true, Stderr: true, DetachKeys: c.detachKeysOr(detachKeys),
			})
			if err != nil {
				return err
			}
			defer resp.Close()
			if tty && c.OutIsTerminal() {
				if again, err := api.ContainerInspect(ctx, ctr.ID, client.ContainerInspectOptions{}); err == nil && again.Container.State != nil && again.Container.State.Running {
					c.monitorTTYSize(runCtx, func(h, w uint) error {
						_, err := api.ContainerResize(runCtx, ctr.ID, client.ContainerResizeOptions{Height: h, Width: w})
						return err
					})
				}
			}
			so := streamOptions{tty: tty, out: c.out, err: c.err, detachKeys: c.detachKeysOr(detachKeys)}
			if stdin {
				so.in = c.in
			}
			if err := streamHijacked(runCtx, resp.HijackedResponse, so); err != nil {
				if errors.Is(err, errDetached) {
					return nil
				}
				return err
			}
			select {
			case r := <-waitRes.Result:
				if r.StatusCode != 0 {
					return StatusError{StatusCode: int(r.StatusCode)}
				}
			case err := <-waitRes.Error:
				return err
			}
			return nil
		},
	}
	flags := cmd.Flags()
	flags.BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	flags.BoolVar(&sigProxy, "sig-proxy", true, "Proxy all received signals to the process")
	flags.StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

func newWaitCommand(c *CLI) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			var errs []error
			for _, n := range args {
				res := api.ContainerWait(cmd.Context(), n, client.ContainerWaitOptions{})
				select {
				case r := <-res.Result:
					fmt.Fprintf(c.out, "%d\n", r.StatusCode)
				case err := <-res.Error:
					errs = append(errs, errors.New(daemonMessage(err)))
				}
			}
			return errors.Join(errs...)
		},
	}
}

func newTopCommand(c *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Display the running processes of a container",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.ContainerTop(cmd.Context(), args[0], client.ContainerTopOptions{Arguments: args[1:]})
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(c.out, 20, 1, 3, ' ', 0)
			fmt.Fprintln(w, strings.Join(res.Titles, "\t"))
			for _, p := range res.Processes {
				fmt.Fprintln(w, strings.Join(p, "\t"))
			}
			return w.Flush()
		},
	}
	// everything after CONTAINER belongs to ps
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func newRenameCommand(c *CLI) *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			oldName, newName := strings.TrimSpace(args[0]), strings.TrimSpace(args[1])
			if oldName == "" || newName == "" {
				return errors.New("Error: Neither old nor new names may be empty")
			}
			if _, err := api.ContainerRename(cmd.Context(), oldName, client.ContainerRenameOptions{NewName: newName}); err != nil {
				return fmt.Errorf("Error: failed to rename container named %s: %w", oldName, err)
			}
			return nil
		},
	}
}

func newPortCommand(c *CLI) *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			insp, err := api.ContainerInspect(cmd.Context(), args[0], client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			var ports network.PortMap
			if insp.Container.NetworkSettings != nil {
				ports = insp.Container.NetworkSettings.Ports
			}
			lines, err := formatPortLines(ports, args[1:])
			if err != nil {
				return fmt.Errorf("%w for %s", err, args[0])
			}
			for _, l := range lines {
				fmt.Fprintln(c.out, l)
			}
			return nil
		},
	}
}

// formatPortLines renders `port` output: "80/tcp -> 0.0.0.0:8080", or just "0.0.0.0:8080" for one asked port.
func formatPortLines(ports network.PortMap, want []string) ([]string, error) {
	hostAddr := func(b network.PortBinding) string {
		ip := "0.0.0.0"
		if b.HostIP.IsValid() {
			ip = b.HostIP.String()
		}
		if strings.Contains(ip, ":") {
			return "[" + ip + "]:" + b.HostPort
		}
		return ip + ":" + b.HostPort
	}
	if len(want) == 1 {
		spec := want[0]
		if !strings.Contains(spec, "/") {
			spec += "/tcp"
		}
		p, err := network.ParsePort(spec)
		if err != nil {
			return nil, fmt.Errorf("Error: invalid port (%s): %w", want[0], err)
		}
		bindings, ok := ports[p]
		if !ok || len(bindings) == 0 {
			return nil, fmt.Errorf("Error: No public port '%s' published", want[0])
		}
		var out []string
		for _, b := range bindings {
			out = append(out, hostAddr(b))
		}
		return out, nil
	}
	keys := make([]network.Port, 0, len(ports))
	for p := range ports {
		keys = append(keys, p)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Num() != keys[j].Num() {
			return keys[i].Num() < keys[j].Num()
		}
		return keys[i].Proto() < keys[j].Proto()
	})
	var out []string
	for _, p := range keys {
		for _, b := range ports[p] {
			out = append(out, fmt.Sprintf("%s -> %s", p, hostAddr(b)))
		}
	}
	return out, nil
}

func newExportCommand(c *CLI) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [OPTIONS] CONTAINER",
		Short: "Export a container's filesystem as a tar archive",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" && c.OutIsTerminal() {
				return errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			rc, err := api.ContainerExport(cmd.Context(), args[0], client.ContainerExportOptions{})
			if err != nil {
				return err
			}
			defer rc.Close()
			return c.writeOutput(rc, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}

// writeOutput copies r to stdout, or atomically to path (temp file, fsync, rename).
func (c *CLI) writeOutput(r io.Reader, path string) error {
	if path == "" || path == "-" {
		_, err := io.Copy(c.out, r)
		return err
	}
	dir := "."
	if i := strings.LastIndex(path, "/"); i >= 0 {
		dir = path[:i+1]
	}
	tmp, err := os.CreateTemp(dir, ".berth-output-*")
	if err != nil {
		return fmt.Errorf("failed to save to %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("failed to save to %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("failed to save to %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("failed to save to %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("failed to save to %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

func newCommitCommand(c *CLI) *cobra.Command {
	var changes []string
	var message, author string
	var pause bool
	cmd := &cobra.Command{
		Use:   "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Short: "Create a new image from a container's changes",
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			ref := ""
			if len(args) > 1 {
				ref = args[1]
			}
			res, err := api.ContainerCommit(cmd.Context(), args[0], client.ContainerCommitOptions{
				Reference: ref, Comment: message, Author: author, Changes: changes, NoPause: !pause,
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, res.ID)
			return nil
		},
	}
	flags := cmd.Flags()
	flags.StringArrayVarP(&changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	flags.StringVarP(&message, "message", "m", "", "Commit message")
	flags.StringVarP(&author, "author", "a", "", `Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")`)
	flags.BoolVarP(&pause, "pause", "p", true, "Pause container during commit")
	return cmd
}

func newDiffCommand(c *CLI) *cobra.Command {
	return &cobra.Command{
		Use:   "diff CONTAINER",
		Short: "Inspect changes to files or directories on a container's filesystem",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.ContainerDiff(cmd.Context(), args[0], client.ContainerDiffOptions{})
			if err != nil {
				return err
			}
			for _, ch := range res.Changes {
				fmt.Fprintf(c.out, "%s %s\n", changeKind(ch.Kind), ch.Path)
			}
			return nil
		},
	}
}

func changeKind(k container.ChangeType) string {
	switch k {
	case container.ChangeModify:
		return "C"
	case container.ChangeAdd:
		return "A"
	case container.ChangeDelete:
		return "D"
	}
	return strconv.Itoa(int(k))
}

func newContainerPruneCommand(c *CLI) *cobra.Command {
	var force bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all stopped containers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force && !c.confirm("WARNING! This will remove all stopped containers.\nAre you sure you want to continue?") {
				return nil // docker: a declined prompt is not an error
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			f, err := toFilters(filters)
			if err != nil {
				return err
			}
			res, err := api.ContainerPrune(cmd.Context(), client.ContainerPruneOptions{Filters: f})
			if err != nil {
				return err
			}
			printDeleted(c.out, "Deleted Containers:", res.Report.ContainersDeleted, true)
			fmt.Fprintf(c.out, "Total reclaimed space: %s\n", humanSize(res.Report.SpaceReclaimed))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(newFilterValue(&filters), "filter", `Provide filter values (e.g. "until=<timestamp>")`)
	return cmd
}

// confirm asks a yes/no question on stdin, defaulting to no.
func (c *CLI) confirm(question string) bool {
	fmt.Fprintf(c.out, "%s [y/N] ", question)
	var answer string
	_, _ = fmt.Fscanln(c.in, &answer)
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}
