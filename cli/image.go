package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/go-units"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/formatter"
)

func humanSize(n uint64) string { return units.HumanSize(float64(n)) }

func newImportCommand(c *CLI) *cobra.Command {
	var changes []string
	var message, platform string
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			src := client.ImageImportSource{SourceName: "-"}
			switch {
			case args[0] == "-":
				src.Source = c.in
			case strings.HasPrefix(args[0], "http://") || strings.HasPrefix(args[0], "https://"):
				src.SourceName = args[0]
			default:
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				src.Source = f
			}
			ref := ""
			if len(args) > 1 {
				ref = args[1]
			}
			o := client.ImageImportOptions{Message: message, Changes: changes}
			if platform != "" {
				p, err := parsePlatform(platform)
				if err != nil {
					return err
				}
				o.Platform = *p
			}
			rc, err := api.ImageImport(cmd.Context(), src, ref, o)
			if err != nil {
				return err
			}
			defer rc.Close()
			return c.displayJSONMessages(rc, c.out)
		},
	}
	flags := cmd.Flags()
	flags.StringArrayVarP(&changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	flags.StringVarP(&message, "message", "m", "", "Set commit message for imported image")
	flags.StringVar(&platform, "platform", "", "Set platform if server is multi-platform capable")
	return cmd
}

func newImagesCommand(c *CLI) *cobra.Command {
	var all, quiet, digests, noTrunc bool
	var format string
	var filters []string
	cmd := &cobra.Command{
		Use:   "images [OPTIONS] [REPOSITORY[:TAG]]",
		Short: "List images",
		Args:  rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			f, err := toFilters(filters)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				f.Add("reference", args[0])
			}
			res, err := api.ImageList(cmd.Context(), client.ImageListOptions{All: all, Filters: f})
			if err != nil {
				return err
			}
			if format == "" && !quiet {
				format = c.Config().ImagesFormat
			}
			if format == "" || format == formatter.TableFormatKey {
				format = formatter.ImageTableFormat
				if digests {
					format = formatter.ImageTableFormatDigests
				}
			}
			if quiet {
				// one id per row, as docker prints it
				format = formatter.QuietIDFormat
			}
			rows := formatter.ImageRows(res.Items, !noTrunc, digests, time.Now())
			return formatter.Write(c.out, formatter.Format(format), formatter.ImageHeaders, rows)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&all, "all", "a", false, "Show all images (default hides intermediate images)")
	flags.BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	flags.BoolVar(&digests, "digests", false, "Show digests")
	flags.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	flags.StringVar(&format, "format", "", "Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')")
	flags.VarP(newFilterValue(&filters), "filter", "f", "Filter output based on conditions provided")
	return cmd
}

func newTagCommand(c *CLI) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			_, err = api.ImageTag(cmd.Context(), client.ImageTagOptions{Source: args[0], Target: args[1]})
			return err
		},
	}
}

func newRmiCommand(c *CLI) *cobra.Command {
	var force, noPrune bool
	cmd := &cobra.Command{
		Use:   "rmi [OPTIONS] IMAGE [IMAGE...]",
		Short: "Remove one or more images",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			var errs []error
			for _, img := range args {
				res, err := api.ImageRemove(cmd.Context(), img, client.ImageRemoveOptions{Force: force, PruneChildren: !noPrune})
				if err != nil {
					errs = append(errs, errors.New(daemonMessage(err)))
					continue
				}
				for _, d := range res.Items {
					if d.Untagged != "" {
						fmt.Fprintf(c.out, "Untagged: %s\n", d.Untagged)
					}
					if d.Deleted != "" {
						fmt.Fprintf(c.out, "Deleted: %s\n", d.Deleted)
					}
				}
			}
			return errors.Join(errs...)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&force, "force", "f", false, "Force removal of the image")
	flags.BoolVar(&noPrune, "no-prune", false, "Do not delete untagged parents")
	return cmd
}

func newHistoryCommand(c *CLI) *cobra.Command {
	var human, quiet, noTrunc bool
	var format string
	cmd := &cobra.Command{
		Use:   "history [OPTIONS] IMAGE",
		Short: "Show the history of an image",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.ImageHistory(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if format == "" && !quiet {
				format = c.Config().HistoryFormat
			}
			if format == "" || format == formatter.TableFormatKey {
				format = formatter.HistoryTableFormat
				if !human {
					format = formatter.HistoryTableFormatNonHuman
				}
			}
			if quiet {
				format = "{{.ID}}"
			}
			now := time.Now()
			rows := make([]any, 0, len(res.Items))
			for _, h := range res.Items {
				rows = append(rows, &formatter.HistoryContext{H: h, Trunc: !noTrunc, Human: human, Now: now})
			}
			return formatter.Write(c.out, formatter.Format(format), formatter.HistoryHeaders, rows)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&human, "human", "H", true, "Print sizes and dates in human readable format")
	flags.BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	flags.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	flags.StringVar(&format, "format", "", "Format output using a custom template")
	return cmd
}

func newSaveCommand(c *CLI) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" && c.OutIsTerminal() {
				return errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			rc, err := api.ImageSave(cmd.Context(), args)
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

func newLoadCommand(c *CLI) *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load an image from a tar archive or STDIN",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader = c.in
			if input != "" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			} else if c.InIsTerminal() {
				return errors.New("requested load from stdin, but stdin is empty")
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			rc, err := api.ImageLoad(cmd.Context(), in, client.ImageLoadWithQuiet(quiet || !c.OutIsTerminal()))
			if err != nil {
				return err
			}
			defer rc.Close()
			return c.displayJSONMessages(rc, c.out)
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&input, "input", "i", "", "Read from tar archive file, instead of STDIN")
	flags.BoolVarP(&quiet, "quiet", "q", false, "Suppress the load output")
	return cmd
}

func newPullCommand(c *CLI) *cobra.Command {
	var platform string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := parsePlatform(platform)
			if err != nil {
				return err
			}
			named, err := reference.ParseNormalizedNamed(args[0])
			if err != nil {
				return err
			}
			if reference.IsNameOnly(named) {
				named = reference.TagNameOnly(named)
				if !quiet {
					fmt.Fprintf(c.out, "Using default tag: %s\n", "latest")
				}
			}
			var out io.Writer = c.out
			if quiet {
				out = io.Discard
			}
			if err := c.pullImage(cmd.Context(), reference.FamiliarString(named), p, out); err != nil {
				return err
			}
			fmt.Fprintln(c.out, named.String())
			return nil
		},
	}
	cmd.Flags().StringVar(&platform, "platform", "", "Set platform if server is multi-platform capable")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	return cmd
}

func newImagePruneCommand(c *CLI) *cobra.Command {
	var all, force bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			warning := "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
			if all {
				warning = "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?"
			}
			if !force && !c.confirm(warning) {
				return nil // docker: a declined prompt is not an error
			}
			out, err := c.pruneImages(cmd, all, filters)
			if err != nil {
				return err
			}
			fmt.Fprint(c.out, out)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(newFilterValue(&filters), "filter", `Provide filter values (e.g. "until=<timestamp>")`)
	return cmd
}

// pruneImages runs image prune (dangling=false with -a) and renders docker's report.
func (c *CLI) pruneImages(cmd *cobra.Command, all bool, filters []string) (string, error) {
	api, err := c.Client()
	if err != nil {
		return "", err
	}
	f, err := toFilters(filters)
	if err != nil {
		return "", err
	}
	res, err := api.ImagePrune(cmd.Context(), client.ImagePruneOptions{Filters: imagePruneFilters(f, all)})
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	printImagesDeleted(&b, res.Report.ImagesDeleted)
	fmt.Fprintf(&b, "Total reclaimed space: %s\n", humanSize(res.Report.SpaceReclaimed))
	return b.String(), nil
}
