package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/cli/opts"
)

// updateOptions are update's flags.
type updateOptions struct {
	blkioWeight       uint16
	cpuPeriod         int64
	cpuQuota          int64
	cpuShares         int64
	cpus              opts.NanoCPUs
	cpusetCpus        string
	cpusetMems        string
	memory            opts.MemBytes
	memoryReservation opts.MemBytes
	memorySwap        memSwapBytes
	pidsLimit         int64
	restart           string
}

// memSwapBytes is a size, or -1 for unlimited swap (docker's MemSwapBytes).
type memSwapBytes struct{ opts.MemBytes }

// Set takes "-1" besides what MemBytes takes.
func (m *memSwapBytes) Set(v string) error {
	if v == "-1" {
		m.MemBytes = -1
		return nil
	}
	return m.MemBytes.Set(v)
}

func (m *memSwapBytes) String() string {
	if m.MemBytes == -1 {
		return "-1"
	}
	return m.MemBytes.String()
}

func addUpdateFlags(flags *pflag.FlagSet) *updateOptions {
	o := &updateOptions{}
	flags.Uint16Var(&o.blkioWeight, "blkio-weight", 0, "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)")
	flags.Int64Var(&o.cpuPeriod, "cpu-period", 0, "Limit CPU CFS (Completely Fair Scheduler) period")
	flags.Int64Var(&o.cpuQuota, "cpu-quota", 0, "Limit CPU CFS (Completely Fair Scheduler) quota")
	flags.Int64VarP(&o.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	flags.Var(&o.cpus, "cpus", "Number of CPUs")
	flags.StringVar(&o.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	flags.StringVar(&o.cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	flags.VarP(&o.memory, "memory", "m", "Memory limit")
	flags.Var(&o.memoryReservation, "memory-reservation", "Memory soft limit")
	flags.Var(&o.memorySwap, "memory-swap", "Swap limit equal to memory plus swap: -1 to enable unlimited swap")
	flags.Int64Var(&o.pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	flags.StringVar(&o.restart, "restart", "", "Restart policy to apply when a container exits")
	return o
}

// updateConfig turns the flags into the request, as docker's CLI does:
// at least one flag, a zero value means "unchanged", --pids-limit is sent
// only when given (0 and -1 both mean unlimited).
func updateConfig(flags *pflag.FlagSet, o *updateOptions) (container.UpdateConfig, error) {
	if flags.NFlag() == 0 {
		return container.UpdateConfig{}, errors.New("you must provide one or more flags when using this command")
	}
	var cfg container.UpdateConfig
	if o.restart != "" {
		p, err := opts.ParseRestartPolicy(o.restart)
		if err != nil {
			return container.UpdateConfig{}, err
		}
		cfg.RestartPolicy = p
	}
	cfg.Resources = container.Resources{
		BlkioWeight:       o.blkioWeight,
		CPUPeriod:         o.cpuPeriod,
		CPUQuota:          o.cpuQuota,
		CPUShares:         o.cpuShares,
		NanoCPUs:          o.cpus.Value(),
		CpusetCpus:        o.cpusetCpus,
		CpusetMems:        o.cpusetMems,
		Memory:            o.memory.Value(),
		MemoryReservation: o.memoryReservation.Value(),
		MemorySwap:        o.memorySwap.Value(),
	}
	if flags.Changed("pids-limit") {
		v := o.pidsLimit
		cfg.Resources.PidsLimit = &v
	}
	return cfg, nil
}

func newUpdateCommand(c *CLI) *cobra.Command {
	var o *updateOptions
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Update configuration of one or more containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := updateConfig(cmd.Flags(), o)
			if err != nil {
				return err
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			var warnings []string
			err = c.forEach(args, func(n string) error {
				res, err := api.ContainerUpdate(cmd.Context(), n, client.ContainerUpdateOptions{
					Resources: &cfg.Resources, RestartPolicy: &cfg.RestartPolicy,
				})
				warnings = append(warnings, res.Warnings...)
				return err
			})
			if len(warnings) > 0 {
				fmt.Fprintln(c.out, strings.Join(warnings, "\n"))
			}
			return err
		},
	}
	o = addUpdateFlags(cmd.Flags())
	return cmd
}
