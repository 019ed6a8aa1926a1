// Package command is berthd's command line: flags with dockerd's names,
// listeners, signal handling.
package command

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/daemon"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/version"
	"github.com/moby/moby/api/types/container"
	"github.com/spf13/cobra"
)

type options struct {
	dataRoot, execRoot string
	hosts              []string
	logLevel           string
	defaultRuntime     string
	addRuntimes        []string
	initPath           string
	cgroupParent       string
	pidFile            string
	bridge             string
	bip                string
	iptables           bool
	insecureRegistries []string
	registryMirrors    []string
	storageOpts        []string
	logDriver          string
	logOpts            []string
}

// New returns the berthd root command.
func New() *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:           "berthd [OPTIONS]",
		Short:         "Berth's container daemon, serving the Docker Engine API",
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return run(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.dataRoot, "data-root", "/var/lib/berth", "Root directory of persistent state")
	f.StringVar(&o.execRoot, "exec-root", "/run/berth", "Root directory for execution state (sockets, bundles)")
	f.StringArrayVarP(&o.hosts, "host", "H", nil, "Daemon socket(s) to listen on (default unix://<exec-root>/berth.sock)")
	f.StringVarP(&o.logLevel, "log-level", "l", "info", `Log level ("debug"|"info"|"warn"|"error")`)
	f.StringVar(&o.defaultRuntime, "default-runtime", "runc", "Default OCI runtime for containers")
	f.StringArrayVar(&o.addRuntimes, "add-runtime", nil, "Register an OCI runtime as NAME=PATH")
	f.StringVar(&o.initPath, "init-path", "", "Path to the static init binary used by --init (default: tini-static)")
	f.StringVar(&o.cgroupParent, "cgroup-parent", "berth", "Parent cgroup for all containers")
	f.StringArrayVar(&o.insecureRegistries, "insecure-registry", nil, "Registry (host[:port] or CIDR) that may be reached over plain HTTP")
	f.StringArrayVar(&o.registryMirrors, "registry-mirror", nil, "Preferred registry mirror for docker.io (http:// or https:// URL)")
	f.StringVar(&o.logDriver, "log-driver", "json-file", `Default log driver for containers ("json-file"|"none")`)
	f.StringArrayVar(&o.logOpts, "log-opt", nil, "Default log driver options for containers (KEY=VALUE; json-file: max-size, max-file)")
	f.StringArrayVar(&o.storageOpts, "storage-opt", nil, `Storage driver options: overlay2.layer-images=auto|true|false (unpack layers into EROFS images)`)
	f.StringVarP(&o.bridge, "bridge", "b", "berth0", "Attach containers to a network bridge")
	f.StringVar(&o.bip, "bip", "", "Network bridge IP (CIDR), e.g. 10.1.2.1/24 (default: a free private /16)")
	f.BoolVar(&o.iptables, "iptables", true, "Enable addition of nftables rules (NAT, published ports, isolation)")
	f.StringVarP(&o.pidFile, "pidfile", "p", "", "Path to use for the daemon PID file (default <exec-root>/berthd.pid)")
	return cmd
}

func run(ctx context.Context, o options) error {
	level := slog.LevelInfo
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("invalid --log-level %q", o.logLevel)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	runtimes := map[string]string{"runc": "runc"}
	for _, r := range o.addRuntimes {
		name, path, ok := strings.Cut(r, "=")
		if !ok || name == "" || path == "" {
			return fmt.Errorf("invalid --add-runtime %q: want NAME=PATH", r)
		}
		runtimes[name] = path
	}
	dataRoot, err := filepath.Abs(o.dataRoot)
	if err != nil {
		return err
	}
	execRoot, err := filepath.Abs(o.execRoot)
	if err != nil {
		return err
	}
	if len(o.hosts) == 0 {
		o.hosts = []string{"unix://" + filepath.Join(execRoot, "berth.sock")}
	}
	if o.pidFile == "" {
		o.pidFile = filepath.Join(execRoot, "berthd.pid")
	}
	if err := os.MkdirAll(execRoot, 0o711); err != nil {
		return fmt.Errorf("create exec root: %w", err)
	}
	if err := os.WriteFile(o.pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	defer os.Remove(o.pidFile)

	layerImages := snapshot.LayerImagesAuto
	for _, so := range o.storageOpts {
		k, v, _ := strings.Cut(so, "=")
		switch strings.ToLower(k) {
		case "overlay2.layer-images", "overlay2.layer_images":
			if layerImages, err = snapshot.ParseLayerImages(v); err != nil {
				return fmt.Errorf("invalid --storage-opt %q: %w", so, err)
			}
		default:
			return fmt.Errorf("invalid --storage-opt %q: unknown option %s (known: overlay2.layer-images)", so, k)
		}
	}

	logOpts, err := parseLogOpts(o.logOpts)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d, err := daemon.New(ctx, daemon.Config{
		DataRoot: dataRoot, ExecRoot: execRoot, DefaultRuntime: o.defaultRuntime,
		Runtimes: runtimes, InitPath: o.initPath, CgroupParent: o.cgroupParent,
		Bridge: o.bridge, BIP: o.bip, NoIPTables: !o.iptables,
		InsecureRegistries: o.insecureRegistries, RegistryMirrors: o.registryMirrors,
		LayerImages: layerImages,
		LogConfig:   container.LogConfig{Type: o.logDriver, Config: logOpts},
	})
	if err != nil {
		return err
	}
	defer d.Close()
	h, err := server.New(d)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, len(o.hosts))
	for _, host := range o.hosts {
		l, err := listen(host)
		if err != nil {
			return err
		}
		slog.Info("API listening", "host", host)
		go func() { errc <- srv.Serve(l) }()
	}
	slog.Info("berthd started", "version", version.Version, "data-root", dataRoot, "exec-root", execRoot)
	select {
	case <-ctx.Done():
		slog.Info("shutting down; containers keep running under their shims")
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdownCtx)
	return nil
}

// listen opens unix:///path (mode 0660, a stale socket replaced) or tcp://host:port.
func listen(host string) (net.Listener, error) {
	proto, addr, ok := strings.Cut(host, "://")
	if !ok {
		return nil, fmt.Errorf("invalid -H %q: want unix:///path or tcp://host:port", host)
	}
	switch proto {
	case "unix":
		if err := os.MkdirAll(filepath.Dir(addr), 0o711); err != nil {
			return nil, err
		}
		if err := os.Remove(addr); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale socket %s: %w", addr, err)
		}
		l, err := net.Listen("unix", addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		if err := os.Chmod(addr, 0o660); err != nil {
			l.Close()
			return nil, err
		}
		return l, nil
	case "tcp":
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		return l, nil
	}
	return nil, fmt.Errorf("invalid -H %q: unsupported protocol %q", host, proto)
}

// parseLogOpts turns the --log-opt KEY=VALUE flags into the daemon's default log options (nil for none). The
// daemon checks the keys and values against the driver.
func parseLogOpts(flags []string) (map[string]string, error) {
	var opts map[string]string
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid --log-opt %q: want KEY=VALUE", f)
		}
		if opts == nil {
			opts = map[string]string{}
		}
		opts[k] = v
	}
	return opts, nil
}
