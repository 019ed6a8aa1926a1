// Command berth-registry serves an OCI Distribution registry with accounts,
// public and private repositories, token auth and online garbage collection.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/registry/auth"
	"github.com/berth-dev/berth/registry/storage"
	"github.com/berth-dev/berth/version"
	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "berth-registry:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "berth-registry",
		Short:         "An OCI registry with accounts, public and private repositories",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Version + " (" + version.GitCommit + ")",
	}
	root.AddCommand(newServe(), newUser(), newRepo(), newGC())
	return root
}

// authDir is where accounts and the token signing key live inside --root.
func authDir(root string) string { return filepath.Join(root, "_auth") }

func requireRoot(root string) error {
	if root == "" {
		return errdefs.InvalidArgument("--root is required")
	}
	return nil
}

func openAuthority(root string, store *storage.Store, service string) (*auth.Authority, error) {
	return auth.New(authDir(root), service, func(ctx context.Context, repo string) bool {
		v, err := store.GetVisibility(ctx, repo)
		return err == nil && v == storage.Public
	})
}

func newServe() *cobra.Command {
	var (
		addr, root, cert, key, service, logFormat string
		withAuth, accessLog                       bool
		shutdown, gcInterval, gcGrace             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the registry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireRoot(root); err != nil {
				return err
			}
			if (cert == "") != (key == "") {
				return errdefs.InvalidArgument("--tls-cert and --tls-key go together")
			}
			var handler slog.Handler
			switch logFormat {
			case "json":
				handler = slog.NewJSONHandler(os.Stderr, nil)
			case "text":
				handler = slog.NewTextHandler(os.Stderr, nil)
			default:
				return errdefs.InvalidArgument("--log-format %q: want json or text", logFormat)
			}
			log := slog.New(handler)
			store, err := storage.OpenFilesystem(root)
			if err != nil {
				return err
			}
			opts := []registry.Option{registry.WithStore(store), registry.WithLogger(log), registry.WithAccessLog(accessLog)}
			if withAuth {
				a, err := openAuthority(root, store, service)
				if err != nil {
					return err
				}
				opts = append(opts, registry.WithAuth(a))
			}
			h, err := registry.New(opts...)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(handler, slog.LevelWarn)}
			if cert != "" {
				pair, err := tls.LoadX509KeyPair(cert, key)
				if err != nil {
					return errdefs.InvalidArgument("load TLS key pair %s, %s: %v", cert, key, err)
				}
				srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return errdefs.InvalidArgument("listen on %s: %v", addr, err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if gcInterval > 0 {
				go func() {
					t := time.NewTicker(gcInterval)
					defer t.Stop()
					for {
						select {
						case <-ctx.Done():
							return
						case <-t.C:
							rep, err := store.GC(ctx, storage.GCOptions{Grace: gcGrace, UploadTTL: 7 * 24 * time.Hour})
							if err != nil {
								log.Error("gc failed", "err", err)
								continue
							}
							log.Info(rep.String())
						}
					}
				}()
			}
			errc := make(chan error, 1)
			go func() {
				if srv.TLSConfig != nil {
					errc <- srv.ServeTLS(ln, "", "")
				} else {
					errc <- srv.Serve(ln)
				}
			}()
			log.Info("serving", "addr", ln.Addr().String(), "root", root, "auth", withAuth, "tls", cert != "")
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			log.Info("shutting down: finishing requests in flight", "timeout", shutdown)
			sctx, cancel := context.WithTimeout(context.Background(), shutdown)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			log.Info("stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:5000", "address to listen on")
	f.StringVar(&root, "root", "", "storage directory")
	f.BoolVar(&withAuth, "auth", false, "require accounts and tokens (Docker's token protocol)")
	f.StringVar(&cert, "tls-cert", "", "TLS certificate file")
	f.StringVar(&key, "tls-key", "", "TLS key file")
	f.StringVar(&service, "service", "berth-registry", "service name in tokens")
	f.StringVar(&logFormat, "log-format", "json", "log format: json or text")
	f.BoolVar(&accessLog, "access-log", true, "log every request")
	f.DurationVar(&shutdown, "shutdown-timeout", time.Minute, "how long to wait for requests in flight on SIGTERM")
	f.DurationVar(&gcInterval, "gc-interval", 0, "run garbage collection this often while serving (0: never)")
	f.DurationVar(&gcGrace, "gc-grace", storage.DefaultGrace, "keep content linked more recently than this")
	return cmd
}

func readPassword(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1024))
	if err != nil {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	p := strings.TrimRight(string(b), "\r\n")
	if p == "" {
		return "", errdefs.InvalidArgument("empty password on stdin")
	}
	return p, nil
}

func newUser() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage accounts"}
	var root string
	var stdin bool
	mk := func(use, short string, fn func(u *auth.Users, name string, cmd *cobra.Command) error) *cobra.Command {
		c := &cobra.Command{
			Use:   use + " NAME",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := requireRoot(root); err != nil {
					return err
				}
				u, err := auth.OpenUsers(filepath.Join(authDir(root), "users"))
				if err != nil {
					return err
				}
				return fn(u, args[0], cmd)
			},
		}
		c.Flags().StringVar(&root, "root", "", "storage directory")
		return c
	}
	withPassword := func(fn func(u *auth.Users, name, pw string) error) func(*auth.Users, string, *cobra.Command) error {
		return func(u *auth.Users, name string, cmd *cobra.Command) error {
			if !stdin {
				return errdefs.InvalidArgument("give the password with --password-stdin")
			}
			pw, err := readPassword(cmd.InOrStdin())
			if err != nil {
				return err
			}
			return fn(u, name, pw)
		}
	}
	add := mk("add", "Create an account owning the namespace NAME/*", withPassword(func(u *auth.Users, name, pw string) error {
		return u.Add(name, pw)
	}))
	add.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from stdin")
	passwd := mk("passwd", "Change an account's password", withPassword(func(u *auth.Users, name, pw string) error {
		return u.SetPassword(name, pw)
	}))
	passwd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from stdin")
	rm := mk("rm", "Remove an account (its repositories stay)", func(u *auth.Users, name string, _ *cobra.Command) error {
		return u.Remove(name)
	})
	cmd.AddCommand(add, passwd, rm)
	return cmd
}

func newRepo() *cobra.Command {
	cmd := &cobra.Command{Use: "repo", Short: "Manage repositories"}
	var root string
	vis := &cobra.Command{
		Use:   "visibility REPO [public|private]",
		Short: "Show or set whether anonymous users may pull REPO",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireRoot(root); err != nil {
				return err
			}
			store, err := storage.OpenFilesystem(root)
			if err != nil {
				return err
			}
			if err := storage.ValidateName(args[0]); err != nil {
				return err
			}
			if len(args) == 1 {
				v, err := store.GetVisibility(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), v)
				return nil
			}
			v, err := storage.ParseVisibility(args[1])
			if err != nil {
				return err
			}
			return store.SetVisibility(cmd.Context(), args[0], v)
		},
	}
	vis.Flags().StringVar(&root, "root", "", "storage directory")
	cmd.AddCommand(vis)
	return cmd
}

func newGC() *cobra.Command {
	var root string
	var dry bool
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove manifests and blobs no tag reaches; safe while the registry serves",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireRoot(root); err != nil {
				return err
			}
			if _, err := os.Stat(root); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return errdefs.NotFound("storage directory %s does not exist", root)
				}
				return err
			}
			store, err := storage.OpenFilesystem(root)
			if err != nil {
				return err
			}
			rep, err := store.GC(cmd.Context(), storage.GCOptions{DryRun: dry, Grace: grace, UploadTTL: 7 * 24 * time.Hour})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), rep.String())
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "storage directory")
	cmd.Flags().BoolVar(&dry, "dry-run", false, "report what would be freed, remove nothing")
	cmd.Flags().DurationVar(&grace, "grace", storage.DefaultGrace, "keep content linked more recently than this (protects pushes in progress)")
	return cmd
}
