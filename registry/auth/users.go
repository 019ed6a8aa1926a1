package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"golang.org/x/crypto/bcrypt"
)

// userNameRe: a user name is one repository path component, so NAME/* is a
// valid namespace.
var userNameRe = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

// ValidateUserName checks a user name.
func ValidateUserName(name string) error {
	if len(name) < 2 || len(name) > 64 || !userNameRe.MatchString(name) {
		return errdefs.InvalidArgument("user name %q: must be 2-64 lowercase letters, digits and single . _ - between them", name)
	}
	return nil
}

type userRecord struct {
	Name     string    `json:"name"`
	Hash     string    `json:"bcrypt"`
	Created  time.Time `json:"created"`
	Modified time.Time `json:"modified"`
}

// Users is the account store: one 0600 JSON file per user under dir.
type Users struct {
	dir string

	mu    sync.Mutex
	cache map[string]verified // name -> last password that matched this hash
}

type verified struct {
	hash string
	sum  [32]byte
}

// OpenUsers opens (creating) the account store in dir.
func OpenUsers(dir string) (*Users, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, errdefs.System("open user store %s: %v", dir, err)
	}
	return &Users{dir: dir, cache: map[string]verified{}}, nil
}

func (u *Users) file(name string) string { return filepath.Join(u.dir, name+".json") }

func (u *Users) read(name string) (userRecord, error) {
	var rec userRecord
	b, err := os.ReadFile(u.file(name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return rec, errdefs.NotFound("no such user: %s", name)
		}
		return rec, errdefs.System("read user %s: %v", name, err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, errdefs.System("user %s: corrupt record: %v", name, err)
	}
	return rec, nil
}

func (u *Users) write(rec userRecord) error {
	b, _ := json.MarshalIndent(rec, "", "  ")
	f, err := os.CreateTemp(u.dir, ".tmp-")
	if err != nil {
		return errdefs.System("write user %s: %v", rec.Name, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return errdefs.System("write user %s: %v", rec.Name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return errdefs.System("sync user %s: %v", rec.Name, err)
	}
	if err := f.Close(); err != nil {
		return errdefs.System("close user %s: %v", rec.Name, err)
	}
	if err := os.Rename(tmp, u.file(rec.Name)); err != nil {
		return errdefs.System("rename user %s: %v", rec.Name, err)
	}
	return nil
}

func hashPassword(name, password string) (string, error) {
	if len(password) < 1 || len(password) > 72 {
		return "", errdefs.InvalidArgument("password for %s: must be 1-72 bytes", name)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", errdefs.System("hash password for %s: %v", name, err)
	}
	return string(h), nil
}

// Add creates a user; an existing name is a conflict.
func (u *Users) Add(name, password string) error {
	if err := ValidateUserName(name); err != nil {
		return err
	}
	if _, err := u.read(name); err == nil {
		return errdefs.Conflict("user %s already exists", name)
	}
	h, err := hashPassword(name, password)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	return u.write(userRecord{Name: name, Hash: h, Created: now, Modified: now})
}

// SetPassword changes a user's password.
func (u *Users) SetPassword(name, password string) error {
	if err := ValidateUserName(name); err != nil {
		return err
	}
	rec, err := u.read(name)
	if err != nil {
		return err
	}
	if rec.Hash, err = hashPassword(name, password); err != nil {
		return err
	}
	rec.Modified = time.Now().UTC()
	return u.write(rec)
}

// Remove deletes a user. Their repositories stay, owned by nobody until the
// name is added again.
func (u *Users) Remove(name string) error {
	if err := ValidateUserName(name); err != nil {
		return err
	}
	if err := os.Remove(u.file(name)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errdefs.NotFound("no such user: %s", name)
		}
		return errdefs.System("remove user %s: %v", name, err)
	}
	return nil
}

// Exists reports whether name is an account.
func (u *Users) Exists(name string) bool {
	if ValidateUserName(name) != nil {
		return false
	}
	_, err := u.read(name)
	return err == nil
}

// dummyHash is compared against when the user does not exist.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("no such user"), bcrypt.DefaultCost)

// Verify checks a password. Every failure reads the same to the caller.
func (u *Users) Verify(name, password string) error {
	bad := errdefs.Unauthorized("incorrect username or password")
	var rec userRecord
	err := ValidateUserName(name)
	if err == nil {
		rec, err = u.read(name)
	}
	if err != nil {
		// Spend the same bcrypt time as for a real account, so response
		// times do not tell which names exist.
		bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return bad
	}
	sum := sha256.Sum256([]byte(password))
	u.mu.Lock()
	v, ok := u.cache[name]
	u.mu.Unlock()
	// bcrypt costs ~50ms; a client logging in once then pushing many layers
	// asks for many tokens, so remember the last password that matched this hash.
	if ok && v.hash == rec.Hash && subtle.ConstantTimeCompare(v.sum[:], sum[:]) == 1 {
		return nil
	}
	if bcrypt.CompareHashAndPassword([]byte(rec.Hash), []byte(password)) != nil {
		return bad
	}
	u.mu.Lock()
	u.cache[name] = verified{hash: rec.Hash, sum: sum}
	u.mu.Unlock()
	return nil
}

// String describes the store for logs.
func (u *Users) String() string { return fmt.Sprintf("users(%s)", u.dir) }
