package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/content"
	"github.com/berth-dev/berth/distribution"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/metadata"
	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/volume"
	api "github.com/moby/moby/api/types/container"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// Config is berthd's configuration, with dockerd's flag names.
type Config struct {
	DataRoot       string            // --data-root
	ExecRoot       string            // --exec-root
	DefaultRuntime string            // --default-runtime (a key of Runtimes)
	Runtimes       map[string]string // name -> binary; always has "runc"
	ShimBinary     string            // berth-shim; default: beside the berthd executable, then $PATH
	InitPath       string            // --init-path: static tini for --init
	CgroupParent   string            // --cgroup-parent (default "berth")
	Bridge         string            // --bridge: the default network's Linux bridge (default berth0)
	BIP            string            // --bip: the bridge's address/prefix ("" = a free pool)
	NoIPTables     bool              // --iptables=false: no nftables rules (no NAT, no published ports)
	// InsecureRegistries (--insecure-registry) may be reached over plain HTTP.
	InsecureRegistries []string
	// RegistryMirrors (--registry-mirror) are tried for docker.io first.
	RegistryMirrors []string
	// LayerImages (--storage-opt overlay2.layer-images=auto|true|false):
	// unpack layers into EROFS images.
	LayerImages snapshot.LayerImages
	// LogConfig (--log-driver, --log-opt) is the log driver and options of containers created without one.
	LogConfig api.LogConfig
}

// Daemon owns every service berthd runs.
type Daemon struct {
	cfg       Config
	db        *bolt.DB
	Content   *content.Store
	Snapshots *snapshot.Overlay
	Images    *image.Store
	Volumes   *volume.Store
	// Distribution pulls and pushes images and logs in to registries.
	Distribution *distribution.Service
	Containers   *container.Store
	Events       *Events
	Networks     *network.Manager
	started      time.Time

	rtMu     sync.Mutex
	runtimes map[string]*runtime.Runtime

	live  sync.Map // container id -> *live: runtime-only state
	execs sync.Map // exec id -> *Exec

	shutdown chan struct{}
}

// New opens the stores under cfg's roots and re-adopts every container
// whose shim outlived the previous daemon.
func New(ctx context.Context, cfg Config) (*Daemon, error) {
	if cfg.DataRoot == "" || cfg.ExecRoot == "" {
		return nil, errdefs.InvalidArgument("data root and exec root must be set")
	}
	if cfg.Runtimes == nil {
		cfg.Runtimes = map[string]string{}
	}
	if _, ok := cfg.Runtimes["runc"]; !ok {
		cfg.Runtimes["runc"] = "runc"
	}
	if cfg.DefaultRuntime == "" {
		cfg.DefaultRuntime = "runc"
	}
	if _, ok := cfg.Runtimes[cfg.DefaultRuntime]; !ok {
		return nil, errdefs.InvalidArgument("default runtime %q is not configured", cfg.DefaultRuntime)
	}
	cfg.LogConfig.Type = cmp.Or(cfg.LogConfig.Type, logDriverJSONFile)
	if err := validateLogConfig(cfg.LogConfig); err != nil {
		return nil, fmt.Errorf("default log driver (--log-driver, --log-opt): %w", err)
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "berth"
	}
	if cfg.ShimBinary == "" {
		cfg.ShimBinary = findBinary("berth-shim")
	}
	if cfg.InitPath == "" {
		for _, p := range []string{"/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/libexec/docker/docker-init"} {
			if _, err := os.Stat(p); err == nil {
				cfg.InitPath = p
				break
			}
		}
	}
	for _, dir := range []string{cfg.DataRoot, filepath.Join(cfg.DataRoot, "containers"), filepath.Join(cfg.ExecRoot, "containers")} {
		if err := os.MkdirAll(dir, 0o710); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	db, err := metadata.Open(filepath.Join(cfg.DataRoot, "metadata.db"))
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, db: db, Events: NewEvents(), started: time.Now(), runtimes: map[string]*runtime.Runtime{}, shutdown: make(chan struct{})}
	if d.Content, err = content.NewStore(filepath.Join(cfg.DataRoot, "content")); err != nil {
		db.Close()
		return nil, err
	}
	if d.Snapshots, err = snapshot.NewOverlay(filepath.Join(cfg.DataRoot, "snapshots"), db, snapshot.Options{LayerImages: cfg.LayerImages}); err != nil {
		db.Close()
		return nil, err
	}
	slog.Info("snapshots", "layer-images", d.Snapshots.LayerImages())
	if d.Images, err = image.NewStore(db, d.Content, d.Snapshots); err != nil {
		db.Close()
		return nil, err
	}
	if d.Distribution, err = distribution.New(d.Images, distribution.Config{InsecureRegistries: cfg.InsecureRegistries, Mirrors: cfg.RegistryMirrors}); err != nil {
		db.Close()
		return nil, err
	}
	if d.Containers, err = container.NewStore(db); err != nil {
		db.Close()
		return nil, err
	}
	if d.Volumes, err = volume.NewStore(filepath.Join(cfg.DataRoot, "volumes"), db); err != nil {
		db.Close()
		return nil, err
	}
	d.Images.SetUsers(d)
	if d.Networks, err = d.newNetworks(ctx); err != nil {
		db.Close()
		return nil, err
	}
	d.restore(ctx)
	d.adoptNetworks(ctx)
	d.restoreVolumes(ctx)
	return d, nil
}

// Close stops background work and closes the database. Running containers
// keep running: their shims own them.
func (d *Daemon) Close() error {
	close(d.shutdown)
	d.Networks.Close()
	d.Snapshots.Close()
	return d.db.Close()
}

// Config returns the daemon's configuration.
func (d *Daemon) Config() Config { return d.cfg }

// runtimeFor returns the driver for a runtime name ("" = default).
func (d *Daemon) runtimeFor(name string) (*runtime.Runtime, string, error) {
	if name == "" {
		name = d.cfg.DefaultRuntime
	}
	bin, ok := d.cfg.Runtimes[name]
	if !ok {
		return nil, "", errdefs.InvalidArgument("unknown or invalid runtime name: %s", name)
	}
	d.rtMu.Lock()
	defer d.rtMu.Unlock()
	rt, ok := d.runtimes[name]
	if !ok {
		rt = runtime.New(bin, d.runtimeRoot(name))
		d.runtimes[name] = rt
	}
	return rt, bin, nil
}

func (d *Daemon) runtimeRoot(name string) string {
	return filepath.Join(d.cfg.ExecRoot, "runtime", name)
}

// ImageUsers lists the containers created from image id (image.Users).
func (d *Daemon) ImageUsers(ctx context.Context, id digest.Digest) []string {
	var out []string
	for _, c := range d.Containers.List() {
		if c.ImageID == id {
			out = append(out, c.ID)
		}
	}
	return out
}

// ImageRunningUsers lists the running containers of image id: rmi refuses
// them even with force (image.RunningUsers).
func (d *Daemon) ImageRunningUsers(ctx context.Context, id digest.Digest) []string {
	var out []string
	for _, c := range d.Containers.List() {
		if c.ImageID != id {
			continue
		}
		c.Lock()
		if c.State.Running() {
			out = append(out, c.ID)
		}
		c.Unlock()
	}
	return out
}

var (
	_ image.Users        = (*Daemon)(nil)
	_ image.RunningUsers = (*Daemon)(nil)
)

// findBinary looks beside the running executable first, then in $PATH.
func findBinary(name string) string {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}

func logErr(msg string, err error, args ...any) {
	if err != nil && !errors.Is(err, context.Canceled) {
		slog.Warn(msg, append(args, "error", err)...)
	}
}
