package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// DefaultRegistryKey is the config.json key docker uses for Docker Hub.
const DefaultRegistryKey = "https://index.docker.io/v1/"

// storedAuth is one "auths" entry of config.json.
type storedAuth struct {
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
}

// registryKey is the config.json key for a registry host ("docker.io" -> Docker Hub's key).
func registryKey(host string) string {
	host = strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://")
	if i := strings.IndexByte(host, '/'); i >= 0 {
		host = host[:i]
	}
	switch host {
	case "", "docker.io", "index.docker.io", "registry-1.docker.io":
		return DefaultRegistryKey
	}
	return host
}

// registryKeyForImage is the credentials key for an image reference.
func registryKeyForImage(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return DefaultRegistryKey
	}
	return registryKey(reference.Domain(named))
}

func (c *CLI) configPath() string { return filepath.Join(c.ConfigDir(), "config.json") }

// readConfigMap reads config.json keeping every key, so that writing it back loses nothing.
func (c *CLI) readConfigMap() (map[string]json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	b, err := os.ReadFile(c.configPath())
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", c.configPath(), err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("reading %s: %w", c.configPath(), err)
	}
	return m, nil
}

func (c *CLI) readAuths() (map[string]storedAuth, map[string]json.RawMessage, error) {
	m, err := c.readConfigMap()
	if err != nil {
		return nil, nil, err
	}
	auths := map[string]storedAuth{}
	if raw, ok := m["auths"]; ok {
		if err := json.Unmarshal(raw, &auths); err != nil {
			return nil, nil, fmt.Errorf("reading the auths of %s: %w", c.configPath(), err)
		}
	}
	return auths, m, nil
}

// writeAuths stores auths into config.json atomically (temp file, fsync, rename), mode 0600.
func (c *CLI) writeAuths(auths map[string]storedAuth, m map[string]json.RawMessage) error {
	raw, err := json.Marshal(auths)
	if err != nil {
		return err
	}
	m["auths"] = raw
	b, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return err
	}
	dir := c.ConfigDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating config directory %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".config.json-*")
	if err != nil {
		return fmt.Errorf("saving %s: %w", c.configPath(), err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("saving %s: %w", c.configPath(), err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("saving %s: %w", c.configPath(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving %s: %w", c.configPath(), err)
	}
	if err := os.Rename(tmp.Name(), c.configPath()); err != nil {
		return fmt.Errorf("saving %s: %w", c.configPath(), err)
	}
	return nil
}

// credentials returns the stored credentials for a registry key (empty when none).
func (c *CLI) credentials(key string) registry.AuthConfig {
	auths, m, err := c.readAuths()
	if err != nil {
		return registry.AuthConfig{ServerAddress: key}
	}
	if helper := credentialHelper(m, key); helper != "" {
		ac, err := helperGet(helper, key)
		if err != nil {
			fmt.Fprintln(c.err, err)
		}
		return ac
	}
	a := auths[key]
	ac := registry.AuthConfig{ServerAddress: key, IdentityToken: a.IdentityToken}
	if a.Auth != "" {
		if dec, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
			ac.Username, ac.Password, _ = strings.Cut(string(dec), ":")
		}
	}
	return ac
}

// encodedAuthForImage is the X-Registry-Auth value for ref (docker always sends one, even empty).
func (c *CLI) encodedAuthForImage(ref string) string {
	enc, err := authconfig.Encode(c.credentials(registryKeyForImage(ref)))
	if err != nil {
		return ""
	}
	return enc
}

func newLoginCommand(c *CLI) *cobra.Command {
	var username, password string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Authenticate to a registry",
		Args:  rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := DefaultRegistryKey
			if len(args) == 1 {
				server = registryKey(args[0])
			}
			if password != "" {
				fmt.Fprintln(c.err, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
				if passwordStdin {
					return errors.New("--password and --password-stdin are mutually exclusive")
				}
			}
			if passwordStdin {
				if username == "" {
					return errors.New("Must provide --username with --password-stdin")
				}
				b, err := io.ReadAll(c.in)
				if err != nil {
					return err
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			if username == "" || password == "" {
				if err := c.promptCredentials(&username, &password); err != nil {
					return err
				}
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.RegistryLogin(cmd.Context(), client.RegistryLoginOptions{
				Username: username, Password: password, ServerAddress: server,
			})
			if err != nil {
				return err
			}
			auths, m, err := c.readAuths()
			if err != nil {
				return err
			}
			if helper := credentialHelper(m, server); helper != "" {
				ac := registry.AuthConfig{Username: username, Password: password, IdentityToken: res.Auth.IdentityToken}
				if err := helperStore(helper, server, ac); err != nil {
					return err
				}
				fmt.Fprintln(c.out, loginStatus(res.Auth.Status))
				return nil
			}
			entry := storedAuth{Auth: base64.StdEncoding.EncodeToString([]byte(username + ":" + password))}
			if res.Auth.IdentityToken != "" {
				entry = storedAuth{Auth: base64.StdEncoding.EncodeToString([]byte(username + ":")), IdentityToken: res.Auth.IdentityToken}
			}
			auths[server] = entry
			if err := c.writeAuths(auths, m); err != nil {
				return err
			}
			fmt.Fprintf(c.err, "WARNING! Your credentials are stored unencrypted in '%s'.\n", c.configPath())
			fmt.Fprintln(c.out, loginStatus(res.Auth.Status))
			return nil
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&username, "username", "u", "", "Username")
	flags.StringVarP(&password, "password", "p", "", "Password or Personal Access Token (PAT)")
	flags.BoolVar(&passwordStdin, "password-stdin", false, "Take the Password or Personal Access Token (PAT) from stdin")
	return cmd
}

// loginStatus is the daemon's login answer, or docker's default line.
func loginStatus(status string) string {
	if status == "" {
		return "Login Succeeded"
	}
	return status
}

// promptCredentials asks for what is missing on the terminal (the password without echo).
func (c *CLI) promptCredentials(username, password *string) error {
	fd, isTerm := terminalFd(c.in)
	if !isTerm {
		return errors.New("Error: Cannot perform an interactive login from a non TTY device")
	}
	if *username == "" {
		fmt.Fprint(c.out, "Username: ")
		line, err := bufio.NewReader(c.in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		*username = strings.TrimSpace(line)
		if *username == "" {
			return errors.New("Error: Non-null Username Required")
		}
	}
	if *password == "" {
		fmt.Fprint(c.out, "Password: ")
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(c.out)
		if err != nil {
			return err
		}
		*password = string(b)
		if *password == "" {
			return errors.New("Error: Password Required")
		}
	}
	return nil
}

func newLogoutCommand(c *CLI) *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Log out from a registry",
		Args:  rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := DefaultRegistryKey
			if len(args) == 1 {
				server = registryKey(args[0])
			}
			auths, m, err := c.readAuths()
			if err != nil {
				return err
			}
			if helper := credentialHelper(m, server); helper != "" {
				fmt.Fprintf(c.out, "Removing login credentials for %s\n", server)
				return helperErase(helper, server)
			}
			if _, ok := auths[server]; !ok {
				fmt.Fprintf(c.out, "Not logged in to %s\n", server)
				return nil
			}
			fmt.Fprintf(c.out, "Removing login credentials for %s\n", server)
			delete(auths, server)
			return c.writeAuths(auths, m)
		},
	}
}

func newPushCommand(c *CLI) *cobra.Command {
	var quiet, all bool
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG]",
		Short: "Upload an image to a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			named, err := reference.ParseNormalizedNamed(args[0])
			if err != nil {
				return fmt.Errorf("invalid reference format: %s", args[0])
			}
			if !all && reference.IsNameOnly(named) {
				named = reference.TagNameOnly(named)
				if !quiet {
					fmt.Fprintln(c.out, "Using default tag: latest")
				}
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			resp, err := api.ImagePush(cmd.Context(), reference.FamiliarString(named), client.ImagePushOptions{
				All: all, RegistryAuth: c.encodedAuthForImage(args[0]),
			})
			if err != nil {
				return err
			}
			defer resp.Close()
			if quiet {
				if err := c.displayJSONMessages(resp, io.Discard); err != nil {
					return err
				}
				fmt.Fprintln(c.out, named.String())
				return nil
			}
			return c.displayJSONMessages(resp, c.out)
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	cmd.Flags().BoolVarP(&all, "all-tags", "a", false, "Push all tags of an image to the repository")
	return cmd
}

// pullAuth is the X-Registry-Auth for a pull of ref.
func (c *CLI) pullAuth(_ context.Context, ref string) string { return c.encodedAuthForImage(ref) }
