package builder

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/snapshot"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/patternmatcher"
	"github.com/moby/sys/user"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// copySpec is a COPY or ADD after expansion.
type copySpec struct {
	cmd          instructions.Command
	name         string // COPY or ADD
	sd           instructions.SourcesAndDest
	from         string
	chown, chmod string
	add          bool
	excludes     []string
}

// source is one matched source path.
type source struct {
	rel  string // path under the source root (slash-separated, no leading /)
	info fs.FileInfo
}

func (r *buildRun) copy(ctx context.Context, st *stageState, cs copySpec, out io.Writer) error {
	where := lineOf(cs.cmd) + ": " + cs.name
	for _, s := range cs.sd.SourcePaths {
		if cs.add && isURL(s) {
			return errdefs.InvalidArgument("%s %s: remote URLs are not supported: RUN and ADD have no network during builds", where, s)
		}
	}
	if cs.chmod != "" {
		if _, err := strconv.ParseUint(cs.chmod, 8, 32); err != nil {
			return errdefs.InvalidArgument("%s: invalid --chmod=%s: only octal modes are supported", where, cs.chmod)
		}
	}
	dest := cs.sd.DestPath
	if !path.IsAbs(dest) {
		trailing := strings.HasSuffix(dest, "/") || dest == "." || dest == ""
		dest = path.Join("/", st.config.WorkingDir, dest)
		if trailing && dest != "/" {
			dest += "/"
		}
	}
	var exclude *patternmatcher.PatternMatcher
	if len(cs.excludes) > 0 {
		var err error
		if exclude, err = patternmatcher.New(cs.excludes); err != nil {
			return errdefs.InvalidArgument("%s: invalid --exclude: %v", where, err)
		}
	}

	// Where the files come from: a stage, an image, or the context.
	var fromImage digest.Digest
	if cs.from != "" {
		if j, ok := r.stageByName(cs.from, st.index); ok {
			r.mu.Lock()
			src := r.results[j]
			r.mu.Unlock()
			if src == nil {
				return errdefs.InvalidArgument("%s --from=%s: stage not built", where, cs.from)
			}
			fromImage = src.image
			if fromImage == "" {
				return errdefs.InvalidArgument("%s --from=%s: the stage has no files", where, cs.from)
			}
		} else {
			img, err := r.b.backend.GetImage(ctx, cs.from)
			if errdefs.IsNotFound(err) {
				img, err = r.b.backend.PullImage(ctx, cs.from, r.opts.Auth, out)
			}
			if err != nil {
				return fmt.Errorf("%s --from=%s: %w", where, cs.from, err)
			}
			fromImage = img.ID
		}
	}

	// The cache key: what is copied (content digests for the context, the
	// image ID for --from), where, and how.
	h := sha256.New()
	var ctxSources []source
	if fromImage == "" {
		var err error
		ctxSources, err = r.bc.match(cs.sd.SourcePaths, exclude)
		if err != nil {
			return fmt.Errorf("%s failed: %w", where, err)
		}
		if err := r.bc.digestSources(h, ctxSources, exclude); err != nil {
			return fmt.Errorf("%s failed: %w", where, err)
		}
	} else {
		fmt.Fprintf(h, "from %s %q\n", fromImage, cs.sd.SourcePaths)
	}
	for _, c := range cs.sd.SourceContents {
		fmt.Fprintf(h, "heredoc %q %q\n", c.Path, c.Data)
	}
	nsrc := len(cs.sd.SourcePaths) + len(cs.sd.SourceContents)
	kind := "file"
	if nsrc > 1 || hasWildcard(cs.sd.SourcePaths) {
		kind = "multi"
	} else if len(ctxSources) == 1 && ctxSources[0].info.IsDir() {
		kind = "dir"
	}
	createdBy := fmt.Sprintf("/bin/sh -c #(nop) %s %s:%x in %s ", cs.name, kind, h.Sum(nil), dest)
	key := fmt.Sprintf("copy\x00%s\x00%s\x00%s\x00%q\x00%s", createdBy, cs.chown, cs.chmod, cs.excludes, configKey(st.config))
	if r.lookup(ctx, st, key, createdBy, out) {
		return nil
	}
	if (nsrc > 1 || len(ctxSources) > 1) && !strings.HasSuffix(dest, "/") {
		return errdefs.InvalidArgument("%s: When using %s with more than one source file, the destination must be a directory and end with a /", where, cs.name)
	}

	var mode *fs.FileMode
	if cs.chmod != "" {
		m, _ := strconv.ParseUint(cs.chmod, 8, 32)
		fm := fs.FileMode(m)
		mode = &fm
	}
	// A COPY from the context is written as the layer's tar directly when
	// nothing in the image makes it differ from copying file by file.
	if fromImage == "" && !cs.add && len(cs.sd.SourceContents) == 0 && os.Getenv("BERTH_BUILD_COPY") != "files" {
		c := copier{dest: dest, mode: mode, exclude: exclude, multi: len(ctxSources) > 1 || nsrc > 1}
		var plan *layerPlan
		err := r.withImageView(ctx, st.image, func(view string) error {
			owner, err := parseChown(view, cs.chown)
			if err != nil {
				return err
			}
			c.root, c.owner = view, owner
			plan, err = c.planLayer(ctxSources, r.bc)
			return err
		})
		switch {
		case err == nil:
			id, err := r.b.backend.CommitLayer(ctx, st.image, &st.config, createdBy, func(w io.Writer) error {
				return c.writeLayer(ctx, w, r.bc.fs, plan, r.bc)
			})
			if err != nil {
				return fmt.Errorf("%s failed: %w", where, err)
			}
			return r.record(st, key, id, out)
		case !errors.Is(err, errCopyFiles):
			return fmt.Errorf("%s failed: %w", where, err)
		}
	}
	id, err := r.b.backend.CommitFiles(ctx, st.image, &st.config, createdBy, func(root string) error {
		owner, err := parseChown(root, cs.chown)
		if err != nil {
			return err
		}
		c := copier{root: root, dest: dest, owner: owner, mode: mode, add: cs.add, exclude: exclude}
		if fromImage != "" {
			return r.b.backend.MountImage(ctx, fromImage, func(srcRoot string) error {
				img := dirFS{root: srcRoot}
				srcs, err := matchIn(img, cs.sd.SourcePaths, nil, exclude)
				if err != nil {
					return err
				}
				c.multi = len(srcs) > 1 || nsrc > 1
				return c.copyAll(ctx, img, srcs, nil)
			})
		}
		c.multi = len(ctxSources) > 1 || nsrc > 1
		if err := c.copyAll(ctx, r.bc.fs, ctxSources, r.bc); err != nil {
			return err
		}
		for _, hc := range cs.sd.SourceContents {
			if err := c.writeContent(ctx, hc.Path, hc.Data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s failed: %w", where, err)
	}
	return r.record(st, key, id, out)
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "git@")
}

func hasWildcard(paths []string) bool {
	for _, p := range paths {
		if strings.ContainsAny(p, "*?[") {
			return true
		}
	}
	return false
}

// match expands COPY sources against the context, skipping what
// .dockerignore excludes.
func (bc *buildContext) match(patterns []string, exclude *patternmatcher.PatternMatcher) ([]source, error) {
	return matchIn(bc.fs, patterns, bc, exclude)
}

// matchIn expands sources in fsys; paths (and symlinks in them) never
// leave its root. A source that is a symlink is followed.
func matchIn(fsys srcFS, patterns []string, bc *buildContext, exclude *patternmatcher.PatternMatcher) ([]source, error) {
	var out []source
	skip := bc.skipper(exclude)
	resolve := func(rel string) (source, bool) {
		r, err := fsys.Resolve(rel)
		if err != nil {
			return source{}, false
		}
		fi, err := fsys.Lstat(r)
		if err != nil {
			return source{}, false
		}
		return source{rel: r, info: fi}, true
	}
	for _, p := range patterns {
		clean := cleanRel(p)
		if !strings.ContainsAny(clean, "*?[") {
			s, ok := resolve(clean)
			if !ok || skip(clean) {
				return nil, errdefs.NotFound("file not found in build context or excluded by .dockerignore: stat %s: file does not exist", p)
			}
			out = append(out, s)
			continue
		}
		matches, err := glob(fsys, clean)
		if err != nil {
			return nil, errdefs.InvalidArgument("bad source pattern %q: %v", p, err)
		}
		n := 0
		for _, m := range matches {
			if skip(m) {
				continue
			}
			if s, ok := resolve(m); ok {
				out = append(out, s)
				n++
			}
		}
		if n == 0 {
			return nil, errdefs.NotFound("no source files were specified (%s matched nothing in the build context)", p)
		}
	}
	return out, nil
}

// walkSource visits a source and, for a directory, everything under it
// (symlinks are not followed), in lexical order, skipping excluded paths.
func walkSource(fsys srcFS, s source, skip, reincludes func(rel string) bool, fn func(rel string, fi fs.FileInfo) error) error {
	if err := fn(s.rel, s.info); err != nil || !s.info.IsDir() {
		return err
	}
	var walk func(dir string) error
	walk = func(dir string) error {
		ents, err := fsys.ReadDir(dir)
		if err != nil {
			return errdefs.System("read directory %s: %w", dir, err)
		}
		for _, fi := range ents {
			rel := path.Join(dir, fi.Name())
			if skip != nil && skip(rel) && (!fi.IsDir() || !reincludes(rel)) {
				continue // a "!" pattern may bring back files below a directory
			}
			if err := fn(rel, fi); err != nil {
				return err
			}
			if fi.IsDir() {
				if err := walk(rel); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(s.rel)
}

func (bc *buildContext) skipper(exclude *patternmatcher.PatternMatcher) func(string) bool {
	return func(rel string) bool {
		if bc.ignored(rel) {
			return true
		}
		if exclude != nil {
			m, _ := exclude.MatchesOrParentMatches(rel)
			return m
		}
		return false
	}
}

// reincluder reports whether an excluded directory may hold files a "!"
// pattern brings back, so the walk must enter it.
func (bc *buildContext) reincluder(exclude *patternmatcher.PatternMatcher) func(string) bool {
	return func(rel string) bool {
		return (bc != nil && bc.ignore != nil && bc.ignore.Exclusions()) || (exclude != nil && exclude.Exclusions())
	}
}

// relTo is rel (a path under the context or image root) relative to the
// source directory base.
func relTo(base, rel string) string {
	if base == "." || base == "" {
		return rel
	}
	return strings.TrimPrefix(strings.TrimPrefix(rel, base), "/")
}

// digestSources hashes what a COPY would copy: names, types, modes, link
// targets and file contents (file digests come from the hash cache).
func (bc *buildContext) digestSources(h io.Writer, srcs []source, exclude *patternmatcher.PatternMatcher) error {
	for _, s := range srcs {
		var rels []string
		var infos []fs.FileInfo
		var lines []string
		err := walkSource(bc.fs, s, bc.skipper(exclude), bc.reincluder(exclude), func(rel string, fi fs.FileInfo) error {
			link := ""
			if fi.Mode()&fs.ModeSymlink != 0 {
				link, _ = bc.fs.ReadLink(rel)
			}
			lines = append(lines, fmt.Sprintf("%q %o %q", relTo(s.rel, rel), fi.Mode(), link))
			if fi.Mode().IsRegular() {
				rels = append(rels, rel)
				infos = append(infos, fi)
			}
			return nil
		})
		if err != nil {
			return err
		}
		ds, err := bc.fileDigests(rels, infos)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "src %q\n", path.Base(s.rel))
		for _, l := range lines {
			fmt.Fprintln(h, l)
		}
		for i, d := range ds {
			fmt.Fprintf(h, "%q %s\n", relTo(s.rel, rels[i]), d)
		}
	}
	return nil
}

// copier writes sources into a mounted layer.
type copier struct {
	root    string // the layer's root
	dest    string // absolute; a trailing "/" means a directory
	multi   bool
	owner   [2]int
	mode    *fs.FileMode
	add     bool
	exclude *patternmatcher.PatternMatcher
}

// mkdirAll makes dir (a path in the layer) and returns its host path.
func (c *copier) mkdirAll(dir string) error {
	host, err := snapshot.ResolveInRoot(c.root, dir, true)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(host); err == nil {
		if !fi.IsDir() {
			return errdefs.InvalidArgument("destination %s is not a directory", dir)
		}
		return nil
	}
	if err := c.mkdirAll(path.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(host, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return errdefs.System("create %s: %w", dir, err)
	}
	return os.Lchown(host, c.owner[0], c.owner[1])
}

func (c *copier) destIsDir() bool {
	if strings.HasSuffix(c.dest, "/") || c.multi {
		return true
	}
	host, err := snapshot.ResolveInRoot(c.root, c.dest, true)
	if err != nil {
		return false
	}
	fi, err := os.Stat(host)
	return err == nil && fi.IsDir()
}

func (c *copier) copyAll(ctx context.Context, fsys srcFS, srcs []source, bc *buildContext) error {
	dest := path.Clean(c.dest)
	for _, s := range srcs {
		// A directory's contents go into dest; a file goes into dest/ or
		// becomes dest.
		targetDir, name := dest, ""
		if !s.info.IsDir() {
			if c.add && s.info.Mode().IsRegular() {
				ok, err := c.extractArchive(ctx, fsys, s.rel, dest)
				if err != nil {
					return err
				}
				if ok {
					continue
				}
			}
			if c.destIsDir() {
				name = path.Base(s.rel)
			} else {
				targetDir, name = path.Dir(dest), path.Base(dest)
			}
		}
		if err := c.mkdirAll(targetDir); err != nil {
			return err
		}
		skip, reincludes := bc.skipper(c.exclude), bc.reincluder(c.exclude)
		pr, pw := io.Pipe()
		go func() {
			pw.CloseWithError(c.writeTar(pw, fsys, s, name, skip, reincludes))
		}()
		err := snapshot.CopyIn(ctx, c.root, targetDir, pr, snapshot.CopyInOptions{KeepOwner: true})
		pr.CloseWithError(io.ErrClosedPipe)
		if err != nil {
			return err
		}
	}
	return nil
}

// writeTar streams source s as a tar: a directory's contents with names
// relative to it, a file under name.
func (c *copier) writeTar(w io.Writer, fsys srcFS, s source, name string, skip, reincludes func(string) bool) error {
	tw := tar.NewWriter(w)
	if err := c.writeEntries(tw, fsys, s, name, "", skip, reincludes); err != nil {
		return err
	}
	return tw.Close()
}

// writeEntries writes source s's entries to tw, their names under prefix.
func (c *copier) writeEntries(tw *tar.Writer, fsys srcFS, s source, name, prefix string, skip, reincludes func(string) bool) error {
	buf := make([]byte, 256<<10)
	return walkSource(fsys, s, skip, reincludes, func(rel string, fi fs.FileInfo) error {
		entry := name
		if s.info.IsDir() {
			entry = relTo(s.rel, rel)
			if entry == "" {
				return nil // the directory itself: dest exists already
			}
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			var err error
			if link, err = fsys.ReadLink(rel); err != nil {
				return errdefs.System("read link %s: %w", rel, err)
			}
		} else if !fi.Mode().IsRegular() && !fi.IsDir() {
			return nil // sockets, devices, fifos
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return errdefs.System("archive %s: %w", rel, err)
		}
		hdr.Name = path.Join(prefix, entry)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = c.owner[0], c.owner[1], "", ""
		if c.mode != nil && hdr.Typeflag != tar.TypeSymlink {
			hdr.Mode = int64(*c.mode)
		}
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := fsys.Open(rel)
			if err != nil {
				return errdefs.System("open %s: %w", rel, err)
			}
			_, err = io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), buf)
			f.Close()
			if err != nil {
				return errdefs.System("copy %s: %w", rel, err)
			}
		}
		return nil
	})
}

// writeContent writes a heredoc source (COPY <<EOF /dest).
func (c *copier) writeContent(ctx context.Context, name, data string) error {
	targetDir, entry := path.Clean(c.dest), name
	if !c.destIsDir() {
		targetDir, entry = path.Dir(targetDir), path.Base(targetDir)
	}
	if err := c.mkdirAll(targetDir); err != nil {
		return err
	}
	mode := int64(0o644)
	if c.mode != nil {
		mode = int64(*c.mode)
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Name: entry, Mode: mode, Size: int64(len(data)), Uid: c.owner[0], Gid: c.owner[1], Typeflag: tar.TypeReg})
		if err == nil {
			_, err = io.WriteString(tw, data)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	err := snapshot.CopyIn(ctx, c.root, targetDir, pr, snapshot.CopyInOptions{KeepOwner: true})
	pr.CloseWithError(io.ErrClosedPipe)
	return err
}

// extractArchive unpacks a local tar (plain, gzip, bzip2 or zstd) into dest
// for ADD; ok is false when the file is no archive.
func (c *copier) extractArchive(ctx context.Context, fsys srcFS, rel, dest string) (bool, error) {
	f, err := fsys.Open(rel)
	if err != nil {
		return false, errdefs.System("open %s: %w", rel, err)
	}
	dr, _, err := image.Decompress(f)
	if err != nil {
		f.Close()
		return false, nil
	}
	head := make([]byte, 512)
	n, _ := io.ReadFull(dr, head)
	dr.Close()
	f.Close()
	if n < 512 || !looksLikeTar(head) {
		return false, nil
	}
	if f, err = fsys.Open(rel); err != nil {
		return false, errdefs.System("open %s: %w", rel, err)
	}
	defer f.Close()
	if dr, _, err = image.Decompress(f); err != nil {
		return false, err
	}
	defer dr.Close()
	if err := c.mkdirAll(dest); err != nil {
		return false, err
	}
	keep := c.owner == [2]int{0, 0}
	return true, snapshot.CopyIn(ctx, c.root, dest, dr, snapshot.CopyInOptions{KeepOwner: keep, UID: c.owner[0], GID: c.owner[1]})
}

// parseChown resolves --chown=user[:group] against the layer's
// /etc/passwd and /etc/group; a missing group defaults to the user's name
// as Docker does.
func parseChown(root, chown string) ([2]int, error) {
	if chown == "" {
		return [2]int{0, 0}, nil
	}
	usr, grp, hasGroup := strings.Cut(chown, ":")
	uid, err := lookupID(root, "/etc/passwd", usr, true)
	if err != nil {
		return [2]int{}, err
	}
	gid := uid
	if hasGroup {
		if gid, err = lookupID(root, "/etc/group", grp, false); err != nil {
			return [2]int{}, err
		}
	} else if _, nerr := strconv.Atoi(usr); nerr != nil {
		if g, err := lookupID(root, "/etc/group", usr, false); err == nil {
			gid = g
		} else if p, err := primaryGroup(root, usr); err == nil {
			gid = p
		}
	}
	return [2]int{uid, gid}, nil
}

func lookupID(root, file, name string, isUser bool) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	p, err := snapshot.ResolveInRoot(root, file, true)
	if err != nil {
		return 0, err
	}
	if isUser {
		us, err := user.ParsePasswdFileFilter(p, func(u user.User) bool { return u.Name == name })
		if err != nil || len(us) == 0 {
			return 0, errdefs.InvalidArgument("unable to find user %s: no matching entries in passwd file", name)
		}
		return us[0].Uid, nil
	}
	gs, err := user.ParseGroupFileFilter(p, func(g user.Group) bool { return g.Name == name })
	if err != nil || len(gs) == 0 {
		return 0, errdefs.InvalidArgument("unable to find group %s: no matching entries in group file", name)
	}
	return gs[0].Gid, nil
}

func primaryGroup(root, name string) (int, error) {
	p, err := snapshot.ResolveInRoot(root, "/etc/passwd", true)
	if err != nil {
		return 0, err
	}
	us, err := user.ParsePasswdFileFilter(p, func(u user.User) bool { return u.Name == name })
	if err != nil || len(us) == 0 {
		return 0, errdefs.NotFound("no user %s", name)
	}
	return us[0].Gid, nil
}

// errCopyFiles says a COPY must go file by file through a mounted layer:
// something in the image (a symlink on the way, an entry of another type,
// xattrs on a directory) would make a directly written layer differ.
var errCopyFiles = errors.New("copy needs the file-by-file path")

// layerPlan is a COPY's layer, decided against a view of the image: the
// directories above each destination, with the image's metadata where they
// exist, then each source's entries.
type layerPlan struct {
	parents []*tar.Header
	parts   []layerPart
}

type layerPart struct {
	s         source
	targetDir string // absolute, in the image
	name      string // a file source's name in targetDir ("" for a directory's contents)
}

// withImageView runs fn with a read-only view of image's files (an empty
// directory for no image).
func (r *buildRun) withImageView(ctx context.Context, image digest.Digest, fn func(view string) error) error {
	if image == "" {
		dir, err := os.MkdirTemp("", "berth-build-empty-")
		if err != nil {
			return errdefs.System("create empty view: %w", err)
		}
		defer os.RemoveAll(dir)
		return fn(dir)
	}
	return r.b.backend.MountImage(ctx, image, fn)
}

// planLayer decides the layer copyAll would make, from c.root (a view of the
// image), or answers errCopyFiles.
func (c *copier) planLayer(srcs []source, bc *buildContext) (*layerPlan, error) {
	p := &layerPlan{}
	dest := path.Clean(c.dest)
	seen := map[string]bool{}
	skip, reincludes := bc.skipper(c.exclude), bc.reincluder(c.exclude)
	for _, s := range srcs {
		targetDir, name := dest, ""
		if !s.info.IsDir() {
			if c.destIsDir() {
				name = path.Base(s.rel)
			} else {
				targetDir, name = path.Dir(dest), path.Base(dest)
			}
		}
		if err := c.planParents(p, targetDir, seen); err != nil {
			return nil, err
		}
		err := walkSource(bc.fs, s, skip, reincludes, func(rel string, fi fs.FileInfo) error {
			entry := name
			if s.info.IsDir() {
				if entry = relTo(s.rel, rel); entry == "" {
					return nil
				}
			}
			if strings.HasPrefix(path.Base(entry), ".wh.") {
				return errCopyFiles // a whiteout name in a layer tar
			}
			var st unix.Stat_t
			if unix.Lstat(path.Join(c.root, targetDir, entry), &st) == nil && (st.Mode&unix.S_IFMT == unix.S_IFDIR) != fi.IsDir() {
				return errCopyFiles
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		p.parts = append(p.parts, layerPart{s: s, targetDir: targetDir, name: name})
	}
	return p, nil
}

// planParents adds the directories from / down to dir: as the image has
// them (mode, owner, time), or new as mkdirAll makes them.
func (c *copier) planParents(p *layerPlan, dir string, seen map[string]bool) error {
	if dir == "/" {
		return nil
	}
	if err := c.planParents(p, path.Dir(dir), seen); err != nil {
		return err
	}
	if seen[dir] {
		return nil
	}
	seen[dir] = true
	hdr := &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(dir, "/") + "/", Format: tar.FormatPAX}
	var st unix.Stat_t
	err := unix.Lstat(path.Join(c.root, dir), &st)
	switch {
	case errors.Is(err, unix.ENOENT):
		hdr.Mode, hdr.Uid, hdr.Gid, hdr.ModTime = 0o755, c.owner[0], c.owner[1], time.Now()
	case err != nil:
		return errdefs.System("stat %s in the image: %w", dir, err)
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return errCopyFiles // a symlink or file on the way: resolved only by the file-by-file path
	default:
		if n, _ := unix.Llistxattr(path.Join(c.root, dir), nil); n > 0 {
			return errCopyFiles
		}
		hdr.Mode = int64(st.Mode & 0o7777)
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		hdr.ModTime = time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
	}
	p.parents = append(p.parents, hdr)
	return nil
}

// writeLayer writes the planned layer as a tar.
func (c *copier) writeLayer(ctx context.Context, w io.Writer, fsys srcFS, p *layerPlan, bc *buildContext) error {
	tw := tar.NewWriter(w)
	for _, hdr := range p.parents {
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
	}
	skip, reincludes := bc.skipper(c.exclude), bc.reincluder(c.exclude)
	for _, part := range p.parts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.writeEntries(tw, fsys, part.s, part.name, strings.TrimPrefix(part.targetDir, "/"), skip, reincludes); err != nil {
			return err
		}
	}
	return tw.Close()
}
