package daemon

// The builder's view of the daemon (builder.Backend): build steps reuse the
// container lifecycle (create, start, logs, wait, remove) and the image
// store's commit; COPY and metadata steps make images without a container.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/builder"
	"github.com/berth-dev/berth/distribution"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/snapshot"
	"github.com/distribution/reference"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var _ builder.Backend = (*Daemon)(nil)

// builders holds each daemon's builder (made on first use, as the Daemon
// struct is shared by several owners).
var builders sync.Map // *Daemon -> *builderOnce

type builderOnce struct {
	once sync.Once
	b    *builder.Builder
	err  error
}

// Builder returns the daemon's Dockerfile builder, whose cache lives in
// <data-root>/builder.
func (d *Daemon) Builder() (*builder.Builder, error) {
	v, _ := builders.LoadOrStore(d, &builderOnce{})
	bo := v.(*builderOnce)
	bo.once.Do(func() {
		bo.b, bo.err = builder.New(d, filepath.Join(d.cfg.DataRoot, "builder"))
		if bo.err == nil {
			go func() {
				<-d.shutdown
				bo.b.Close()
			}()
		}
	})
	return bo.b, bo.err
}

// GetImage implements builder.Backend.
func (d *Daemon) GetImage(ctx context.Context, ref string) (*builder.Image, error) {
	img, err := d.Images.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	return &builder.Image{ID: img.ID, Config: img.Config}, nil
}

// CreateBuildContainer implements builder.Backend: the container has only
// loopback networking until the network issue lands.
func (d *Daemon) CreateBuildContainer(ctx context.Context, img digest.Digest, cfg *api.Config) (string, error) {
	c := *cfg
	c.Image = img.String()
	if c.Entrypoint == nil {
		c.Entrypoint = []string{""} // the step's command runs as given, not through the image's entrypoint
	}
	resp, err := d.ContainerCreate(ctx, CreateOptions{Config: &c, HostConfig: &api.HostConfig{NetworkMode: "none"}})
	if err != nil {
		return "", err
	}
	return resp.ID, nil
}

// RunContainer implements builder.Backend. Output is read back from the
// container's log as it is written, so nothing printed before the reader
// connects is lost.
func (d *Daemon) RunContainer(ctx context.Context, id string, stdout, stderr io.Writer) (int, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	waitC, err := d.ContainerWait(wctx, id, WaitNextExit)
	if err != nil {
		return -1, err
	}
	if err := d.ContainerStart(ctx, id); err != nil {
		return -1, err
	}
	logErrC := make(chan error, 1)
	go func() {
		logErrC <- d.ContainerLogs(ctx, id, LogsOptions{Stdout: true, Stderr: true, Follow: true, Tail: -1}, func(m LogMessage) error {
			w := stdout
			if m.Stream == "stderr" {
				w = stderr
			}
			_, err := w.Write(m.Line)
			return err
		})
	}()
	select {
	case res, ok := <-waitC:
		if !ok {
			return -1, ctx.Err()
		}
		if err := <-logErrC; err != nil && ctx.Err() == nil {
			return int(res.StatusCode), fmt.Errorf("read output of container %s: %w", id, err)
		}
		return int(res.StatusCode), nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// RemoveContainer implements builder.Backend.
func (d *Daemon) RemoveContainer(ctx context.Context, id string) error {
	return d.ContainerRemove(ctx, id, RemoveOptions{Force: true, Volumes: true})
}

// CommitContainer implements builder.Backend.
func (d *Daemon) CommitContainer(ctx context.Context, id string, cfg *dockerspec.DockerOCIImageConfig, createdBy string) (digest.Digest, error) {
	c, err := d.Containers.Get(id)
	if err != nil {
		return "", err
	}
	img, err := d.Images.Commit(ctx, image.CommitOptions{Snapshot: c.ID, Image: c.ImageID, Config: cfg, CreatedBy: createdBy})
	if err != nil {
		return "", fmt.Errorf("commit build container %s: %w", c.ID[:12], err)
	}
	return img.ID, nil
}

// CommitFiles implements builder.Backend.
func (d *Daemon) CommitFiles(ctx context.Context, parent digest.Digest, cfg *dockerspec.DockerOCIImageConfig, createdBy string, fn func(root string) error) (digest.Digest, error) {
	chain := ""
	if parent != "" {
		img, err := d.Images.Get(ctx, parent.String())
		if err != nil {
			return "", err
		}
		chain = img.ChainID
	}
	key := "build-" + randomHex()
	if _, err := d.Snapshots.Prepare(ctx, key, chain); err != nil {
		return "", err
	}
	defer func() {
		logErr("remove build snapshot", d.Snapshots.Remove(context.WithoutCancel(ctx), key), "key", key)
	}()
	if err := d.withMounted(ctx, key, fn); err != nil {
		return "", err
	}
	img, err := d.Images.Commit(ctx, image.CommitOptions{Snapshot: key, Image: parent, Config: cfg, CreatedBy: createdBy})
	if err != nil {
		return "", err
	}
	return img.ID, nil
}

// CommitLayer implements builder.Backend: the layer's tar goes straight
// into the image store (no writable layer, no files written one by one).
func (d *Daemon) CommitLayer(ctx context.Context, parent digest.Digest, cfg *dockerspec.DockerOCIImageConfig, createdBy string, write func(w io.Writer) error) (digest.Digest, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(write(pw)) }()
	defer pr.CloseWithError(io.ErrClosedPipe)
	img, err := d.Images.Commit(ctx, image.CommitOptions{Layer: pr, Image: parent, Config: cfg, CreatedBy: createdBy})
	if err != nil {
		return "", err
	}
	return img.ID, nil
}

// MountImage implements builder.Backend with the image's layers mounted
// read-only (no writable layer to create and remove: a COPY consults it).
func (d *Daemon) MountImage(ctx context.Context, id digest.Digest, fn func(root string) error) error {
	img, err := d.Images.Get(ctx, id.String())
	if err != nil {
		return err
	}
	if img.ChainID == "" { // no layers: an empty file system
		dir, err := os.MkdirTemp("", "berth-build-empty-")
		if err != nil {
			return errdefs.System("create empty build view: %w", err)
		}
		defer os.RemoveAll(dir)
		return fn(dir)
	}
	return d.withMounted(ctx, img.ChainID, fn)
}

func (d *Daemon) withMounted(ctx context.Context, key string, fn func(root string) error) error {
	mounts, err := d.Snapshots.Mounts(ctx, key)
	if err != nil {
		return err
	}
	base := filepath.Join(d.cfg.ExecRoot, "build")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return errdefs.System("create build mount directory: %w", err)
	}
	dir, err := os.MkdirTemp(base, "mnt-")
	if err != nil {
		return errdefs.System("create build mount directory: %w", err)
	}
	defer os.Remove(dir)
	if err := snapshot.MountAll(mounts, dir); err != nil {
		return fmt.Errorf("mount build layer %s: %w", key, err)
	}
	ferr := fn(dir)
	if err := snapshot.Unmount(dir); err != nil && ferr == nil {
		return fmt.Errorf("unmount build layer %s: %w", key, err)
	}
	return ferr
}

// CreateImage implements builder.Backend.
func (d *Daemon) CreateImage(ctx context.Context, parent digest.Digest, cfg *dockerspec.DockerOCIImageConfig, createdBy string) (digest.Digest, error) {
	var full dockerspec.DockerOCIImage
	var layers []image.Layer
	if parent != "" {
		img, err := d.Images.Get(ctx, parent.String())
		if err != nil {
			return "", err
		}
		full = img.Config
		if layers, err = d.Images.Layers(ctx, img); err != nil {
			return "", err
		}
	} else {
		full.Platform = ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	full.Config = *cfg
	now := time.Now().UTC()
	full.Created = &now
	full.History = append(full.History, ocispec.History{Created: &now, CreatedBy: createdBy, EmptyLayer: true})
	img, err := d.Images.Create(ctx, full, layers, image.CreateOptions{Parent: parent})
	if err != nil {
		return "", err
	}
	return img.ID, nil
}

// TagImage implements builder.Backend.
func (d *Daemon) TagImage(ctx context.Context, id digest.Digest, ref string) error {
	if err := d.Images.Tag(ctx, id.String(), ref); err != nil {
		return err
	}
	d.Events.Publish(events.ImageEventType, events.ActionTag, id.String(), map[string]string{"name": ref})
	return nil
}

// DeleteImage implements builder.Backend: only an untagged image nothing
// uses goes.
func (d *Daemon) DeleteImage(ctx context.Context, id digest.Digest) error {
	img, err := d.Images.Get(ctx, id.String())
	if err != nil {
		return err
	}
	if len(img.RepoTags) > 0 || len(img.RepoDigests) > 0 {
		return errdefs.Conflict("image %s is named (%v): not a cache-only image", id, img.RepoTags)
	}
	_, err = d.Images.Delete(ctx, id.String(), false, true)
	return err
}

func randomHex() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// PullImage implements builder.Backend with the daemon's distribution
// service.
func (d *Daemon) PullImage(ctx context.Context, ref string, auth map[string]builder.RegistryAuth, out io.Writer) (*builder.Image, error) {
	if d.Distribution == nil {
		return nil, errdefs.NotImplemented("pulling images is not available")
	}
	var creds distribution.Credentials
	if named, err := reference.ParseNormalizedNamed(ref); err == nil {
		if a, ok := authFor(auth, reference.Domain(named)); ok {
			creds = distribution.Credentials{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
		}
	}
	res, err := d.Distribution.Pull(ctx, ref, distribution.PullOptions{Credentials: creds}, func(p distribution.Progress) {
		if p.Total != 0 || p.Current != 0 || p.Status == "" {
			return // byte counts: the classic stream shows only state changes
		}
		if p.ID != "" {
			fmt.Fprintf(out, "%s: %s\n", p.ID, p.Status)
		} else {
			fmt.Fprintln(out, p.Status)
		}
	})
	if err != nil {
		return nil, err
	}
	d.Events.Publish(events.ImageEventType, events.ActionPull, res.Image.ID.String(), map[string]string{"name": res.Ref})
	return &builder.Image{ID: res.Image.ID, Config: res.Image.Config}, nil
}

// authFor finds a registry's entry in X-Registry-Config, whose keys are
// hosts or URLs ("https://index.docker.io/v1/" for Docker Hub).
func authFor(auth map[string]builder.RegistryAuth, domain string) (builder.RegistryAuth, bool) {
	for k, v := range auth {
		host := strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
		host, _, _ = strings.Cut(host, "/")
		if host == domain || (domain == "docker.io" && host == "index.docker.io") {
			return v, true
		}
	}
	return builder.RegistryAuth{}, false
}

// RestoreCachedImage implements builder.Backend.
func (d *Daemon) RestoreCachedImage(ctx context.Context, parent, source digest.Digest, layer int, cfg *dockerspec.DockerOCIImageConfig, h ocispec.History) (digest.Digest, error) {
	var full dockerspec.DockerOCIImage
	var layers []image.Layer
	if parent != "" {
		img, err := d.Images.Get(ctx, parent.String())
		if err != nil {
			return "", err
		}
		full = img.Config
		if layers, err = d.Images.Layers(ctx, img); err != nil {
			return "", err
		}
	} else {
		full.Platform = ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	if layer >= 0 {
		src, err := d.Images.Get(ctx, source.String())
		if err != nil {
			return "", err
		}
		srcLayers, err := d.Images.Layers(ctx, src)
		if err != nil {
			return "", err
		}
		if layer >= len(srcLayers) || (len(layers) > 0 && srcLayers[layer].Parent != layers[len(layers)-1].ChainID) {
			return "", errdefs.InvalidArgument("cache image %s: layer %d does not extend %s", source, layer, parent)
		}
		layers = append(layers, srcLayers[layer])
	}
	full.Config = *cfg
	full.Created = h.Created
	full.History = append(full.History, h)
	img, err := d.Images.Create(ctx, full, layers, image.CreateOptions{Parent: parent})
	if err != nil {
		return "", err
	}
	return img.ID, nil
}
