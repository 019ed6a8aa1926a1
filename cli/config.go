package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ConfigFile is the part of docker's config.json that berth honours, read from the config directory.
type ConfigFile struct {
	PsFormat      string `json:"psFormat,omitempty"`
	ImagesFormat  string `json:"imagesFormat,omitempty"`
	DetachKeys    string `json:"detachKeys,omitempty"`
	HistoryFormat string `json:"historyFormat,omitempty"`
}

// LoadConfigFile reads dir/config.json; a missing file is an empty config.
func LoadConfigFile(dir string) (ConfigFile, error) {
	var cf ConfigFile
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cf, nil
	}
	if err != nil {
		return cf, fmt.Errorf("loading config file %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &cf); err != nil {
		return ConfigFile{}, fmt.Errorf("loading config file %s: %w", path, err)
	}
	return cf, nil
}

// Config returns the client config, loaded once; a broken file is reported on stderr and ignored, as docker does.
func (c *CLI) Config() ConfigFile {
	if c.config != nil {
		return *c.config
	}
	cf, err := LoadConfigFile(c.ConfigDir())
	if err != nil {
		fmt.Fprintf(c.err, "WARNING: Error %v\n", err)
	}
	c.config = &cf
	return cf
}

// detachKeysOr is the --detach-keys value, else the config file's detachKeys.
func (c *CLI) detachKeysOr(flag string) string {
	if flag != "" {
		return flag
	}
	return c.Config().DetachKeys
}
