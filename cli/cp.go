package cli

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/go-units"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func newCpCommand(c *CLI) *cobra.Command {
	var archive, follow, quiet bool
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			srcCtr, srcPath := splitCpArg(args[0])
			dstCtr, dstPath := splitCpArg(args[1])
			if srcPath == "" {
				return errors.New("source can not be empty")
			}
			if dstPath == "" {
				return errors.New("destination can not be empty")
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var n int64
			switch {
			case srcCtr != "" && dstCtr != "":
				return errors.New("copying between containers is not supported")
			case srcCtr != "":
				n, err = c.copyFromContainer(ctx, api, srcCtr, srcPath, dstPath)
			case dstCtr != "":
				n, err = c.copyToContainer(ctx, api, srcPath, dstCtr, dstPath, archive, follow)
			default:
				return errors.New("must specify at least one container source")
			}
			if err != nil {
				return err
			}
			if _, isTerm := terminalFd(c.err); isTerm && !quiet && dstPath != "-" {
				fmt.Fprintf(c.err, "Successfully copied %s to %s\n", units.HumanSize(float64(n)), args[1])
			}
			return nil
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&archive, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	flags.BoolVarP(&follow, "follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	flags.BoolVarP(&quiet, "quiet", "q", false, "Suppress progress output during copy")
	return cmd
}

// splitCpArg splits "container:path"; a local path holding a colon must start with "/" or ".".
func splitCpArg(arg string) (string, string) {
	if filepath.IsAbs(arg) || strings.HasPrefix(arg, ".") {
		return "", arg
	}
	ctr, p, ok := strings.Cut(arg, ":")
	if !ok || strings.Contains(ctr, "/") {
		return "", arg
	}
	return ctr, p
}

// countingReader counts what passes through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *CLI) copyFromContainer(ctx context.Context, api *client.Client, ctr, src, dst string) (int64, error) {
	res, err := api.CopyFromContainer(ctx, ctr, client.CopyFromContainerOptions{SourcePath: src})
	if err != nil {
		return 0, err
	}
	defer res.Content.Close()
	cr := &countingReader{r: res.Content}
	if dst == "-" {
		_, err := io.Copy(c.out, cr)
		return cr.n, err
	}
	srcIsDir := res.Stat.Mode.IsDir()
	srcBase := res.Stat.Name
	if srcBase == "" {
		srcBase = path.Base(src)
	}
	contentsOnly := strings.HasSuffix(src, "/.")

	dstInfo, statErr := os.Stat(dst)
	var extractDir, rename string
	switch {
	case statErr == nil && dstInfo.IsDir():
		extractDir = dst
		if contentsOnly {
			rename = "."
		}
	case statErr == nil:
		if srcIsDir {
			return 0, fmt.Errorf("cannot copy a directory to a file: %s", dst)
		}
		extractDir, rename = filepath.Dir(dst), filepath.Base(dst)
	case errors.Is(statErr, fs.ErrNotExist):
		if strings.HasSuffix(dst, string(filepath.Separator)) {
			if !srcIsDir {
				return 0, fmt.Errorf("destination directory %s does not exist", dst)
			}
		}
		parent := filepath.Dir(filepath.Clean(dst))
		if st, err := os.Stat(parent); err != nil || !st.IsDir() {
			return 0, fmt.Errorf("destination directory %s does not exist", parent)
		}
		extractDir, rename = parent, filepath.Base(filepath.Clean(dst))
	default:
		return 0, statErr
	}
	err = extractTar(cr, extractDir, srcBase, rename)
	return cr.n, err
}

// extractTar unpacks r under dir, renaming the leading path component from (when rename is set).
// Entries that would land outside dir, or pass through a symlink inside it, are refused.
func extractTar(r io.Reader, dir, from, rename string) error {
	root, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the archive: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
		if rename != "" {
			if name == from {
				name = rename
			} else if strings.HasPrefix(name, from+"/") {
				name = path.Join(rename, strings.TrimPrefix(name, from+"/"))
			}
		}
		if name == "." && hdr.Typeflag == tar.TypeDir {
			continue
		}
		target := filepath.Join(root, filepath.FromSlash(name))
		if target != root && !strings.HasPrefix(target, root+string(filepath.Separator)) {
			return fmt.Errorf("archive entry %q escapes %s", hdr.Name, dir)
		}
		if err := checkNoSymlinkParents(root, target); err != nil {
			return err
		}
		mode := hdr.FileInfo().Mode()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, mode.Perm()|0o700); err != nil {
				return err
			}
			_ = os.Chmod(target, mode.Perm())
		case tar.TypeReg:
			if err := writeFileFromTar(target, tr, mode.Perm()); err != nil {
				return err
			}
		case tar.TypeSymlink:
			_ = os.Remove(target)
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			linkName := path.Clean(strings.TrimPrefix(hdr.Linkname, "/"))
			if rename != "" && (linkName == from || strings.HasPrefix(linkName, from+"/")) {
				linkName = path.Join(rename, strings.TrimPrefix(strings.TrimPrefix(linkName, from), "/"))
			}
			old := filepath.Join(root, filepath.FromSlash(linkName))
			if !strings.HasPrefix(old, root+string(filepath.Separator)) {
				return fmt.Errorf("archive hard link %q escapes %s", hdr.Linkname, dir)
			}
			_ = os.Remove(target)
			if err := os.Link(old, target); err != nil {
				return err
			}
		default:
			// devices, fifos: not recreated by an unprivileged copy; skip like a plain extraction would fail
			continue
		}
		if hdr.Typeflag != tar.TypeSymlink {
			_ = os.Chtimes(target, hdr.ModTime, hdr.ModTime)
		}
	}
}

func checkNoSymlinkParents(root, target string) error {
	rel, err := filepath.Rel(root, filepath.Dir(target))
	if err != nil || rel == "." {
		return nil
	}
	cur := root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		st, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if st.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("refusing to extract through the symlink %s", cur)
		}
	}
	return nil
}

func writeFileFromTar(target string, r io.Reader, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(target), ".berth-cp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), perm); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), target)
}

func (c *CLI) copyToContainer(ctx context.Context, api *client.Client, src, ctr, dst string, archive, follow bool) (int64, error) {
	if src == "-" {
		cr := &countingReader{r: c.in}
		_, err := api.CopyToContainer(ctx, ctr, client.CopyToContainerOptions{
			DestinationPath: dst, Content: cr, CopyUIDGID: archive,
		})
		return cr.n, err
	}
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	srcInfo, err := stat(src)
	if err != nil {
		return 0, err
	}
	srcIsDir := srcInfo.IsDir()
	contentsOnly := strings.HasSuffix(src, "/.")

	dstStat, err := api.ContainerStatPath(ctx, ctr, client.ContainerStatPathOptions{Path: dst})
	var putDir, name string
	switch {
	case err == nil && dstStat.Stat.Mode.IsDir():
		putDir, name = dst, filepath.Base(src)
		if contentsOnly {
			name = "."
		}
	case err == nil:
		if srcIsDir {
			return 0, fmt.Errorf("cannot copy a directory to a file: %s", dst)
		}
		putDir, name = path.Dir(dst), path.Base(dst)
	case cerrdefs.IsNotFound(err):
		if strings.HasSuffix(dst, "/") && !srcIsDir {
			return 0, fmt.Errorf("destination directory %s does not exist", dst)
		}
		clean := path.Clean(dst)
		putDir, name = path.Dir(clean), path.Base(clean)
	default:
		return 0, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, src, name, follow)) }()
	cr := &countingReader{r: pr}
	_, err = api.CopyToContainer(ctx, ctr, client.CopyToContainerOptions{
		DestinationPath: putDir, Content: cr, CopyUIDGID: archive,
	})
	_ = pr.Close()
	return cr.n, err
}

// writeTar archives src with its top entry named name ("." puts a directory's contents at the top).
func writeTar(w io.Writer, src, name string, follow bool) error {
	tw := tar.NewWriter(w)
	rootInfo, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if follow && rootInfo.Mode()&os.ModeSymlink != 0 {
		if src, err = filepath.EvalSymlinks(src); err != nil {
			return err
		}
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		entry := path.Join(name, filepath.ToSlash(rel))
		if entry == "." {
			return nil
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = entry
		if info.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			_ = f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
