package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/formatter"
)

const statsTableFormat = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"

var statsHeaders = map[string]string{
	"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
	"MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}

// StatsEntry is one container's figures as `stats` shows them.
type StatsEntry struct {
	container string // as the user named it
	id        string
	name      string
	cpu       float64
	mem       float64
	memLimit  float64
	memPerc   float64
	rx, tx    float64
	blkRead   float64
	blkWrite  float64
	pids      uint64
	trunc     bool
	err       error
}

// Container is the name or id the user gave.
func (e *StatsEntry) Container() string { return e.container }

// ID is the container id, short unless --no-trunc.
func (e *StatsEntry) ID() string {
	if e.trunc {
		return formatter.TruncateID(e.id)
	}
	return e.id
}

// Name is the container name without "/".
func (e *StatsEntry) Name() string {
	if e.err != nil {
		return "--"
	}
	return strings.TrimPrefix(e.name, "/")
}

// CPUPerc is "12.34%".
func (e *StatsEntry) CPUPerc() string {
	if e.err != nil {
		return "--"
	}
	return fmt.Sprintf("%.2f%%", e.cpu)
}

// MemUsage is "1.2MiB / 512MiB".
func (e *StatsEntry) MemUsage() string {
	if e.err != nil {
		return "-- / --"
	}
	return units.BytesSize(e.mem) + " / " + units.BytesSize(e.memLimit)
}

// MemPerc is "0.23%".
func (e *StatsEntry) MemPerc() string {
	if e.err != nil {
		return "--"
	}
	return fmt.Sprintf("%.2f%%", e.memPerc)
}

// NetIO is "received / sent".
func (e *StatsEntry) NetIO() string {
	if e.err != nil {
		return "--"
	}
	return units.HumanSizeWithPrecision(e.rx, 3) + " / " + units.HumanSizeWithPrecision(e.tx, 3)
}

// BlockIO is "read / written".
func (e *StatsEntry) BlockIO() string {
	if e.err != nil {
		return "--"
	}
	return units.HumanSizeWithPrecision(e.blkRead, 3) + " / " + units.HumanSizeWithPrecision(e.blkWrite, 3)
}

// PIDs is the number of processes.
func (e *StatsEntry) PIDs() string {
	if e.err != nil {
		return "--"
	}
	return fmt.Sprint(e.pids)
}

// MarshalJSON renders the row as its template fields.
func (e *StatsEntry) MarshalJSON() ([]byte, error) { return json.Marshal(formatter.FieldMap(e)) }

// statsEntry computes docker's figures from one sample: CPU from the delta to the previous sample,
// memory without the inactive page cache (cgroup v1 total_inactive_file, v2 inactive_file).
func statsEntry(container string, s container.StatsResponse, trunc bool) *StatsEntry {
	e := &StatsEntry{container: container, id: s.ID, name: s.Name, trunc: trunc, pids: s.PidsStats.Current}
	cpuDelta := float64(s.CPUStats.CPUUsage.TotalUsage) - float64(s.PreCPUStats.CPUUsage.TotalUsage)
	sysDelta := float64(s.CPUStats.SystemUsage) - float64(s.PreCPUStats.SystemUsage)
	online := float64(s.CPUStats.OnlineCPUs)
	if online == 0 {
		online = float64(len(s.CPUStats.CPUUsage.PercpuUsage))
	}
	if sysDelta > 0 && cpuDelta > 0 {
		e.cpu = cpuDelta / sysDelta * online * 100
	}
	m := s.MemoryStats
	e.mem = float64(m.Usage)
	if v, ok := m.Stats["total_inactive_file"]; ok && v < m.Usage {
		e.mem = float64(m.Usage - v)
	} else if v := m.Stats["inactive_file"]; v < m.Usage {
		e.mem = float64(m.Usage - v)
	}
	e.memLimit = float64(m.Limit)
	if m.Limit != 0 {
		e.memPerc = e.mem / e.memLimit * 100
	}
	for _, n := range s.Networks {
		e.rx += float64(n.RxBytes)
		e.tx += float64(n.TxBytes)
	}
	for _, b := range s.BlkioStats.IoServiceBytesRecursive {
		switch strings.ToLower(b.Op) {
		case "read":
			e.blkRead += float64(b.Value)
		case "write":
			e.blkWrite += float64(b.Value)
		}
	}
	return e
}

func newStatsCommand(c *CLI) *cobra.Command {
	var all, noStream, noTrunc bool
	var format string
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a live stream of container(s) resource usage statistics",
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			names := args
			if len(names) == 0 {
				res, err := api.ContainerList(ctx, client.ContainerListOptions{All: all})
				if err != nil {
					return err
				}
				for _, s := range res.Items {
					names = append(names, s.ID)
				}
			}
			if format == "" || format == formatter.TableFormatKey {
				format = statsTableFormat
			}
			return c.runStats(ctx, api, names, !noStream, !noTrunc, formatter.Format(format), len(args) > 0)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	flags.BoolVar(&noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	flags.BoolVar(&noTrunc, "no-trunc", false, "Do not truncate output")
	flags.StringVar(&format, "format", "", "Format output using a custom template")
	return cmd
}

// runStats samples every container (once, or continuously with a redraw every half second).
// Named containers that fail are errors; listed ones that go away are dropped.
func (c *CLI) runStats(ctx context.Context, api *client.Client, names []string, stream, trunc bool, format formatter.Format, named bool) error {
	var mu sync.Mutex
	entries := make([]*StatsEntry, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func(i int, n string) {
			defer wg.Done()
			res, err := api.ContainerStats(ctx, n, client.ContainerStatsOptions{Stream: stream, IncludePreviousSample: !stream})
			if err != nil {
				mu.Lock()
				entries[i] = &StatsEntry{container: n, id: n, trunc: trunc, err: err}
				mu.Unlock()
				return
			}
			defer res.Body.Close()
			dec := json.NewDecoder(res.Body)
			for {
				var s container.StatsResponse
				if err := dec.Decode(&s); err != nil {
					if !errors.Is(err, io.EOF) && ctx.Err() == nil {
						mu.Lock()
						if entries[i] == nil {
							entries[i] = &StatsEntry{container: n, id: n, trunc: trunc, err: err}
						}
						mu.Unlock()
					}
					return
				}
				e := statsEntry(n, s, trunc)
				mu.Lock()
				entries[i] = e
				mu.Unlock()
			}
		}(i, n)
	}
	render := func() (string, error) {
		mu.Lock()
		defer mu.Unlock()
		var rows []any
		var errs []error
		for _, e := range entries {
			if e == nil {
				continue
			}
			if e.err != nil && named && !stream {
				errs = append(errs, errors.New(daemonMessage(e.err)))
				continue
			}
			rows = append(rows, e)
		}
		var buf bytes.Buffer
		if err := formatter.Write(&buf, format, statsHeaders, rows); err != nil {
			return "", err
		}
		return buf.String(), errors.Join(errs...)
	}
	if !stream {
		wg.Wait()
		out, err := render()
		if err != nil {
			// docker shows no table when a named container cannot be read
			return err
		}
		fmt.Fprint(c.out, out)
		return nil
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	term := c.OutIsTerminal()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			out, err := render()
			fmt.Fprint(c.out, out)
			return err
		case <-tick.C:
			out, err := render()
			if err != nil {
				return err
			}
			if term {
				// clear the screen and redraw in place, as docker does
				fmt.Fprint(c.out, "\033[2J\033[H")
			}
			fmt.Fprint(c.out, out)
		}
	}
}
