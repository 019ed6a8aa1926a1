package container

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
	"sync"
	"time"

	api "github.com/moby/moby/api/types/container"
	"github.com/opencontainers/go-digest"
)

// Container is one container's record. The exported fields are persisted;
// the rest lives only while the daemon runs. Lock mu around any change.
type Container struct {
	ID         string
	Name       string // with Docker's leading slash: "/web"
	Created    time.Time
	Image      string        // as the user gave it
	ImageID    digest.Digest // config digest
	Config     *api.Config
	HostConfig *api.HostConfig
	State      State
	Path       string
	Args       []string
	Driver     string

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every state change
}

// Lock and Unlock guard the record and its runtime fields.
func (c *Container) Lock()   { c.mu.Lock() }
func (c *Container) Unlock() { c.mu.Unlock() }

// Changed returns a channel closed at the next state change. Call with the
// lock held, then wait after unlocking.
func (c *Container) Changed() <-chan struct{} {
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.changed
}

// Notify wakes everyone waiting on Changed. Call with the lock held.
func (c *Container) Notify() {
	if c.changed != nil {
		close(c.changed)
	}
	c.changed = make(chan struct{})
}

// ShortID is the 12-character form shown in tables.
func (c *Container) ShortID() string { return c.ID[:12] }

// DisplayName drops the leading slash.
func (c *Container) DisplayName() string { return strings.TrimPrefix(c.Name, "/") }

// NewID returns a random 64-hex container or exec id that is not all digits
// (Docker avoids those so short ids never read as numbers).
func NewID() string {
	for {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			panic("crypto/rand unavailable: " + err.Error()) // the kernel's CSPRNG never fails on Linux
		}
		id := hex.EncodeToString(b)
		if strings.Trim(id[:12], "0123456789") != "" {
			return id
		}
	}
}

var validName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidName reports whether name is acceptable as Docker defines it.
func ValidName(name string) bool { return validName.MatchString(name) }
