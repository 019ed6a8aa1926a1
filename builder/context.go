package builder

import (
	"archive/tar"
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
	securejoin "github.com/cyphar/filepath-securejoin"
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

// buildContext is an opened Source: a directory of files plus what is
// known about their content.
type buildContext struct {
	root     string
	tmp      string // removed on Close (tar contexts)
	onlyFile []byte // the body was a bare Dockerfile
	ignore   *patternmatcher.PatternMatcher
	cache    *Cache

	mu      sync.Mutex
	digests map[string]digest.Digest // tar contexts: path -> content digest, known at extraction
	pending map[string]fileStat      // dir contexts: hashes to record
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
		bc.root = dir
	case src.Tar != nil:
		tmp, err := os.MkdirTemp(tmpRoot, "context-")
		if err != nil {
			return nil, errdefs.System("create context directory: %w", err)
		}
		bc.root, bc.tmp = tmp, tmp
		bc.digests = map[string]digest.Digest{}
		if err := bc.extract(ctx, src.Tar); err != nil {
			bc.Close()
			return nil, err
		}
	default:
		return nil, errdefs.InvalidArgument("build needs a context")
	}
	patterns, err := readIgnoreFile(bc.root)
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

// ReadIgnoreFile returns the patterns of dir's .dockerignore (none if
// there is no such file).
func readIgnoreFile(dir string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
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

// Close removes an extracted context.
func (bc *buildContext) Close() {
	if bc.tmp != "" {
		os.RemoveAll(bc.tmp)
	}
}

// extract unpacks the context tar into bc.root, hashing regular files on
// the way so COPY never reads them twice. Nothing is written outside root.
func (bc *buildContext) extract(ctx context.Context, r io.Reader) error {
	dr, _, err := image.Decompress(r)
	if err != nil {
		return err
	}
	defer dr.Close()
	br := bufio.NewReaderSize(dr, 64<<10)
	head, _ := br.Peek(512)
	if !looksLikeTar(head) {
		b, err := io.ReadAll(br)
		if err != nil {
			return errdefs.InvalidArgument("read build context: %w", err)
		}
		bc.onlyFile = b
		return nil
	}
	tr := tar.NewReader(br)
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return errdefs.InvalidArgument("read build context: %w", err)
		}
		rel := filepath.Clean("/" + hdr.Name)[1:]
		if rel == "" {
			continue
		}
		parent, err := securejoin.SecureJoin(bc.root, filepath.Dir(rel))
		if err != nil {
			return errdefs.InvalidArgument("build context entry %s: %w", hdr.Name, err)
		}
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return errdefs.System("build context entry %s: %w", hdr.Name, err)
		}
		p := filepath.Join(parent, filepath.Base(rel))
		mode := hdr.FileInfo().Mode().Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(p, mode|0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return errdefs.System("build context entry %s: %w", hdr.Name, err)
			}
		case tar.TypeReg:
			os.Remove(p)
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
			if err != nil {
				return errdefs.System("build context entry %s: %w", hdr.Name, err)
			}
			h := sha256.New()
			_, err = io.CopyBuffer(io.MultiWriter(f, h), tr, buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return errdefs.InvalidArgument("build context entry %s: %w", hdr.Name, err)
			}
			bc.digests[rel] = digest.NewDigest(digest.SHA256, h)
		case tar.TypeSymlink:
			os.Remove(p)
			if err := os.Symlink(hdr.Linkname, p); err != nil {
				return errdefs.System("build context entry %s: %w", hdr.Name, err)
			}
		case tar.TypeLink:
			target, err := securejoin.SecureJoin(bc.root, hdr.Linkname)
			if err != nil {
				return errdefs.InvalidArgument("build context entry %s: %w", hdr.Name, err)
			}
			os.Remove(p)
			if err := os.Link(target, p); err != nil {
				return errdefs.InvalidArgument("build context entry %s: %w", hdr.Name, err)
			}
			if d, ok := bc.digests[filepath.Clean("/" + hdr.Linkname)[1:]]; ok {
				bc.digests[rel] = d
			}
		default:
			continue // devices and fifos have no place in a context
		}
		if hdr.Typeflag != tar.TypeSymlink {
			os.Chtimes(p, hdr.ModTime, hdr.ModTime)
		}
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
	p := name
	if bc.tmp != "" || !filepath.IsAbs(name) {
		var err error
		if p, err = securejoin.SecureJoin(bc.root, name); err != nil {
			return nil, errdefs.InvalidArgument("Dockerfile %s: %w", name, err)
		}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errdefs.InvalidArgument("Cannot locate specified Dockerfile: %s", name)
		}
		return nil, errdefs.System("read Dockerfile %s: %w", name, err)
	}
	return b, nil
}

// ignored reports whether the context path rel (slash-separated, relative)
// is excluded by .dockerignore.
func (bc *buildContext) ignored(rel string) bool {
	if bc.ignore == nil || rel == "." || rel == "" {
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
	var missing []int
	if bc.digests != nil {
		for i, r := range rels {
			if d, ok := bc.digests[r]; ok {
				out[i] = d
			} else {
				missing = append(missing, i)
			}
		}
	} else {
		paths := make([]string, len(rels))
		stats := make([]fileStat, len(rels))
		for i, r := range rels {
			paths[i] = filepath.Join(bc.root, r)
			stats[i] = statOf(infos[i])
		}
		for i, d := range bc.cache.fileDigests(paths, stats) {
			if d != "" {
				out[i] = d
			} else {
				missing = append(missing, i)
			}
		}
	}
	for _, i := range missing {
		p := filepath.Join(bc.root, rels[i])
		d, err := hashFile(p)
		if err != nil {
			return nil, err
		}
		out[i] = d
		if bc.digests == nil {
			st := statOf(infos[i])
			st.Digest = d
			bc.mu.Lock()
			bc.pending[p] = st
			bc.mu.Unlock()
		}
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
