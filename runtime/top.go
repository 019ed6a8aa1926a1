package runtime

import (
	"context"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/errdefs"
)

// Top runs the host's ps with psArgs (default "-ef") and keeps the header
// and the rows of the container's processes, as dockerd does.
func (r *Runtime) Top(ctx context.Context, id, psArgs string) (container.TopResponse, error) {
	var resp container.TopResponse
	if psArgs == "" {
		psArgs = "-ef"
	}
	args := strings.Fields(psArgs)
	if err := validatePSArgs(args); err != nil {
		return resp, err
	}
	pids, err := r.Pids(ctx, id)
	if err != nil {
		return resp, err
	}
	out, err := exec.CommandContext(ctx, "ps", args...).Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		return resp, errdefs.InvalidArgument("Error running ps: %s", msg)
	}
	return parsePS(out, pids)
}

// validatePSArgs refuses a renamed column header "x=PID..." other than
// pid's own (it would be taken for the PID column), as dockerd does.
func validatePSArgs(args []string) error {
	for i, a := range args {
		if strings.ContainsAny(a, "\x00\n") {
			return errdefs.InvalidArgument("invalid ps argument %q", a)
		}
		if i == 0 {
			continue // "x=PID" needs whitespace before it to be a column spec
		}
		for _, col := range strings.Split(a, ",") {
			k, v, ok := strings.Cut(col, "=")
			if ok && strings.HasPrefix(strings.TrimSpace(v), "PID") && k != "pid" {
				return errdefs.InvalidArgument("specifying \"%s=%s\" is not allowed", k, v)
			}
		}
	}
	return nil
}

// parsePS keeps ps's header and the rows whose PID belongs to pids; thread
// rows ("-" in PID, from ps -m) follow their process.
func parsePS(out []byte, pids []int) (container.TopResponse, error) {
	resp := container.TopResponse{Processes: [][]string{}}
	lines := strings.Split(string(out), "\n")
	if len(lines) == 0 || strings.TrimSpace(lines[0]) == "" {
		return resp, errdefs.InvalidArgument("ps printed nothing")
	}
	resp.Titles = strings.Fields(lines[0])
	pidCol := slices.Index(resp.Titles, "PID")
	if pidCol < 0 {
		return resp, errdefs.InvalidArgument("Couldn't find PID field in ps output")
	}
	keepThreads := false
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) <= pidCol {
			continue
		}
		if f[pidCol] == "-" {
			if keepThreads {
				resp.Processes = append(resp.Processes, row(f, len(resp.Titles)))
			}
			continue
		}
		pid, err := strconv.Atoi(f[pidCol])
		if err != nil {
			return resp, errdefs.InvalidArgument("Unexpected pid '%s': %s", f[pidCol], err)
		}
		keepThreads = slices.Contains(pids, pid)
		if keepThreads {
			resp.Processes = append(resp.Processes, row(f, len(resp.Titles)))
		}
	}
	return resp, nil
}

// row joins the fields past the last title back together: the command
// column holds spaces.
func row(f []string, titles int) []string {
	if len(f) <= titles {
		return f
	}
	out := slices.Clone(f[:titles-1])
	return append(out, strings.Join(f[titles-1:], " "))
}
