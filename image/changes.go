package image

import (
	"path"
	"strings"

	"github.com/berth-dev/berth/errdefs"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
)

// ApplyChanges applies Dockerfile instructions given as `--change` values
// ("CMD [\"sh\"]", "ENV A=b", "WORKDIR /x") to cfg, as `docker import` and
// `docker commit` do. Only the instructions that change configuration are
// allowed: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD,
// STOPSIGNAL, USER, VOLUME, WORKDIR.
func ApplyChanges(cfg *dockerspec.DockerOCIImageConfig, changes []string) error {
	for _, change := range changes {
		if strings.TrimSpace(change) == "" {
			continue
		}
		res, err := parser.Parse(strings.NewReader(change))
		if err != nil {
			return errdefs.InvalidArgument("invalid change %q: %w", change, err)
		}
		for _, node := range res.AST.Children {
			if err := applyChange(cfg, node); err != nil {
				return errdefs.InvalidArgument("invalid change %q: %w", change, err)
			}
		}
	}
	return nil
}

func applyChange(cfg *dockerspec.DockerOCIImageConfig, node *parser.Node) error {
	inst, err := instructions.ParseInstruction(node)
	if err != nil {
		return err
	}
	// Quotes and $VARs (from the config's Env) resolve as in a Dockerfile.
	if ex, ok := inst.(instructions.SupportsSingleWordExpansion); ok {
		lex := shell.NewLex(parser.DefaultEscapeToken)
		env := shell.EnvsFromSlice(cfg.Env)
		if err := ex.Expand(func(word string) (string, error) {
			out, _, err := lex.ProcessWord(word, env)
			return out, err
		}); err != nil {
			return err
		}
	}
	withShell := func(c instructions.ShellDependantCmdLine) []string {
		if !c.PrependShell {
			return append([]string{}, c.CmdLine...)
		}
		sh := cfg.Shell
		if len(sh) == 0 {
			sh = []string{"/bin/sh", "-c"}
		}
		return append(append([]string{}, sh...), strings.Join(c.CmdLine, " "))
	}
	switch c := inst.(type) {
	case *instructions.CmdCommand:
		cfg.Cmd = withShell(c.ShellDependantCmdLine)
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = withShell(c.ShellDependantCmdLine)
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			setEnv(cfg, kv.Key, kv.Value)
		}
	case *instructions.ExposeCommand:
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range c.Ports {
			for _, f := range strings.Fields(p) {
				if !strings.Contains(f, "/") {
					f += "/tcp"
				}
				cfg.ExposedPorts[strings.ToLower(f)] = struct{}{}
			}
		}
	case *instructions.HealthCheckCommand:
		cfg.Healthcheck = c.Health
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
	case *instructions.StopSignalCommand:
		cfg.StopSignal = c.Signal
	case *instructions.UserCommand:
		cfg.User = c.User
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v = strings.TrimSpace(v); v == "" {
				return errdefs.InvalidArgument("VOLUME specified can not be an empty string")
			}
			cfg.Volumes[v] = struct{}{}
		}
	case *instructions.WorkdirCommand:
		wd := c.Path
		if !path.IsAbs(wd) {
			wd = path.Join("/", cfg.WorkingDir, wd)
		}
		cfg.WorkingDir = path.Clean(wd)
	default:
		return errdefs.InvalidArgument("%s is not a valid change command", strings.ToUpper(node.Value))
	}
	return nil
}

func setEnv(cfg *dockerspec.DockerOCIImageConfig, key, value string) {
	kv := key + "=" + value
	for i, e := range cfg.Env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			cfg.Env[i] = kv
			return
		}
	}
	cfg.Env = append(cfg.Env, kv)
}
