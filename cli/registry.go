package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/moby/moby/api/types/registry"
)

// Credential helpers (docker-credential-helpers' protocol), configured in
// config.json as "credsStore": "<name>" for every registry or
// "credHelpers": {"<registry key>": "<name>"} for one; the program is
// docker-credential-<name> on $PATH. Its verbs read stdin and write stdout:
//
//	get    server URL                               -> {"ServerURL","Username","Secret"}
//	store  {"ServerURL","Username","Secret"}
//	erase  server URL
//
// An identity token is stored with the Username "<token>".

// identityTokenUser marks a helper entry whose Secret is an identity token.
const identityTokenUser = "<token>"

// errCredentialsNotFound is a helper's answer for an unknown server.
var errCredentialsNotFound = errors.New("credentials not found in native keychain")

// credentialHelper names the helper config.json configures for key:
// credHelpers[key], else credsStore; "" when there is none.
func credentialHelper(m map[string]json.RawMessage, key string) string {
	var per map[string]string
	if raw, ok := m["credHelpers"]; ok && json.Unmarshal(raw, &per) == nil && per[key] != "" {
		return per[key]
	}
	var store string
	if raw, ok := m["credsStore"]; ok && json.Unmarshal(raw, &store) == nil {
		return store
	}
	return ""
}

type helperCredentials struct {
	ServerURL string `json:"ServerURL"`
	Username  string `json:"Username"`
	Secret    string `json:"Secret"`
}

// runHelper runs docker-credential-<helper> verb with stdin.
func runHelper(helper, verb string, stdin []byte) ([]byte, error) {
	cmd := exec.Command("docker-credential-"+helper, verb)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String() + " " + errb.String())
		if strings.Contains(msg, errCredentialsNotFound.Error()) {
			return nil, errCredentialsNotFound
		}
		return nil, fmt.Errorf("error %s credentials with docker-credential-%s: %v: %s", verbing(verb), helper, err, msg)
	}
	return out.Bytes(), nil
}

func verbing(verb string) string {
	switch verb {
	case "get":
		return "getting"
	case "store":
		return "storing"
	}
	return "erasing"
}

// helperGet asks the helper for key's credentials; a server it does not
// know gives empty credentials, not an error.
func helperGet(helper, key string) (registry.AuthConfig, error) {
	ac := registry.AuthConfig{ServerAddress: key}
	out, err := runHelper(helper, "get", []byte(key))
	if errors.Is(err, errCredentialsNotFound) {
		return ac, nil
	}
	if err != nil {
		return ac, err
	}
	var hc helperCredentials
	if err := json.Unmarshal(out, &hc); err != nil {
		return ac, fmt.Errorf("reading credentials from docker-credential-%s: %w", helper, err)
	}
	if hc.Username == identityTokenUser {
		ac.IdentityToken = hc.Secret
	} else {
		ac.Username, ac.Password = hc.Username, hc.Secret
	}
	return ac, nil
}

// helperStore gives the helper ac's credentials for key.
func helperStore(helper, key string, ac registry.AuthConfig) error {
	hc := helperCredentials{ServerURL: key, Username: ac.Username, Secret: ac.Password}
	if ac.IdentityToken != "" {
		hc.Username, hc.Secret = identityTokenUser, ac.IdentityToken
	}
	b, err := json.Marshal(hc)
	if err != nil {
		return err
	}
	_, err = runHelper(helper, "store", b)
	return err
}

// helperErase makes the helper forget key; forgetting an unknown server is fine.
func helperErase(helper, key string) error {
	_, err := runHelper(helper, "erase", []byte(key))
	if errors.Is(err, errCredentialsNotFound) {
		return nil
	}
	return err
}
