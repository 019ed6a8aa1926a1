package cli

import (
	"errors"

	"fmt"
	cerrdefs "github.com/containerd/errdefs"
	"net/netip"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/formatter"
	"github.com/berth-dev/berth/cli/opts"
)

// NetworkContext is one `network ls` row.
type NetworkContext struct {
	N     network.Summary
	Trunc bool
}

// ID is the network id, short unless --no-trunc.
func (c *NetworkContext) ID() string {
	if c.Trunc {
		return formatter.TruncateID(c.N.ID)
	}
	return c.N.ID
}

// Name is the network's name.
func (c *NetworkContext) Name() string { return c.N.Name }

// Driver is the network driver.
func (c *NetworkContext) Driver() string { return c.N.Driver }

// Scope is local or swarm.
func (c *NetworkContext) Scope() string { return c.N.Scope }

// IPv4 says whether IPv4 is on.
func (c *NetworkContext) IPv4() string { return fmt.Sprint(c.N.EnableIPv4) }

// IPv6 says whether IPv6 is on.
func (c *NetworkContext) IPv6() string { return fmt.Sprint(c.N.EnableIPv6) }

// Internal says whether the network is internal.
func (c *NetworkContext) Internal() string { return fmt.Sprint(c.N.Internal) }

// CreatedAt is the creation time.
func (c *NetworkContext) CreatedAt() string { return c.N.Created.String() }

// Labels is "k=v,...".
func (c *NetworkContext) Labels() string { return joinKV(c.N.Labels) }

// Label is one label's value.
func (c *NetworkContext) Label(name string) string { return c.N.Labels[name] }

// VolumeContext is one `volume ls` row.
type VolumeContext struct{ V volume.Volume }

// Name is the volume's name.
func (c *VolumeContext) Name() string { return c.V.Name }

// Driver is the volume driver.
func (c *VolumeContext) Driver() string { return c.V.Driver }

// Scope is the volume's scope.
func (c *VolumeContext) Scope() string { return c.V.Scope }

// Mountpoint is where the volume lives on the host.
func (c *VolumeContext) Mountpoint() string { return c.V.Mountpoint }

// Labels is "k=v,...".
func (c *VolumeContext) Labels() string { return joinKV(c.V.Labels) }

// Label is one label's value.
func (c *VolumeContext) Label(name string) string { return c.V.Labels[name] }

func joinKV(m map[string]string) string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

var networkHeaders = map[string]string{"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
	"IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "CreatedAt": "CREATED AT", "Labels": "LABELS"}

var volumeHeaders = map[string]string{"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
	"Mountpoint": "MOUNTPOINT", "Labels": "LABELS"}

func newNetworkGroup(c *CLI) *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "Manage networks", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	cmd.AddCommand(newNetworkCreateCommand(c), newNetworkLsCommand(c), newNetworkRmCommand(c),
		typedInspect(c, "network", "NETWORK [NETWORK...]", "Display detailed information on one or more networks"),
		newNetworkConnectCommand(c), newNetworkDisconnectCommand(c), newNetworkPruneCommand(c))
	return cmd
}

func newNetworkCreateCommand(c *CLI) *cobra.Command {
	var driver, subnet, gateway, ipRange string
	var internal, attachable, ipv6 bool
	var labels, optsList []string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			o := client.NetworkCreateOptions{
				Driver: driver, Internal: internal, Attachable: attachable,
				Labels: opts.ConvertKVStringsToMap(labels), Options: opts.ConvertKVStringsToMap(optsList),
			}
			if cmd.Flags().Changed("ipv6") {
				o.EnableIPv6 = &ipv6
			}
			if subnet != "" || gateway != "" || ipRange != "" {
				cfg := network.IPAMConfig{}
				if subnet != "" {
					if cfg.Subnet, err = netip.ParsePrefix(subnet); err != nil {
						return fmt.Errorf("invalid subnet %s: %w", subnet, err)
					}
				}
				if gateway != "" {
					if subnet == "" {
						return errors.New("every ip-range or gateway must have a corresponding subnet")
					}
					if cfg.Gateway, err = netip.ParseAddr(gateway); err != nil {
						return fmt.Errorf("invalid gateway %s: %w", gateway, err)
					}
				}
				if ipRange != "" {
					if subnet == "" {
						return errors.New("every ip-range or gateway must have a corresponding subnet")
					}
					if cfg.IPRange, err = netip.ParsePrefix(ipRange); err != nil {
						return fmt.Errorf("invalid ip-range %s: %w", ipRange, err)
					}
				}
				o.IPAM = &network.IPAM{Driver: "default", Config: []network.IPAMConfig{cfg}}
			}
			res, err := api.NetworkCreate(cmd.Context(), args[0], o)
			if err != nil {
				return err
			}
			for _, w := range res.Warning {
				fmt.Fprintf(c.err, "WARNING: %s\n", w)
			}
			fmt.Fprintln(c.out, res.ID)
			return nil
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&driver, "driver", "d", "bridge", "Driver to manage the Network")
	flags.StringVar(&subnet, "subnet", "", "Subnet in CIDR format that represents a network segment")
	flags.StringVar(&gateway, "gateway", "", "IPv4 or IPv6 Gateway for the master subnet")
	flags.StringVar(&ipRange, "ip-range", "", "Allocate container ip from a sub-range")
	flags.BoolVar(&internal, "internal", false, "Restrict external access to the network")
	flags.BoolVar(&attachable, "attachable", false, "Enable manual container attachment")
	flags.BoolVar(&ipv6, "ipv6", false, "Enable or disable IPv6 networking")
	flags.StringArrayVar(&labels, "label", nil, "Set metadata on a network")
	flags.StringArrayVarP(&optsList, "opt", "o", nil, "Set driver specific options")
	return cmd
}

func newNetworkLsCommand(c *CLI) *cobra.Command {
	var quiet, noTrunc bool
	var format string
	var filters []string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			f, err := toFilters(filters)
			if err != nil {
				return err
			}
			res, err := api.NetworkList(cmd.Context(), client.NetworkListOptions{Filters: f})
			if err != nil {
				return err
			}
			sort.Slice(res.Items, func(i, j int) bool { return formatter.NaturalLess(res.Items[i].Name, res.Items[j].Name) })
			if format == "" || format == formatter.TableFormatKey {
				format = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
			}
			if quiet {
				format = formatter.QuietIDFormat
			}
			rows := make([]any, 0, len(res.Items))
			for _, n := range res.Items {
				rows = append(rows, &NetworkContext{N: n, Trunc: !noTrunc})
			}
			return formatter.Write(c.out, formatter.Format(format), networkHeaders, rows)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&quiet, "quiet", "q", false, "Only display network IDs")
	flags.BoolVar(&noTrunc, "no-trunc", false, "Do not truncate the output")
	flags.StringVar(&format, "format", "", "Format output using a custom template")
	flags.VarP(newFilterValue(&filters), "filter", "f", `Provide filter values (e.g. "driver=bridge")`)
	return cmd
}

func newNetworkRmCommand(c *CLI) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			failed := false
			for _, n := range args {
				if _, err := api.NetworkRemove(cmd.Context(), n, client.NetworkRemoveOptions{}); err != nil {
					if force && cerrdefs.IsNotFound(err) {
						continue
					}
					// docker reports each failure as it goes, then a bare status
					fmt.Fprintln(c.err, daemonMessage(err))
					failed = true
					continue
				}
				fmt.Fprintln(c.out, n)
			}
			if failed {
				return errors.New("exit status 1")
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not error if the network does not exist")
	return cmd
}

func newNetworkConnectCommand(c *CLI) *cobra.Command {
	var aliases []string
	var ip, ip6 string
	cmd := &cobra.Command{
		Use:   "connect [OPTIONS] NETWORK CONTAINER",
		Short: "Connect a container to a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			ep := &network.EndpointSettings{Aliases: aliases}
			if ip != "" || ip6 != "" {
				ep.IPAMConfig = &network.EndpointIPAMConfig{}
				if ip != "" {
					if ep.IPAMConfig.IPv4Address, err = netip.ParseAddr(ip); err != nil {
						return fmt.Errorf("invalid IPv4 address %s: %w", ip, err)
					}
				}
				if ip6 != "" {
					if ep.IPAMConfig.IPv6Address, err = netip.ParseAddr(ip6); err != nil {
						return fmt.Errorf("invalid IPv6 address %s: %w", ip6, err)
					}
				}
			}
			_, err = api.NetworkConnect(cmd.Context(), args[0], client.NetworkConnectOptions{Container: args[1], EndpointConfig: ep})
			return err
		},
	}
	flags := cmd.Flags()
	flags.StringArrayVar(&aliases, "alias", nil, "Add network-scoped alias for the container")
	flags.StringVar(&ip, "ip", "", "IPv4 address (e.g., \"172.30.100.104\")")
	flags.StringVar(&ip6, "ip6", "", "IPv6 address (e.g., \"2001:db8::33\")")
	return cmd
}

func newNetworkDisconnectCommand(c *CLI) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "disconnect [OPTIONS] NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			_, err = api.NetworkDisconnect(cmd.Context(), args[0], client.NetworkDisconnectOptions{Container: args[1], Force: force})
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the container to disconnect from a network")
	return cmd
}

func newNetworkPruneCommand(c *CLI) *cobra.Command {
	var force bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all unused networks",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force && !c.confirm("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?") {
				return nil
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			f, err := toFilters(filters)
			if err != nil {
				return err
			}
			res, err := api.NetworkPrune(cmd.Context(), client.NetworkPruneOptions{Filters: f})
			if err != nil {
				return err
			}
			printDeleted(c.out, "Deleted Networks:", res.Report.NetworksDeleted, false) // docker: no blank line, no total
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(newFilterValue(&filters), "filter", `Provide filter values (e.g. "until=<timestamp>")`)
	return cmd
}

func newVolumeGroup(c *CLI) *cobra.Command {
	cmd := &cobra.Command{Use: "volume", Short: "Manage volumes", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	cmd.AddCommand(newVolumeCreateCommand(c), newVolumeLsCommand(c), newVolumeRmCommand(c),
		typedInspect(c, "volume", "VOLUME [VOLUME...]", "Display detailed information on one or more volumes"),
		newVolumePruneCommand(c))
	return cmd
}

func newVolumeCreateCommand(c *CLI) *cobra.Command {
	var driver, name string
	var labels, optsList []string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if name != "" {
					return errors.New("conflicting options: cannot specify a volume-name through both --name and as a positional arg")
				}
				name = args[0]
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.VolumeCreate(cmd.Context(), client.VolumeCreateOptions{
				Name: name, Driver: driver, Labels: opts.ConvertKVStringsToMap(labels), DriverOpts: opts.ConvertKVStringsToMap(optsList),
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, res.Volume.Name)
			return nil
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&driver, "driver", "d", "local", "Specify volume driver name")
	flags.StringVar(&name, "name", "", "Specify volume name")
	_ = flags.MarkHidden("name")
	flags.StringArrayVar(&labels, "label", nil, "Set metadata for a volume")
	flags.StringArrayVarP(&optsList, "opt", "o", nil, "Set driver specific options")
	return cmd
}

func newVolumeLsCommand(c *CLI) *cobra.Command {
	var quiet bool
	var format string
	var filters []string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			f, err := toFilters(filters)
			if err != nil {
				return err
			}
			res, err := api.VolumeList(cmd.Context(), client.VolumeListOptions{Filters: f})
			if err != nil {
				return err
			}
			sort.Slice(res.Items, func(i, j int) bool { return formatter.NaturalLess(res.Items[i].Name, res.Items[j].Name) })
			if format == "" || format == formatter.TableFormatKey {
				format = "table {{.Driver}}\t{{.Name}}"
			}
			if quiet {
				format = "{{.Name}}"
			}
			rows := make([]any, 0, len(res.Items))
			for _, v := range res.Items {
				rows = append(rows, &VolumeContext{V: v})
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(c.err, w)
			}
			return formatter.Write(c.out, formatter.Format(format), volumeHeaders, rows)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	flags.StringVar(&format, "format", "", "Format output using a custom template")
	flags.VarP(newFilterValue(&filters), "filter", "f", `Provide filter values (e.g. "dangling=true")`)
	return cmd
}

func newVolumeRmCommand(c *CLI) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Args:    requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			return c.forEach(args, func(n string) error {
				_, err := api.VolumeRemove(cmd.Context(), n, client.VolumeRemoveOptions{Force: force})
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of one or more volumes")
	return cmd
}

func newVolumePruneCommand(c *CLI) *cobra.Command {
	var force, all bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused local volumes",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			warn := "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue?"
			if all {
				warn = "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue?"
			}
			if !force && !c.confirm(warn) {
				return nil
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			f, err := toFilters(filters)
			if err != nil {
				return err
			}
			if all {
				f.Add("all", "true")
			}
			res, err := api.VolumePrune(cmd.Context(), client.VolumePruneOptions{Filters: f})
			if err != nil {
				return err
			}
			printDeleted(c.out, "Deleted Volumes:", res.Report.VolumesDeleted, true)
			fmt.Fprintf(c.out, "Total reclaimed space: %s\n", humanSize(res.Report.SpaceReclaimed))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(newFilterValue(&filters), "filter", `Provide filter values (e.g. "label=<label>")`)
	return cmd
}
