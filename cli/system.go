package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/formatter"
	"github.com/berth-dev/berth/version"
)

func newVersionCommand(c *CLI) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the Berth version information",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			sv, serr := api.ServerVersion(cmd.Context(), client.ServerVersionOptions{})
			info := versionInfo{Client: clientVersion{
				Version: version.Version, APIVersion: api.ClientVersion(), DefaultAPIVersion: client.MaxAPIVersion,
				GoVersion: runtime.Version(), GitCommit: version.GitCommit, BuildTime: version.BuildTime,
				Os: runtime.GOOS, Arch: runtime.GOARCH,
			}}
			if serr == nil {
				info.Server = &sv
			}
			if format != "" && serr != nil {
				// docker prints an empty line for the server part it could not reach
				fmt.Fprintln(c.out)
				return serr
			}
			if format != "" {
				if err := formatter.Write(c.out, formatter.Format(format), nil, []any{info}); err != nil {
					return err
				}
			} else {
				writeVersion(c.out, info)
			}
			return serr
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	return cmd
}

type clientVersion struct {
	Version           string
	APIVersion        string `json:"ApiVersion"`
	DefaultAPIVersion string `json:"DefaultAPIVersion,omitempty"`
	GitCommit         string
	GoVersion         string
	Os                string
	Arch              string
	BuildTime         string `json:",omitempty"`
}

type versionInfo struct {
	Client clientVersion
	Server *client.ServerVersionResult
}

func writeVersion(out io.Writer, v versionInfo) {
	w := tabwriter.NewWriter(out, 20, 1, 1, ' ', 0)
	cv := v.Client
	api := cv.APIVersion
	if cv.DefaultAPIVersion != "" && cv.DefaultAPIVersion != cv.APIVersion {
		api += " (downgraded from " + cv.DefaultAPIVersion + ")"
	}
	fmt.Fprintf(w, "Client:\n Version:\t%s\n API version:\t%s\n Go version:\t%s\n Git commit:\t%s\n", cv.Version, api, cv.GoVersion, cv.GitCommit)
	if cv.BuildTime != "" {
		fmt.Fprintf(w, " Built:\t%s\n", cv.BuildTime)
	}
	fmt.Fprintf(w, " OS/Arch:\t%s/%s\n Context:\tdefault\n", cv.Os, cv.Arch)
	if s := v.Server; s != nil {
		fmt.Fprint(w, "\nServer:")
		if s.Platform.Name != "" {
			fmt.Fprint(w, " "+s.Platform.Name)
		}
		fmt.Fprintln(w)
		for _, comp := range s.Components {
			fmt.Fprintf(w, " %s:\n  Version:\t%s\n", comp.Name, comp.Version)
			d := comp.Details
			if comp.Name == "Engine" {
				fmt.Fprintf(w, "  API version:\t%s (minimum version %s)\n", s.APIVersion, s.MinAPIVersion)
				fmt.Fprintf(w, "  Go version:\t%s\n  Git commit:\t%s\n", d["GoVersion"], d["GitCommit"])
				if bt := d["BuildTime"]; bt != "" {
					if t, err := time.Parse(time.RFC3339Nano, bt); err == nil {
						bt = t.Format(time.ANSIC)
					}
					fmt.Fprintf(w, "  Built:\t%s\n", bt)
				}
				fmt.Fprintf(w, "  OS/Arch:\t%s/%s\n  Experimental:\t%s\n", d["Os"], d["Arch"], orDefault(d["Experimental"], "false"))
				continue
			}
			keys := make([]string, 0, len(d))
			for k := range d {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(w, "  %s:\t%s\n", k, d[k])
			}
		}
		if len(s.Components) == 0 {
			fmt.Fprintf(w, " Engine:\n  Version:\t%s\n  API version:\t%s (minimum version %s)\n  OS/Arch:\t%s/%s\n  Experimental:\t%t\n",
				s.Version, s.APIVersion, s.MinAPIVersion, s.Os, s.Arch, s.Experimental)
		}
	}
	_ = w.Flush()
}

func newInfoCommand(c *CLI) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info [OPTIONS]",
		Short: "Display system-wide information",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.Info(cmd.Context(), client.InfoOptions{})
			if err != nil {
				return err
			}
			if format != "" {
				return formatter.Write(c.out, formatter.Format(format), nil, []any{res.Info})
			}
			writeInfo(c.out, res.Info, c.opts.Debug)
			for _, warn := range res.Info.Warnings {
				fmt.Fprintln(c.err, warn)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	return cmd
}

// writeInfo prints `info` in docker's order and wording.
func writeInfo(w io.Writer, i system.Info, clientDebug bool) {
	fmt.Fprintf(w, "Client:\n Version:    %s\n Context:    default\n Debug Mode: %t\n\n", version.Version, clientDebug)
	fmt.Fprintf(w, "Server:\n Containers: %d\n  Running: %d\n  Paused: %d\n  Stopped: %d\n Images: %d\n",
		i.Containers, i.ContainersRunning, i.ContainersPaused, i.ContainersStopped, i.Images)
	fmt.Fprintf(w, " Server Version: %s\n Storage Driver: %s\n", i.ServerVersion, i.Driver)
	for _, kv := range i.DriverStatus {
		fmt.Fprintf(w, "  %s: %s\n", kv[0], kv[1])
	}
	fmt.Fprintf(w, " Logging Driver: %s\n Cgroup Driver: %s\n", i.LoggingDriver, i.CgroupDriver)
	if i.CgroupVersion != "" {
		fmt.Fprintf(w, " Cgroup Version: %s\n", i.CgroupVersion)
	}
	if p := i.Plugins; len(p.Volume)+len(p.Network)+len(p.Authorization)+len(p.Log) > 0 {
		fmt.Fprintln(w, " Plugins:")
		for _, kv := range []struct {
			name  string
			items []string
		}{{"Volume", p.Volume}, {"Network", p.Network}, {"Authorization", p.Authorization}, {"Log", p.Log}} {
			if len(kv.items) > 0 {
				fmt.Fprintf(w, "  %s: %s\n", kv.name, strings.Join(kv.items, " "))
			}
		}
	}
	fmt.Fprintf(w, " Swarm: %s\n", orDefault(string(i.Swarm.LocalNodeState), "inactive"))
	if len(i.Runtimes) > 0 {
		names := make([]string, 0, len(i.Runtimes))
		for n := range i.Runtimes {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(w, " Runtimes: %s\n Default Runtime: %s\n", strings.Join(names, " "), i.DefaultRuntime)
	}
	if i.InitBinary != "" {
		fmt.Fprintf(w, " Init Binary: %s\n", i.InitBinary)
	}
	if i.ContainerdCommit.ID != "" {
		fmt.Fprintf(w, " containerd version: %s\n", i.ContainerdCommit.ID)
	}
	if i.RuncCommit.ID != "" {
		fmt.Fprintf(w, " runc version: %s\n", i.RuncCommit.ID)
	}
	if i.InitBinary != "" {
		fmt.Fprintf(w, " init version: %s\n", i.InitCommit.ID)
	}
	if len(i.SecurityOptions) > 0 {
		fmt.Fprintln(w, " Security Options:")
		for _, o := range i.SecurityOptions {
			// "name=seccomp,profile=default" -> "seccomp" and "Profile: default"
			var name string
			var rest []string
			for _, kv := range strings.Split(o, ",") {
				k, v, _ := strings.Cut(kv, "=")
				if k == "name" {
					name = v
					continue
				}
				rest = append(rest, strings.ToUpper(k[:1])+k[1:]+": "+v)
			}
			if name == "" {
				name = o
			}
			fmt.Fprintf(w, "  %s\n", name)
			for _, r := range rest {
				fmt.Fprintf(w, "   %s\n", r)
			}
		}
	}
	fmt.Fprintf(w, " Kernel Version: %s\n Operating System: %s\n OSType: %s\n Architecture: %s\n CPUs: %d\n Total Memory: %s\n Name: %s\n ID: %s\n Berth Root Dir: %s\n Debug Mode: %t\n Experimental: %t\n",
		i.KernelVersion, i.OperatingSystem, i.OSType, i.Architecture, i.NCPU, units.BytesSize(float64(i.MemTotal)),
		i.Name, i.ID, i.DockerRootDir, i.Debug, i.ExperimentalBuild)
	if len(i.Labels) > 0 {
		fmt.Fprintln(w, " Labels:")
		for _, l := range i.Labels {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	if rc := i.RegistryConfig; rc != nil && len(rc.InsecureRegistryCIDRs) > 0 {
		fmt.Fprintln(w, " Insecure Registries:")
		for _, r := range rc.InsecureRegistryCIDRs {
			fmt.Fprintf(w, "  %s\n", r)
		}
	}
	fmt.Fprintf(w, " Live Restore Enabled: %t\n", i.LiveRestoreEnabled)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func newEventsCommand(c *CLI) *cobra.Command {
	var since, until, format string
	var filters []string
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Get real time events from the server",
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
			now := time.Now()
			o := client.EventsListOptions{Filters: f}
			if since != "" {
				if o.Since, err = getTimestamp(since, now); err != nil {
					return err
				}
			}
			if until != "" {
				if o.Until, err = getTimestamp(until, now); err != nil {
					return err
				}
			}
			var tmpl func(events.Message) error
			if format != "" {
				tmpl = func(m events.Message) error {
					return formatter.Write(c.out, formatter.Format(format), nil, []any{m})
				}
			}
			res := api.Events(cmd.Context(), o)
			for {
				select {
				case m, ok := <-res.Messages:
					if !ok {
						return nil
					}
					if tmpl != nil {
						if err := tmpl(m); err != nil {
							return err
						}
						continue
					}
					fmt.Fprintln(c.out, FormatEvent(m))
				case err := <-res.Err:
					if errors.Is(err, io.EOF) {
						return nil
					}
					return err
				}
			}
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&since, "since", "", "Show all events created since timestamp")
	flags.StringVar(&until, "until", "", "Stream events until this timestamp")
	flags.StringVar(&format, "format", "", "Format output using a custom template")
	flags.VarP(newFilterValue(&filters), "filter", "f", "Filter output based on conditions provided")
	return cmd
}

// FormatEvent is docker's default event line: time, type, action, actor id and sorted attributes.
func FormatEvent(m events.Message) string {
	var sb strings.Builder
	const rfc3339NanoFixed = "2006-01-02T15:04:05.000000000Z07:00"
	if m.TimeNano != 0 {
		sb.WriteString(time.Unix(0, m.TimeNano).Format(rfc3339NanoFixed))
	} else if m.Time != 0 {
		sb.WriteString(time.Unix(m.Time, 0).Format(rfc3339NanoFixed))
	}
	sb.WriteString(" " + string(m.Type) + " " + string(m.Action) + " " + m.Actor.ID)
	if len(m.Actor.Attributes) > 0 {
		keys := make([]string, 0, len(m.Actor.Attributes))
		for k := range m.Actor.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		attrs := make([]string, 0, len(keys))
		for _, k := range keys {
			attrs = append(attrs, k+"="+m.Actor.Attributes[k])
		}
		sb.WriteString(" (" + strings.Join(attrs, ", ") + ")")
	}
	return sb.String()
}

func newDfCommand(c *CLI) *cobra.Command {
	var verbose bool
	var format string
	cmd := &cobra.Command{
		Use:   "df [OPTIONS]",
		Short: "Show Berth disk usage",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			du, err := api.DiskUsage(cmd.Context(), client.DiskUsageOptions{Containers: true, Images: true, Volumes: true, BuildCache: true, Verbose: verbose})
			if err != nil {
				return err
			}
			type row struct {
				Type, TotalCount, Active, Size, Reclaimable string
			}
			mk := func(typ string, total, active, size, reclaim int64) any {
				r := &row{Type: typ, TotalCount: fmt.Sprint(total), Active: fmt.Sprint(active),
					Size: units.HumanSize(float64(size)), Reclaimable: units.HumanSize(float64(reclaim))}
				if size > 0 {
					r.Reclaimable += fmt.Sprintf(" (%d%%)", reclaim*100/size)
				}
				return r
			}
			rows := []any{
				mk("Images", du.Images.TotalCount, du.Images.ActiveCount, du.Images.TotalSize, imagesReclaimable(du.Images)),
				mk("Containers", du.Containers.TotalCount, du.Containers.ActiveCount, du.Containers.TotalSize, du.Containers.Reclaimable),
				mk("Local Volumes", du.Volumes.TotalCount, du.Volumes.ActiveCount, du.Volumes.TotalSize, du.Volumes.Reclaimable),
				mk("Build Cache", du.BuildCache.TotalCount, du.BuildCache.ActiveCount, du.BuildCache.TotalSize, du.BuildCache.Reclaimable),
			}
			if format == "" {
				format = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
			}
			headers := map[string]string{"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}
			return formatter.Write(c.out, formatter.Format(format), headers, rows)
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "Show detailed information on space usage")
	cmd.Flags().StringVar(&format, "format", "", "Format output using a custom template")
	return cmd
}

// imagesReclaimable is docker's figure: the total less what images used by containers hold alone.
func imagesReclaimable(du client.ImagesDiskUsage) int64 {
	if len(du.Items) == 0 {
		return du.Reclaimable
	}
	var used int64
	for _, img := range du.Items {
		if img.Containers == 0 || img.Size == -1 || img.SharedSize == -1 {
			continue
		}
		used += img.Size - img.SharedSize
	}
	return du.TotalSize - used
}

func newSystemPruneCommand(c *CLI) *cobra.Command {
	var all, force, volumes bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused data",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			warn := "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n"
			if volumes {
				warn += "  - all anonymous volumes not used by at least one container\n"
			}
			if all {
				warn += "  - all images without at least one container associated to them\n"
			} else {
				warn += "  - all dangling images\n"
			}
			if all {
				warn += "  - all build cache\n\nAre you sure you want to continue?"
			} else {
				warn += "  - unused build cache\n\nAre you sure you want to continue?"
			}
			if !force && !c.confirm(warn) {
				return nil // docker: a declined prompt is not an error
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			f, err := toFilters(filters)
			if err != nil {
				return err
			}
			var total uint64
			cr, err := api.ContainerPrune(ctx, client.ContainerPruneOptions{Filters: f})
			if err != nil {
				return err
			}
			printDeleted(c.out, "Deleted Containers:", cr.Report.ContainersDeleted, true)
			total += cr.Report.SpaceReclaimed
			nr, err := api.NetworkPrune(ctx, client.NetworkPruneOptions{Filters: f})
			if err != nil {
				return err
			}
			printDeleted(c.out, "Deleted Networks:", nr.Report.NetworksDeleted, true)
			if volumes {
				vr, err := api.VolumePrune(ctx, client.VolumePruneOptions{Filters: f})
				if err != nil {
					return err
				}
				printDeleted(c.out, "Deleted Volumes:", vr.Report.VolumesDeleted, true)
				total += vr.Report.SpaceReclaimed
			}
			ir, err := api.ImagePrune(ctx, client.ImagePruneOptions{Filters: imagePruneFilters(f, all)})
			if err != nil {
				return err
			}
			printImagesDeleted(c.out, ir.Report.ImagesDeleted)
			total += ir.Report.SpaceReclaimed
			br, err := api.BuildCachePrune(ctx, client.BuildCachePruneOptions{All: all, Filters: f})
			switch {
			case err == nil:
				printDeleted(c.out, "Deleted build cache objects:", br.Report.CachesDeleted, true)
				total += br.Report.SpaceReclaimed
			case cerrdefs.IsNotFound(err) || cerrdefs.IsNotImplemented(err):
				// a daemon without a build cache has nothing to prune
			default:
				return err
			}
			fmt.Fprintf(c.out, "Total reclaimed space: %s\n", humanSize(total))
			return nil
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&all, "all", "a", false, "Remove all unused images not just dangling ones")
	flags.BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	flags.BoolVar(&volumes, "volumes", false, "Prune anonymous volumes")
	flags.Var(newFilterValue(&filters), "filter", `Provide filter values (e.g. "label=<key>=<value>")`)
	return cmd
}

// printDeleted writes a prune report's list as docker does: the header,
// one line per item, and (blank) an empty line; nothing for no items.
func printDeleted(w io.Writer, header string, items []string, blank bool) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintln(w, header)
	for _, it := range items {
		fmt.Fprintln(w, it)
	}
	if blank {
		fmt.Fprintln(w)
	}
}

// printImagesDeleted writes an image prune's list: untagged and deleted lines.
func printImagesDeleted(w io.Writer, deleted []image.DeleteResponse) {
	if len(deleted) == 0 {
		return
	}
	fmt.Fprintln(w, "Deleted Images:")
	for _, d := range deleted {
		if d.Untagged != "" {
			fmt.Fprintf(w, "untagged: %s\n", d.Untagged)
		}
		if d.Deleted != "" {
			fmt.Fprintf(w, "deleted: %s\n", d.Deleted)
		}
	}
	fmt.Fprintln(w)
}

// imagePruneFilters adds docker's dangling filter: dangling images only,
// or (all) every unused image.
func imagePruneFilters(f client.Filters, all bool) client.Filters {
	out := f.Clone()
	if out == nil {
		out = client.Filters{}
	}
	if all {
		out.Add("dangling", "false")
	} else {
		out.Add("dangling", "true")
	}
	return out
}

// CheckProblem is one inconsistency berthd's consistency check found.
type CheckProblem struct {
	Kind   string
	Object string
	Detail string
}

// CheckReport is the answer of POST /berth/system/check.
type CheckReport struct {
	Checked  int
	Problems []CheckProblem
	Repaired int
}

func newSystemCheckCommand(c *CLI) *cobra.Command {
	var repair bool
	cmd := &cobra.Command{
		Use:   "check [OPTIONS]",
		Short: "Check the daemon's store for inconsistencies (and repair them with --repair)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			rep, err := systemCheck(cmd.Context(), api, repair)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(c.out, 10, 1, 3, ' ', 0)
			if len(rep.Problems) > 0 {
				fmt.Fprintln(w, "KIND\tOBJECT\tDETAIL")
				for _, p := range rep.Problems {
					fmt.Fprintf(w, "%s\t%s\t%s\n", p.Kind, p.Object, p.Detail)
				}
			}
			_ = w.Flush()
			fmt.Fprintf(c.out, "Checked %d objects: %d problems, %d repaired\n", rep.Checked, len(rep.Problems), rep.Repaired)
			if len(rep.Problems) > rep.Repaired {
				return StatusError{StatusCode: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "Repair what can be repaired")
	return cmd
}

// systemCheck calls Berth's own endpoint over the client's dialer (it is not part of the Engine API).
func systemCheck(ctx context.Context, api *client.Client, repair bool) (CheckReport, error) {
	dial := api.Dialer()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
	}}
	u := "http://berth/berth/system/check"
	if repair {
		u += "?repair=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return CheckReport{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return CheckReport{}, fmt.Errorf("Cannot connect to the Berth daemon at %s. Is the berth daemon running?", api.DaemonHost())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return CheckReport{}, fmt.Errorf("reading the system check answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Message string }
		if json.Unmarshal(body, &e) == nil && e.Message != "" {
			return CheckReport{}, fmt.Errorf("Error response from daemon: %s", e.Message)
		}
		return CheckReport{}, fmt.Errorf("Error response from daemon: %s", bytes.TrimSpace(body))
	}
	var rep CheckReport
	if err := json.Unmarshal(body, &rep); err != nil {
		return CheckReport{}, fmt.Errorf("cannot decode the system check answer: %w", err)
	}
	return rep, nil
}
