package runtime

import (
	"context"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

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

// ExecProcessSpec builds the process of `docker exec` from the container's
// spec: the exec's Env on top of the container's, User resolved against
// rootfs (the container's user when empty), WorkingDir (the container's
// when empty), Tty and Privileged (every capability).
func ExecProcessSpec(base *specs.Spec, rootfs string, cfg container.ExecCreateRequest) (specs.Process, error) {
	var p specs.Process
	if base == nil || base.Process == nil {
		return p, errdefs.InvalidArgument("exec: the container has no process spec")
	}
	if len(cfg.Cmd) == 0 {
		return p, errdefs.InvalidArgument("No exec command specified")
	}
	bp := base.Process
	p.Args = slices.Clone(cfg.Cmd)
	env := slices.Clone(bp.Env)
	if cfg.Tty && !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "TERM=") }) {
		env = append(env, "TERM=xterm")
	}
	p.Env = MergeEnv(env, cfg.Env)
	p.Cwd = bp.Cwd
	if cfg.WorkingDir != "" {
		if !strings.HasPrefix(cfg.WorkingDir, "/") {
			return p, errdefs.InvalidArgument("the working directory '%s' is invalid, it needs to be an absolute path", cfg.WorkingDir)
		}
		p.Cwd = cfg.WorkingDir
	}
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	p.User = bp.User
	p.User.AdditionalGids = slices.Clone(bp.User.AdditionalGids)
	if cfg.User != "" {
		u, err := ResolveUser(rootfs, cfg.User, nil)
		if err != nil {
			return p, err
		}
		p.User = u
	}
	p.Terminal = cfg.Tty
	if cfg.Tty && cfg.ConsoleSize != nil && cfg.ConsoleSize[0] > 0 && cfg.ConsoleSize[1] > 0 {
		p.ConsoleSize = &specs.Box{Height: cfg.ConsoleSize[0], Width: cfg.ConsoleSize[1]}
	}
	// The container's bounding set (every capability when privileged),
	// effective only when the exec runs as root.
	var bounding []string
	if bp.Capabilities != nil {
		bounding = bp.Capabilities.Bounding
	}
	if cfg.Privileged {
		bounding = currentHost().availCaps
	}
	if bp.Capabilities != nil || cfg.Privileged {
		p.Capabilities = processCaps(bounding, p.User.UID)
	}
	p.Rlimits = slices.Clone(bp.Rlimits)
	p.NoNewPrivileges = bp.NoNewPrivileges
	p.ApparmorProfile = bp.ApparmorProfile
	p.SelinuxLabel = bp.SelinuxLabel
	if bp.OOMScoreAdj != nil {
		v := *bp.OOMScoreAdj
		p.OOMScoreAdj = &v
	}
	return p, nil
}
