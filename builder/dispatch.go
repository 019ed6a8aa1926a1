package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/berth-dev/berth/errdefs"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// buildRun is one build's state.
type buildRun struct {
	b      *Builder
	bc     *buildContext
	opts   Options
	out    io.Writer
	escape rune
	stages []instructions.Stage

	meta     map[string]string // global ARG values (and the built-in platform args)
	bases    []string          // each stage's FROM, expanded
	deps     [][]int           // stages each stage reads from
	usedArgs map[string]bool

	cacheFrom []*Image // --cache-from images found locally

	mu        sync.Mutex
	total     int
	firstStep map[int]int // stage -> number of its FROM step
	results   []*stageState
}

// stageState is a stage as it is built.
type stageState struct {
	index   int
	image   digest.Digest // "" while the stage is an empty scratch
	config  dockerspec.DockerOCIImageConfig
	args    map[string]string // ARGs declared in the stage, with values
	argList []string          // their declaration order
	cmdSet  bool
	step    int // steps printed so far
}

// plan is the stages a build runs, in order, and its step count.
type plan struct {
	order  []int
	target int
}

func builtinArgs() map[string]string {
	p := "linux/" + runtime.GOARCH
	return map[string]string{
		"TARGETPLATFORM": p, "TARGETOS": "linux", "TARGETARCH": runtime.GOARCH, "TARGETVARIANT": "",
		"BUILDPLATFORM": p, "BUILDOS": "linux", "BUILDARCH": runtime.GOARCH, "BUILDVARIANT": "",
	}
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}

func (r *buildRun) lex() *shell.Lex { return shell.NewLex(r.escape) }

// resolveMeta evaluates the ARGs before the first FROM.
func (r *buildRun) resolveMeta(metaArgs []instructions.ArgCommand) error {
	r.meta = builtinArgs()
	lex := r.lex()
	for i := range metaArgs {
		a := &metaArgs[i]
		err := a.Expand(func(w string) (string, error) {
			s, _, err := lex.ProcessWord(w, shell.EnvsFromSlice(envList(r.meta)))
			return s, err
		})
		if err != nil {
			return errdefs.InvalidArgument("%s: %v", lineOf(a), err)
		}
		for _, kv := range a.Args {
			if v, ok := r.opts.BuildArgs[kv.Key]; ok && v != nil {
				r.meta[kv.Key] = *v
				r.usedArgs[kv.Key] = true
			} else if kv.Value != nil {
				r.meta[kv.Key] = *kv.Value
			} else if ok {
				r.usedArgs[kv.Key] = true
			}
		}
	}
	return nil
}

func lineOf(c interface{ Location() []parser.Range }) string {
	if loc := c.Location(); len(loc) > 0 {
		return "line " + strconv.Itoa(loc[0].Start.Line)
	}
	return "line ?"
}

// stageByName finds a stage by name or index among the first n stages.
func (r *buildRun) stageByName(name string, n int) (int, bool) {
	if i, err := strconv.Atoi(name); err == nil {
		return i, i >= 0 && i < n
	}
	for i := 0; i < n && i < len(r.stages); i++ {
		if r.stages[i].Name != "" && strings.EqualFold(r.stages[i].Name, name) {
			return i, true
		}
	}
	return 0, false
}

// plan picks the target stage and the stages it needs.
func (r *buildRun) plan() (*plan, error) {
	target := len(r.stages) - 1
	if r.opts.Target != "" {
		found := false
		for i, s := range r.stages {
			if strings.EqualFold(s.Name, r.opts.Target) {
				target, found = i, true
				break
			}
		}
		if !found {
			return nil, errdefs.InvalidArgument("failed to reach build target %s in Dockerfile", r.opts.Target)
		}
	}
	if len(r.opts.Labels) > 0 {
		for _, k := range slices.Sorted(maps.Keys(r.opts.Labels)) {
			r.stages[target].AddCommand(instructions.NewLabelCommand(k, r.opts.Labels[k], true))
		}
	}
	lex := r.lex()
	metaEnv := shell.EnvsFromSlice(envList(r.meta))
	r.bases = make([]string, len(r.stages))
	r.deps = make([][]int, len(r.stages))
	for i, s := range r.stages {
		base, _, err := lex.ProcessWord(s.BaseName, metaEnv)
		if err != nil {
			return nil, errdefs.InvalidArgument("line %d: FROM %s: %v", fromLine(s), s.BaseName, err)
		}
		if base == "" {
			return nil, errdefs.InvalidArgument("line %d: FROM needs an image name", fromLine(s))
		}
		r.bases[i] = base
		if j, ok := r.stageByName(base, i); ok && !isNumber(base) {
			r.deps[i] = append(r.deps[i], j)
		}
		for _, c := range s.Commands {
			cc, ok := c.(*instructions.CopyCommand)
			if !ok || cc.From == "" {
				continue
			}
			from, _, err := lex.ProcessWord(cc.From, metaEnv)
			if err != nil {
				return nil, errdefs.InvalidArgument("%s: COPY --from=%s: %v", lineOf(cc), cc.From, err)
			}
			if j, ok := r.stageByName(from, i); ok {
				r.deps[i] = append(r.deps[i], j)
			} else if isNumber(from) {
				return nil, errdefs.InvalidArgument("%s: COPY --from=%s: no such stage before this one", lineOf(cc), from)
			}
		}
	}
	need := map[int]bool{}
	var visit func(int)
	visit = func(i int) {
		if need[i] {
			return
		}
		need[i] = true
		for _, j := range r.deps[i] {
			visit(j)
		}
	}
	visit(target)
	p := &plan{target: target}
	r.firstStep = map[int]int{}
	for i := range r.stages {
		if need[i] {
			p.order = append(p.order, i)
			r.firstStep[i] = r.total + 1
			r.total += 1 + len(r.stages[i].Commands)
		}
	}
	r.results = make([]*stageState, len(r.stages))
	return p, nil
}

func isNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

func fromLine(s instructions.Stage) int {
	if len(s.Location) > 0 {
		return s.Location[0].Start.Line
	}
	return 0
}

// execute builds the planned stages; independent ones run in parallel, and
// each stage's output is shown whole, in Dockerfile order.
func (r *buildRun) execute(ctx context.Context, p *plan) (digest.Digest, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type slot struct {
		done chan struct{}
		buf  *stageOutput
		err  error
	}
	slots := map[int]*slot{}
	for _, i := range p.order {
		slots[i] = &slot{done: make(chan struct{}), buf: newStageOutput()}
	}
	for _, i := range p.order {
		go func(i int, s *slot) {
			defer close(s.done)
			for _, j := range r.deps[i] {
				d := slots[j]
				select {
				case <-d.done:
				case <-ctx.Done():
					s.err = ctx.Err()
					return
				}
				if d.err != nil {
					s.err = errSkipped
					return
				}
			}
			st, err := r.runStage(ctx, i, s.buf)
			if err != nil {
				s.err = err
				cancel()
				return
			}
			r.mu.Lock()
			r.results[i] = st
			r.mu.Unlock()
		}(i, slots[i])
	}
	// Stream stages in order: the first unfinished one live, later ones
	// once it is done.
	var failed, canceled error
	for _, i := range p.order {
		s := slots[i]
		s.buf.pipeTo(r.out)
		<-s.done
		switch {
		case s.err == nil || s.err == errSkipped:
		case errors.Is(s.err, context.Canceled):
			// cancelled because another stage failed, or by the client
			canceled = s.err
		case failed == nil:
			failed = s.err
		}
	}
	if failed != nil {
		return "", failed
	}
	if canceled != nil {
		return "", canceled
	}
	st := r.results[p.target]
	if st.image == "" {
		return "", errdefs.InvalidArgument("No image was generated. Is your Dockerfile empty?")
	}
	return st.image, nil
}

var errSkipped = fmt.Errorf("stage skipped")

// stageOutput buffers a stage's output until it may be shown, then passes
// it through.
type stageOutput struct {
	mu   sync.Mutex
	buf  []byte
	live io.Writer
}

func newStageOutput() *stageOutput { return &stageOutput{} }

func (o *stageOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.live != nil {
		o.live.Write(p)
		return len(p), nil
	}
	o.buf = append(o.buf, p...)
	return len(p), nil
}

func (o *stageOutput) pipeTo(w io.Writer) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w.Write(o.buf)
	o.buf = nil
	o.live = w
}

// nextStep prints a step line; stages number their steps from their place
// in the plan, so parallel stages count as if run in order.
func (r *buildRun) nextStep(out io.Writer, st *stageState, text string) {
	st.step++
	fmt.Fprintf(out, "Step %d/%d : %s\n", r.firstStep[st.index]+st.step-1, r.total, text)
}

func copyConfig(c dockerspec.DockerOCIImageConfig) dockerspec.DockerOCIImageConfig {
	var out dockerspec.DockerOCIImageConfig
	b, _ := json.Marshal(c)
	json.Unmarshal(b, &out)
	return out
}

func (r *buildRun) runStage(ctx context.Context, i int, out io.Writer) (*stageState, error) {
	s := r.stages[i]
	st := &stageState{index: i, args: map[string]string{}}
	r.nextStep(out, st, s.SourceCode)
	base := r.bases[i]
	var triggers []string
	if j, ok := r.stageByName(base, i); ok && !isNumber(base) {
		r.mu.Lock()
		src := r.results[j]
		r.mu.Unlock()
		st.image, st.config = src.image, copyConfig(src.config)
	} else if strings.EqualFold(base, "scratch") {
		st.config = dockerspec.DockerOCIImageConfig{}
	} else {
		if s.Platform != "" {
			p, _, err := r.lex().ProcessWord(s.Platform, shell.EnvsFromSlice(envList(r.meta)))
			if err == nil {
				err = checkPlatform(p)
			}
			if err != nil {
				return nil, fmt.Errorf("line %d: FROM --platform=%s: %w", fromLine(s), s.Platform, err)
			}
		}
		img, err := r.b.backend.GetImage(ctx, base)
		if r.opts.Pull || errdefs.IsNotFound(err) {
			// As Docker: a missing base is pulled; --pull always pulls and
			// fails when the pull does.
			pulled, perr := r.b.backend.PullImage(ctx, base, r.opts.Auth, out)
			if perr != nil {
				if errdefs.IsNotFound(err) {
					return nil, fmt.Errorf("line %d: FROM %s: not found locally, and the pull failed: %w", fromLine(s), base, perr)
				}
				return nil, fmt.Errorf("line %d: FROM %s: pull: %w", fromLine(s), base, perr)
			}
			img, err = pulled, nil
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: FROM %s: %w", fromLine(s), base, err)
		}
		st.image, st.config = img.ID, copyConfig(img.Config.Config)
		triggers = st.config.OnBuild
		st.config.OnBuild = nil
	}
	if !hasEnv(st.config.Env, "PATH") {
		st.config.Env = append(st.config.Env, "PATH="+defaultPath)
	}
	fmt.Fprintf(out, " ---> %s\n", shortOrEmpty(st.image))
	if len(triggers) > 0 {
		fmt.Fprintf(out, "# Executing %d build trigger%s\n", len(triggers), plural(len(triggers)))
		for _, t := range triggers {
			res, err := parser.Parse(strings.NewReader(t))
			if err != nil || len(res.AST.Children) == 0 {
				return nil, errdefs.InvalidArgument("line %d: ONBUILD trigger %q of %s: %v", fromLine(s), t, base, err)
			}
			cmd, err := instructions.ParseCommand(res.AST.Children[0])
			if err != nil {
				return nil, errdefs.InvalidArgument("line %d: ONBUILD trigger %q of %s: %v", fromLine(s), t, base, err)
			}
			if err := r.dispatch(ctx, st, cmd, out); err != nil {
				return nil, fmt.Errorf("line %d: ONBUILD trigger %q: %w", fromLine(s), t, err)
			}
		}
	}
	for _, c := range s.Commands {
		r.nextStep(out, st, cmdText(c))
		if err := r.dispatch(ctx, st, c, out); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func shortOrEmpty(id digest.Digest) string {
	if id == "" {
		return ""
	}
	return shortID(id)
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

func setEnv(cfg *dockerspec.DockerOCIImageConfig, key, value string) {
	for i, kv := range cfg.Env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			cfg.Env[i] = key + "=" + value
			return
		}
	}
	cfg.Env = append(cfg.Env, key+"="+value)
}

// expandEnv is what ${VAR} sees in a stage: its ARGs, overridden by ENV.
func (st *stageState) expandEnv() shell.EnvGetter {
	m := map[string]string{}
	for k, v := range st.args {
		m[k] = v
	}
	for _, kv := range st.config.Env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return shell.EnvsFromSlice(envList(m))
}

// argEnv is the stage's ARGs not shadowed by ENV, in declaration order, as
// RUN sees them.
func (st *stageState) argEnv() []string {
	var out []string
	for _, k := range st.argList {
		if v, ok := st.args[k]; ok && !hasEnv(st.config.Env, k) {
			out = append(out, k+"="+v)
		}
	}
	return out
}

func (r *buildRun) shellOf(st *stageState) []string {
	if len(st.config.Shell) > 0 {
		return append([]string{}, st.config.Shell...)
	}
	return []string{"/bin/sh", "-c"}
}

func (r *buildRun) withShell(st *stageState, c instructions.ShellDependantCmdLine) []string {
	if !c.PrependShell {
		return append([]string{}, c.CmdLine...)
	}
	return append(r.shellOf(st), strings.Join(c.CmdLine, " "))
}

func (r *buildRun) dispatch(ctx context.Context, st *stageState, cmd instructions.Command, out io.Writer) error {
	lex := r.lex()
	expand := func(w string) (string, error) {
		s, _, err := lex.ProcessWord(w, st.expandEnv())
		return s, err
	}
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
		if err := ex.Expand(expand); err != nil {
			return errdefs.InvalidArgument("%s: %s: %v", lineOf(cmd), cmd.Name(), err)
		}
	}
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansionRaw); ok {
		raw := func(w string) (string, error) {
			s, _, err := shell.NewLex(r.escape).ProcessWord(w, st.expandEnv())
			return s, err
		}
		if err := ex.ExpandRaw(raw); err != nil {
			return errdefs.InvalidArgument("%s: %s: %v", lineOf(cmd), cmd.Name(), err)
		}
	}
	cfg := &st.config
	extra := ""
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			setEnv(cfg, kv.Key, kv.Value)
		}
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.MaintainerCommand:
		// The author field lives outside the runtime config; the history
		// entry keeps the instruction.
	case *instructions.WorkdirCommand:
		p := c.Path
		if !path.IsAbs(p) {
			p = path.Join("/", cfg.WorkingDir, p)
		}
		cfg.WorkingDir = path.Clean(p)
		return r.workdir(ctx, st, cmdText(c), out)
	case *instructions.UserCommand:
		cfg.User = c.User
	case *instructions.ExposeCommand:
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range c.Ports {
			ports, err := expandPorts(p)
			if err != nil {
				return errdefs.InvalidArgument("%s: EXPOSE %s: %v", lineOf(c), p, err)
			}
			for _, port := range ports {
				cfg.ExposedPorts[port] = struct{}{}
			}
		}
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if strings.TrimSpace(v) == "" {
				return errdefs.InvalidArgument("%s: VOLUME specified can not be an empty string", lineOf(c))
			}
			cfg.Volumes[v] = struct{}{}
		}
	case *instructions.StopSignalCommand:
		cfg.StopSignal = c.Signal
	case *instructions.CmdCommand:
		cfg.Cmd = r.withShell(st, c.ShellDependantCmdLine)
		st.cmdSet = true
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = r.withShell(st, c.ShellDependantCmdLine)
		if !st.cmdSet {
			cfg.Cmd = nil
		}
	case *instructions.HealthCheckCommand:
		h := *c.Health
		if cfg.Healthcheck != nil && len(h.Test) == 0 {
			h.Test = cfg.Healthcheck.Test
		}
		cfg.Healthcheck = &h
	case *instructions.ShellCommand:
		cfg.Shell = append([]string{}, c.Shell...)
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
	case *instructions.ArgCommand:
		for _, kv := range c.Args {
			v, have := r.argValue(kv)
			if _, seen := st.args[kv.Key]; !seen {
				st.argList = append(st.argList, kv.Key)
			}
			if have {
				st.args[kv.Key] = v
			} else {
				delete(st.args, kv.Key)
			}
		}
		// As in Docker, the ARG step itself does not depend on the value;
		// the RUN steps that see it do.
	case *instructions.RunCommand:
		return r.run(ctx, st, c, out)
	case *instructions.CopyCommand:
		// --from sees the global ARGs (as the plan did) and the stage's.
		env := map[string]string{}
		for k, v := range r.meta {
			env[k] = v
		}
		for _, k := range st.expandEnv().Keys() {
			env[k], _ = st.expandEnv().Get(k)
		}
		from, _, err := lex.ProcessWord(c.From, shell.EnvsFromSlice(envList(env)))
		if err != nil {
			return errdefs.InvalidArgument("%s: COPY --from=%s: %v", lineOf(c), c.From, err)
		}
		return r.copy(ctx, st, copySpec{
			cmd: c, name: "COPY", sd: c.SourcesAndDest, from: from, chown: c.Chown, chmod: c.Chmod,
			excludes: c.ExcludePatterns,
		}, out)
	case *instructions.AddCommand:
		return r.copy(ctx, st, copySpec{
			cmd: c, name: "ADD", sd: c.SourcesAndDest, chown: c.Chown, chmod: c.Chmod, add: true,
			excludes: c.ExcludePatterns,
		}, out)
	default:
		return errdefs.InvalidArgument("%s: %s is not supported", lineOf(cmd), cmd.Name())
	}
	return r.commitMeta(ctx, st, cmdText(cmd), extra, out)
}

// argValue is an ARG's value: --build-arg, else its default, else the
// global ARG of that name or a built-in platform arg.
func (r *buildRun) argValue(kv instructions.KeyValuePairOptional) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.opts.BuildArgs[kv.Key]; ok {
		r.usedArgs[kv.Key] = true
		if v != nil {
			return *v, true
		}
	}
	if kv.Value != nil {
		return *kv.Value, true
	}
	if v, ok := r.meta[kv.Key]; ok {
		return v, true
	}
	return "", false
}

func (r *buildRun) warnUnusedArgs() {
	var unused []string
	for _, k := range slices.Sorted(maps.Keys(r.opts.BuildArgs)) {
		if !r.usedArgs[k] {
			if _, builtin := builtinArgs()[k]; builtin {
				continue
			}
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		fmt.Fprintf(r.out, "[Warning] One or more build-args [%s] were not consumed\n", strings.Join(unused, " "))
	}
}

func expandPorts(p string) ([]string, error) {
	proto := "tcp"
	if i := strings.LastIndex(p, "/"); i >= 0 {
		p, proto = p[:i], strings.ToLower(p[i+1:])
	}
	lo, hi, isRange := strings.Cut(p, "-")
	a, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("invalid port %q", p)
	}
	b := a
	if isRange {
		if b, err = strconv.ParseUint(hi, 10, 16); err != nil || b < a {
			return nil, fmt.Errorf("invalid port range %q", p)
		}
	}
	var out []string
	for n := a; n <= b; n++ {
		out = append(out, fmt.Sprintf("%d/%s", n, proto))
	}
	return out, nil
}

// configKey is the part of every cache key that pins the resulting config.
func configKey(cfg dockerspec.DockerOCIImageConfig) string {
	b, _ := json.Marshal(cfg)
	return string(b)
}

// lookup reports a cache hit for key on st's image and moves st onto it.
func (r *buildRun) lookup(ctx context.Context, st *stageState, key, createdBy string, out io.Writer) bool {
	if r.opts.NoCache {
		return false
	}
	id, ok := r.b.cache.Step(st.image, key)
	if ok {
		if _, err := r.b.backend.GetImage(ctx, id.String()); err != nil {
			ok = false
		}
	}
	if !ok && len(r.cacheFrom) > 0 {
		id, ok = r.fromCacheImages(ctx, st, createdBy)
		if ok {
			r.b.cache.PutStep(st.image, key, id)
		}
	}
	if !ok {
		return false
	}
	fmt.Fprintf(out, " ---> Using cache\n ---> %s\n", shortID(id))
	st.image = id
	return true
}

// fromCacheImages finds the step in a --cache-from image's history, as
// Docker's classic builder does: the image must extend the current one
// (same history entries and layers so far) and its next history entry must
// be this step. The image for the step is then rebuilt from those layers.
func (r *buildRun) fromCacheImages(ctx context.Context, st *stageState, createdBy string) (digest.Digest, bool) {
	var parent *Image
	if st.image != "" {
		p, err := r.b.backend.GetImage(ctx, st.image.String())
		if err != nil {
			return "", false
		}
		parent = p
	}
	src, layer, ok := matchCacheFrom(parent, r.cacheFrom, createdBy)
	if !ok {
		return "", false
	}
	n := 0
	if parent != nil {
		n = len(parent.Config.History)
	}
	if n == len(src.Config.History)-1 && configKey(src.Config.Config) == configKey(st.config) {
		return src.ID, true
	}
	id, err := r.b.backend.RestoreCachedImage(ctx, st.image, src.ID, layer, &st.config, src.Config.History[n])
	if err != nil {
		return "", false
	}
	return id, true
}

// matchCacheFrom picks the source whose history continues parent's with
// createdBy; layer is the index of the source's layer that step made (-1
// when it made none).
func matchCacheFrom(parent *Image, sources []*Image, createdBy string) (*Image, int, bool) {
	var hist []ocispec.History
	var diffIDs []digest.Digest
	if parent != nil {
		hist, diffIDs = parent.Config.History, parent.Config.RootFS.DiffIDs
	}
next:
	for _, src := range sources {
		sh, sd := src.Config.History, src.Config.RootFS.DiffIDs
		if len(sh) <= len(hist) || len(sd) < len(diffIDs) {
			continue
		}
		for i, h := range hist {
			if sh[i].CreatedBy != h.CreatedBy || sh[i].EmptyLayer != h.EmptyLayer {
				continue next
			}
		}
		for i, d := range diffIDs {
			if sd[i] != d {
				continue next
			}
		}
		step := sh[len(hist)]
		if step.CreatedBy != createdBy {
			continue
		}
		if step.EmptyLayer {
			return src, -1, true
		}
		if len(sd) <= len(diffIDs) {
			continue
		}
		return src, len(diffIDs), true
	}
	return nil, 0, false
}

func (r *buildRun) record(st *stageState, key string, id digest.Digest, out io.Writer) error {
	if err := r.b.cache.PutStep(st.image, key, id); err != nil {
		return err
	}
	st.image = id
	fmt.Fprintf(out, " ---> %s\n", shortID(id))
	return nil
}

// commitMeta makes the image for a step that only changes the config.
func (r *buildRun) commitMeta(ctx context.Context, st *stageState, text, extra string, out io.Writer) error {
	createdBy := "/bin/sh -c #(nop)  " + text
	key := "meta\x00" + createdBy + "\x00" + extra + "\x00" + configKey(st.config)
	if r.lookup(ctx, st, key, createdBy, out) {
		return nil
	}
	id, err := r.b.backend.CreateImage(ctx, st.image, &st.config, createdBy)
	if err != nil {
		return fmt.Errorf("%s: %w", text, err)
	}
	return r.record(st, key, id, out)
}

// workdir makes WORKDIR's directory in a layer, as Docker's classic
// builder does (an existing directory gives an empty layer).
func (r *buildRun) workdir(ctx context.Context, st *stageState, text string, out io.Writer) error {
	createdBy := "/bin/sh -c #(nop) " + text
	key := "workdir\x00" + createdBy + "\x00" + configKey(st.config)
	if r.lookup(ctx, st, key, createdBy, out) {
		return nil
	}
	dir := st.config.WorkingDir
	id, err := r.b.backend.CommitFiles(ctx, st.image, &st.config, createdBy, func(root string) error {
		return (&copier{root: root}).mkdirAll(dir)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", text, err)
	}
	return r.record(st, key, id, out)
}

// run executes a RUN step in a container and commits its changes.
func (r *buildRun) run(ctx context.Context, st *stageState, c *instructions.RunCommand, out io.Writer) error {
	if len(c.FlagsUsed) > 0 {
		return errdefs.InvalidArgument("%s: RUN --%s is not supported by the classic builder", lineOf(c), c.FlagsUsed[0])
	}
	var args []string
	switch {
	case c.PrependShell && len(c.Files) > 0:
		script := strings.Join(c.CmdLine, " ")
		if h := c.Files[0]; len(c.Files) == 1 && isHeredocOnly(script, h.Name) {
			script = h.Data
			if strings.HasPrefix(script, "#!") {
				script = shebangScript(script)
			}
		} else {
			var sb strings.Builder
			sb.WriteString(script)
			for _, f := range c.Files {
				sb.WriteString("\n" + f.Data + f.Name)
			}
			script = sb.String()
		}
		args = append(r.shellOf(st), script)
	default:
		args = r.withShell(st, c.ShellDependantCmdLine)
	}
	argEnv := st.argEnv()
	createdBy := strings.Join(args, " ")
	if len(argEnv) > 0 {
		createdBy = fmt.Sprintf("|%d %s %s", len(argEnv), strings.Join(argEnv, " "), createdBy)
	}
	key := "run\x00" + createdBy + "\x00" + configKey(st.config)
	if r.lookup(ctx, st, key, createdBy, out) {
		return nil
	}
	if st.image == "" {
		return errdefs.InvalidArgument("%s: RUN needs a base image with files in it (the stage is an empty scratch)", lineOf(c))
	}
	cc := &container.Config{
		Env:        append(append([]string{}, st.config.Env...), argEnv...),
		Cmd:        args,
		WorkingDir: st.config.WorkingDir,
		User:       st.config.User,
		Labels:     st.config.Labels,
		Shell:      st.config.Shell,
		StopSignal: st.config.StopSignal,
	}
	id, err := r.b.backend.CreateBuildContainer(ctx, st.image, cc)
	if err != nil {
		return fmt.Errorf("%s: create build container: %w", lineOf(c), err)
	}
	removed := false
	defer func() {
		if !removed {
			r.b.backend.RemoveContainer(context.WithoutCancel(ctx), id)
		}
	}()
	fmt.Fprintf(out, " ---> Running in %s\n", id[:12])
	code, err := r.b.backend.RunContainer(ctx, id, out, out)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", lineOf(c), cmdText(c), err)
	}
	if code != 0 {
		return &StepError{Line: lineNum(c), Instruction: cmdText(c), Code: code,
			Err: errdefs.System("The command '%s' returned a non-zero code: %d", strings.Join(args, " "), code)}
	}
	img, err := r.b.backend.CommitContainer(ctx, id, &st.config, createdBy)
	if err != nil {
		return fmt.Errorf("%s: %w", lineOf(c), err)
	}
	removed = true
	if err := r.b.backend.RemoveContainer(context.WithoutCancel(ctx), id); err != nil {
		return fmt.Errorf("%s: remove build container %s: %w", lineOf(c), id[:12], err)
	}
	fmt.Fprintf(out, "Removing intermediate container %s\n", id[:12])
	return r.record(st, key, img, out)
}

// shebangScript runs a heredoc that names its interpreter (#!) as a file,
// as BuildKit does: written to a temporary file, made executable, executed.
// The delimiter derives from the content, so the step's cache key is stable.
func shebangScript(data string) string {
	delim := "BERTH_HEREDOC_" + digest.FromString(data).Encoded()[:16]
	return "__berth_f=$(mktemp) && cat > \"$__berth_f\" <<'" + delim + "'\n" + data + "\n" + delim +
		"\nchmod +x \"$__berth_f\" && \"$__berth_f\"; __berth_rc=$?; rm -f \"$__berth_f\"; exit $__berth_rc"
}

func isHeredocOnly(cmdline, name string) bool {
	s := strings.TrimSpace(cmdline)
	s = strings.TrimPrefix(s, "<<")
	s = strings.TrimPrefix(s, "-")
	s = strings.Trim(s, `"'`)
	return s == name
}

func lineNum(c instructions.Command) int {
	if loc := c.Location(); len(loc) > 0 {
		return loc[0].Start.Line
	}
	return 0
}

// StepError is a RUN that exited non-zero.
type StepError struct {
	Line        int
	Instruction string
	Code        int
	Err         error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("%v (Dockerfile line %d: %s)", e.Err, e.Line, e.Instruction)
}

func (e *StepError) Unwrap() error { return e.Err }

// cmdText is an instruction as written (labels added by --label have none).
func cmdText(c instructions.Command) string {
	if s, ok := c.(fmt.Stringer); ok && s.String() != "" {
		return s.String()
	}
	if l, ok := c.(*instructions.LabelCommand); ok {
		var parts []string
		for _, kv := range l.Labels {
			parts = append(parts, strconv.Quote(kv.Key)+"="+strconv.Quote(kv.Value))
		}
		return "LABEL " + strings.Join(parts, " ")
	}
	return strings.ToUpper(c.Name())
}
