package runtime

import (
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/errdefs"
)

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
