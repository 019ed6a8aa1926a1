package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/formatter"
)

// inspectFunc fetches one object's raw JSON; size asks containers for their sizes.
type inspectFunc func(ctx context.Context, api *client.Client, ref string, size bool) ([]byte, error)

var inspectors = map[string]inspectFunc{
	"container": func(ctx context.Context, api *client.Client, ref string, size bool) ([]byte, error) {
		r, err := api.ContainerInspect(ctx, ref, client.ContainerInspectOptions{Size: size})
		return r.Raw, err
	},
	"image": func(ctx context.Context, api *client.Client, ref string, _ bool) ([]byte, error) {
		var buf bytes.Buffer
		_, err := api.ImageInspect(ctx, ref, client.ImageInspectWithRawResponse(&buf))
		return buf.Bytes(), err
	},
	"network": func(ctx context.Context, api *client.Client, ref string, _ bool) ([]byte, error) {
		r, err := api.NetworkInspect(ctx, ref, client.NetworkInspectOptions{})
		return r.Raw, err
	},
	"volume": func(ctx context.Context, api *client.Client, ref string, _ bool) ([]byte, error) {
		r, err := api.VolumeInspect(ctx, ref, client.VolumeInspectOptions{})
		return r.Raw, err
	},
}

// inspectOrder is the order untyped `inspect` tries, moving on only on 404.
var inspectOrder = []string{"container", "image", "network", "volume"}

func newInspectCommand(c *CLI) *cobra.Command {
	var format, typ string
	var size bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short: "Return low-level information on Berth objects",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if typ != "" {
				if _, ok := inspectors[typ]; !ok {
					return fmt.Errorf("%q is not a valid value for --type", typ)
				}
				return c.inspect(cmd.Context(), args, format, []string{typ}, size)
			}
			return c.inspect(cmd.Context(), args, format, inspectOrder, size)
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&format, "format", "f", "", "Format output using a custom template")
	flags.StringVar(&typ, "type", "", "Only inspect objects of the given type")
	flags.BoolVarP(&size, "size", "s", false, "Display total file sizes if the type is container")
	return cmd
}

func newContainerInspectCommand(c *CLI) *cobra.Command {
	return typedInspect(c, "container", "CONTAINER [CONTAINER...]", "Display detailed information on one or more containers")
}

func newImageInspectCommand(c *CLI) *cobra.Command {
	return typedInspect(c, "image", "IMAGE [IMAGE...]", "Display detailed information on one or more images")
}

func typedInspect(c *CLI, typ, use, short string) *cobra.Command {
	var format string
	var size bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] " + use,
		Short: short,
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.inspect(cmd.Context(), args, format, []string{typ}, size)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	if typ == "container" {
		cmd.Flags().BoolVarP(&size, "size", "s", false, "Display total file sizes")
	}
	return cmd
}

// inspect prints the objects as an indented JSON array, or each through the template.
// Untyped lookups try each kind in order and move on only when the daemon says 404.
func (c *CLI) inspect(ctx context.Context, refs []string, format string, kinds []string, size bool) error {
	api, err := c.Client()
	if err != nil {
		return err
	}
	var raws [][]byte
	var errs []error
	for _, ref := range refs {
		var raw []byte
		var lastErr error
		for _, k := range kinds {
			raw, lastErr = inspectors[k](ctx, api, ref, size)
			if lastErr == nil || !cerrdefs.IsNotFound(lastErr) {
				break
			}
		}
		switch {
		case lastErr == nil:
			raws = append(raws, raw)
		case cerrdefs.IsNotFound(lastErr) && len(kinds) > 1:
			errs = append(errs, fmt.Errorf("Error: No such object: %s", ref))
		default:
			errs = append(errs, errors.New(daemonMessage(lastErr)))
		}
	}
	if format == "" {
		if err := writeJSONArray(c, raws); err != nil {
			return err
		}
	} else {
		tmpl, err := formatter.ParseTemplate(strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format))
		if err != nil {
			return err
		}
		if len(raws) == 0 {
			// docker's template inspector flushes an empty line when it rendered nothing
			fmt.Fprintln(c.out)
		}
		for _, raw := range raws {
			var v any
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			if err := dec.Decode(&v); err != nil {
				return fmt.Errorf("cannot decode the daemon's answer: %w", err)
			}
			var buf bytes.Buffer
			if err := tmpl.Execute(&buf, v); err != nil {
				return fmt.Errorf("template parsing error: %w", err)
			}
			buf.WriteString("\n")
			if _, err := c.out.Write(buf.Bytes()); err != nil {
				return err
			}
		}
	}
	return errors.Join(errs...)
}

func writeJSONArray(c *CLI, raws [][]byte) error {
	if len(raws) == 0 {
		_, err := fmt.Fprintln(c.out, "[]")
		return err
	}
	var src bytes.Buffer
	src.WriteString("[")
	for i, r := range raws {
		if i > 0 {
			src.WriteString(",")
		}
		src.Write(bytes.TrimSpace(r))
	}
	src.WriteString("]")
	var out bytes.Buffer
	if err := json.Indent(&out, src.Bytes(), "", "    "); err != nil {
		return fmt.Errorf("cannot indent the daemon's answer: %w", err)
	}
	out.WriteString("\n")
	_, err := c.out.Write(out.Bytes())
	return err
}
