package builder

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/opencontainers/go-digest"
)

// Source is where a build's context comes from: a tar stream (the classic
// protocol's body; gzip, bzip2 and zstd are sniffed, and a body that is no
// tar at all is taken as the Dockerfile) or a directory on the daemon's
// host (berth's local fast path: nothing is copied, and file hashes are
// cached by path, size, mtime and inode).
type Source struct {
	Tar io.Reader
	Dir string
}

// buildContext is an opened Source: a tree of files plus what is known
// about their content.
type buildContext struct {
	fs       srcFS
	dir      string // directory contexts: the host path (hash cache keys)
	tar      *tarFS // tar contexts
	onlyFile []byte // the body was a bare Dockerfile
	ignore   *patternmatcher.PatternMatcher
	cache    *Cache

	mu      sync.Mutex
	pending map[string]fileStat // dir contexts: hashes to record
}

func openContext(ctx context.Context, src Source, tmpRoot string, cache *Cache) (*buildContext, error) {
	bc := &buildContext{cache: cache, pending: map[string]fileStat{}}
	switch {
	case src.Dir != "":
		dir, err := filepath.Abs(src.Dir)
		if err != nil {
			return nil, errdefs.InvalidArgument("context directory %s: %w", src.Dir, err)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, errdefs.InvalidArgument("context directory %s: not a directory", src.Dir)
		}
		bc.dir, bc.fs = dir, dirFS{root: dir}
	case src.Tar != nil:
		dr, _, err := image.Decompress(src.Tar)
		if err != nil {
			return nil, err
		}
		defer dr.Close()
		br := bufio.NewReaderSize(dr, 1<<20)
		head, _ := br.Peek(512)
		if !looksLikeTar(head) {
			b, err := io.ReadAll(br)
			if err != nil {
				return nil, errdefs.InvalidArgument("read build context: %w", err)
			}
			bc.onlyFile = b
			br = bufio.NewReader(strings.NewReader(""))
		}
		if bc.tar, err = spoolTar(ctx, br, tmpRoot); err != nil {
			return nil, err
		}
		bc.fs = bc.tar
	default:
		return nil, errdefs.InvalidArgument("build needs a context")
	}
	patterns, err := readIgnoreFile(bc.fs)
	if err != nil {
		bc.Close()
		return nil, err
	}
	if len(patterns) > 0 {
		if bc.ignore, err = patternmatcher.New(patterns); err != nil {
			bc.Close()
			return nil, errdefs.InvalidArgument("invalid .dockerignore: %w", err)
		}
	}
	return bc, nil
}

// readIgnoreFile returns the patterns of the context's .dockerignore (none
// if there is no such file).
func readIgnoreFile(fsys srcFS) ([]string, error) {
	f, err := fsys.Open(".dockerignore")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, errdefs.System("read .dockerignore: %w", err)
	}
	defer f.Close()
	p, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, errdefs.InvalidArgument("read .dockerignore: %w", err)
	}
	return p, nil
}

// Close releases a spooled context.
func (bc *buildContext) Close() {
	if bc.tar != nil {
		bc.tar.Close()
	}
}

func looksLikeTar(head []byte) bool {
	if len(head) < 512 {
		return len(head) == 0 // an empty body is an empty context
	}
	if string(head[257:262]) == "ustar" {
		return true
	}
	// Old v7 tars have no magic: check the header checksum.
	var sum int64
	for i, c := range head[:512] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	var want int64
	fmt.Sscanf(strings.Trim(string(head[148:156]), " \x00"), "%o", &want)
	return want == sum
}

// readDockerfile reads the Dockerfile named by name: a path in the context
// or, for a directory context, an absolute path on the host.
func (bc *buildContext) readDockerfile(name string) ([]byte, error) {
	if bc.onlyFile != nil {
		return bc.onlyFile, nil
	}
	var b []byte
	var err error
	if bc.dir != "" && filepath.IsAbs(name) {
		b, err = os.ReadFile(name)
	} else {
		var rel string
		if rel, err = bc.fs.Resolve(name); err == nil {
			var f io.ReadCloser
			if f, err = bc.fs.Open(rel); err == nil {
				b, err = io.ReadAll(f)
				f.Close()
			}
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
			return nil, errdefs.InvalidArgument("Cannot locate specified Dockerfile: %s", name)
		}
		return nil, errdefs.System("read Dockerfile %s: %w", name, err)
	}
	return b, nil
}

// ignored reports whether the context path rel (slash-separated, relative)
// is excluded by .dockerignore.
func (bc *buildContext) ignored(rel string) bool {
	if bc == nil || bc.ignore == nil || rel == "." || rel == "" {
		return false
	}
	m, _ := bc.ignore.MatchesOrParentMatches(rel)
	return m
}

// fileDigests returns the content digests of the regular files rels (with
// their stats), reading only files whose (path, size, mtime, inode) is not
// cached.
func (bc *buildContext) fileDigests(rels []string, infos []fs.FileInfo) ([]digest.Digest, error) {
	out := make([]digest.Digest, len(rels))
	if bc.tar != nil {
		for i, r := range rels {
			n, err := bc.tar.node(r)
			if err != nil {
				return nil, err
			}
			out[i] = n.digest
		}
		return out, nil
	}
	paths := make([]string, len(rels))
	stats := make([]fileStat, len(rels))
	for i, r := range rels {
		paths[i] = filepath.Join(bc.dir, filepath.FromSlash(r))
		stats[i] = statOf(infos[i])
	}
	for i, d := range bc.cache.fileDigests(paths, stats) {
		if d != "" {
			out[i] = d
			continue
		}
		d, err := hashFile(paths[i])
		if err != nil {
			return nil, err
		}
		out[i] = d
		st := stats[i]
		st.Digest = d
		bc.mu.Lock()
		bc.pending[paths[i]] = st
		bc.mu.Unlock()
	}
	return out, nil
}

// saveHashes records the file hashes this build computed.
func (bc *buildContext) saveHashes() {
	bc.mu.Lock()
	p := bc.pending
	bc.pending = map[string]fileStat{}
	bc.mu.Unlock()
	bc.cache.putFiles(p)
}

func statOf(fi fs.FileInfo) fileStat {
	st := fileStat{Size: fi.Size(), Mtime: fi.ModTime().UnixNano()}
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.Inode = s.Ino
	}
	return st
}

func hashFile(p string) (digest.Digest, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", errdefs.System("hash %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", errdefs.System("hash %s: %w", p, err)
	}
	return digest.NewDigest(digest.SHA256, h), nil
}
