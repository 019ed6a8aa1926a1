package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/version"
)

const binName = "berth"

// NewRootCommand builds `berth` with every command and the container/image/system groups.
func NewRootCommand(c *CLI) *cobra.Command {
	root := &cobra.Command{
		Use:              "berth [OPTIONS] COMMAND [ARG...]",
		Short:            "A self-sufficient runtime for containers",
		SilenceUsage:     true,
		SilenceErrors:    true,
		TraverseChildren: true,
		Version:          fmt.Sprintf("%s, build %s", version.Version, version.GitCommit),
		Args:             noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetVersionTemplate("Berth version {{.Version}}\n")
	cobra.AddTemplateFunc("aliasLine", aliasLine)
	cobra.AddTemplateFunc("managementCommands", managementCommands)
	cobra.AddTemplateFunc("operationCommands", operationCommands)
	root.SetUsageTemplate(usageTemplate)
	root.SetHelpTemplate("{{.UsageString}}")
	root.SetFlagErrorFunc(flagErrorFunc)
	flags := root.Flags()
	flags.StringVarP(&c.opts.Host, "host", "H", "", "Daemon socket to connect to (default "+DefaultHost+", or BERTH_HOST, DOCKER_HOST)")
	flags.StringVar(&c.opts.ConfigDir, "config", "", "Location of client config files (default ~/.berth, or BERTH_CONFIG)")
	flags.BoolVarP(&c.opts.Debug, "debug", "D", false, "Enable debug mode")
	flags.StringVarP(&c.opts.LogLevel, "log-level", "l", "info", `Set the logging level ("debug", "info", "warn", "error", "fatal")`)
	flags.BoolP("version", "v", false, "Print version information and quit")

	root.AddCommand(containerCommands(c)...)
	root.AddCommand(imageCommands(c)...)
	root.AddCommand(
		newVersionCommand(c),
		newInfoCommand(c),
		newEventsCommand(c),
		newContainerGroup(c),
		newImageGroup(c),
		newSystemGroup(c),
		newNetworkGroup(c),
		newVolumeGroup(c),
	)
	walk(root, func(cmd *cobra.Command) {
		// docker lists neither --help nor repeatable flags' Go type
		cmd.InitDefaultHelpFlag()
		_ = cmd.Flags().MarkHidden("help")
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Value.Type() == "stringArray" {
				f.Value = listValue{f.Value}
				f.DefValue = ""
			}
		})
		cmd.SetFlagErrorFunc(flagErrorFunc)
		cmd.DisableFlagsInUseLine = true
		cmd.SilenceErrors = true
		cmd.SilenceUsage = true
	})
	return root
}

// usageTemplate lays out --help like docker: usage line, description, aliases, commands, options.
const usageTemplate = `Usage:  {{if .HasSubCommands}}{{.CommandPath}}{{if not .HasParent}} [OPTIONS]{{end}} COMMAND{{else}}{{.UseLine}}{{end}}

{{.Short}}
{{- if .Aliases}}

Aliases:
  {{aliasLine .}}
{{- end}}
{{- if managementCommands .}}

Management Commands:
{{- range managementCommands .}}
  {{rpad .Name 11}} {{.Short}}
{{- end}}
{{- end}}
{{- if operationCommands .}}

Commands:
{{- range operationCommands .}}
  {{rpad .Name 11}} {{.Short}}
{{- end}}
{{- end}}
{{- if .HasAvailableLocalFlags}}

Options:
{{.LocalFlags.FlagUsagesWrapped 80 | trimTrailingWhitespaces}}
{{- end}}
{{- if .HasSubCommands}}

Run '{{.CommandPath}} COMMAND --help' for more information on a command.
{{- end}}
`

func aliasLine(cmd *cobra.Command) string {
	parent := ""
	if cmd.HasParent() {
		parent = cmd.Parent().CommandPath() + " "
	}
	names := []string{parent + cmd.Name()}
	for _, a := range cmd.Aliases {
		names = append(names, parent+a)
	}
	return strings.Join(names, ", ")
}

func managementCommands(cmd *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, sub := range cmd.Commands() {
		if sub.IsAvailableCommand() && sub.HasSubCommands() {
			out = append(out, sub)
		}
	}
	return out
}

func operationCommands(cmd *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, sub := range cmd.Commands() {
		if sub.IsAvailableCommand() && !sub.HasSubCommands() {
			out = append(out, sub)
		}
	}
	return out
}

func walk(cmd *cobra.Command, fn func(*cobra.Command)) {
	fn(cmd)
	for _, sub := range cmd.Commands() {
		walk(sub, fn)
	}
}

// containerCommands are the top-level container verbs (also under `berth container`).
func containerCommands(c *CLI) []*cobra.Command {
	return []*cobra.Command{
		newRunCommand(c), newCreateCommand(c), newStartCommand(c), newStopCommand(c),
		newKillCommand(c), newRestartCommand(c), newPauseCommand(c), newUnpauseCommand(c),
		newRmCommand(c), newPsCommand(c), newInspectCommand(c), newLogsCommand(c),
		newExecCommand(c), newAttachCommand(c), newWaitCommand(c), newTopCommand(c),
		newRenameCommand(c), newPortCommand(c), newExportCommand(c), newCommitCommand(c),
		newDiffCommand(c), newCpCommand(c), newStatsCommand(c), newUpdateCommand(c),
	}
}

// imageCommands are the top-level image verbs.
func imageCommands(c *CLI) []*cobra.Command {
	return []*cobra.Command{
		newImportCommand(c), newImagesCommand(c), newTagCommand(c), newRmiCommand(c),
		newHistoryCommand(c), newSaveCommand(c), newLoadCommand(c), newPullCommand(c),
		newPushCommand(c), newLoginCommand(c), newLogoutCommand(c), newBuildCommand(c),
	}
}

func newContainerGroup(c *CLI) *cobra.Command {
	cmd := &cobra.Command{Use: "container", Short: "Manage containers", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	subs := []*cobra.Command{
		newRunCommand(c), newCreateCommand(c), newStartCommand(c), newStopCommand(c),
		newKillCommand(c), newRestartCommand(c), newPauseCommand(c), newUnpauseCommand(c),
		newLogsCommand(c), newExecCommand(c), newAttachCommand(c), newWaitCommand(c),
		newTopCommand(c), newRenameCommand(c), newPortCommand(c), newExportCommand(c),
		newCommitCommand(c), newDiffCommand(c), newCpCommand(c), newContainerPruneCommand(c), newStatsCommand(c),
		newUpdateCommand(c),
	}
	rm := newRmCommand(c)
	rm.Use = "rm [OPTIONS] CONTAINER [CONTAINER...]"
	rm.Aliases = []string{"remove"}
	ls := newPsCommand(c)
	ls.Use = "ls [OPTIONS]"
	ls.Aliases = []string{"list", "ps"}
	insp := newContainerInspectCommand(c)
	cmd.AddCommand(append(subs, rm, ls, insp)...)
	return cmd
}

func newImageGroup(c *CLI) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage images", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	ls := newImagesCommand(c)
	ls.Use = "ls [OPTIONS] [REPOSITORY[:TAG]]"
	ls.Aliases = []string{"list"}
	rm := newRmiCommand(c)
	rm.Use = "rm [OPTIONS] IMAGE [IMAGE...]"
	rm.Aliases = []string{"remove"}
	cmd.AddCommand(ls, rm, newImportCommand(c), newTagCommand(c), newHistoryCommand(c),
		newSaveCommand(c), newLoadCommand(c), newPullCommand(c), newPushCommand(c), newImageInspectCommand(c), newBuildCommand(c),
		newImagePruneCommand(c))
	return cmd
}

func newSystemGroup(c *CLI) *cobra.Command {
	cmd := &cobra.Command{Use: "system", Short: "Manage Berth", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	cmd.AddCommand(newDfCommand(c), newSystemPruneCommand(c), newSystemCheckCommand(c),
		newInfoCommand(c), newEventsCommand(c))
	return cmd
}

// flagErrorFunc reports a bad flag like docker: the error, the usage line, a pointer to --help; status 125.
func flagErrorFunc(cmd *cobra.Command, err error) error {
	if err == nil {
		return nil
	}
	return StatusError{
		Status:     fmt.Sprintf("%s\n\nUsage:  %s\n\nRun '%s --help' for more information", err, cmd.UseLine(), cmd.CommandPath()),
		StatusCode: 125,
		Cause:      err,
	}
}

func pluralize(word string, n int) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// argsError words a wrong argument count like docker; verb is "See" for at-least checks, "Run" otherwise.
func argsError(cmd *cobra.Command, what, verb string) error {
	return fmt.Errorf("%s: '%s' %s\n\nUsage:  %s\n\n%s '%s --help' for more information",
		binName, cmd.CommandPath(), what, cmd.UseLine(), verb, cmd.CommandPath())
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		if !cmd.HasParent() {
			return fmt.Errorf("%s: unknown command: %s %s\n\nRun '%s --help' for more information",
				binName, cmd.CommandPath(), args[0], cmd.CommandPath())
		}
		return fmt.Errorf("%s: unknown command: %s %s\n\nUsage:  %s\n\nRun '%s --help' for more information",
			binName, cmd.CommandPath(), args[0], cmd.CommandPath(), cmd.CommandPath())
	}
	return argsError(cmd, "accepts no arguments", "Run")
}

func requiresMinArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= n {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires at least %d %s", n, pluralize("argument", n)), "See")
	}
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires %d %s", n, pluralize("argument", n)), "Run")
	}
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= lo && len(args) <= hi {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires at least %d and at most %d %s", lo, hi, pluralize("argument", hi)), "Run")
	}
}

// withHelp is how run and create report any failure: "berth: <err>" plus a pointer to --help, status 125.
func withHelp(cmd *cobra.Command, err error, code int) error {
	return StatusError{
		Status:     fmt.Sprintf("%s: %s\n\nRun '%s --help' for more information", binName, daemonMessage(err), cmd.CommandPath()),
		StatusCode: code,
		Cause:      err,
	}
}

// filterValue is a repeatable -f/--filter flag that rejects values without "=" as soon as they are
// parsed, so a bad filter is a flag error (exit 125), as in docker.
type filterValue struct{ values *[]string }

func newFilterValue(p *[]string) *filterValue { return &filterValue{values: p} }

func (f *filterValue) String() string { return "" }

// Set checks and appends one key=value filter.
func (f *filterValue) Set(v string) error {
	if !strings.Contains(v, "=") {
		return fmt.Errorf("bad format of filter (expected name=value)")
	}
	*f.values = append(*f.values, v)
	return nil
}

// Type is shown in --help.
func (f *filterValue) Type() string { return "filter" }

// parseFilters groups key=value filter values by key.
func parseFilters(values []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, v := range values {
		k, val, ok := strings.Cut(v, "=")
		if !ok {
			return nil, fmt.Errorf("bad format of filter (expected name=value)")
		}
		k = strings.ToLower(strings.TrimSpace(k))
		out[k] = append(out[k], strings.TrimSpace(val))
	}
	return out, nil
}

// listValue shows a repeatable flag as "list" in --help, as docker does.
type listValue struct{ pflag.Value }

func (listValue) Type() string { return "list" }

// helpFlagOnly adds --help without -h, for commands where -h means something else.
func helpFlagOnly(flags *pflag.FlagSet) {
	flags.Bool("help", false, "Print usage")
}
