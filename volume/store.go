package volume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
	"github.com/berth-dev/berth/metadata"
)

// DefaultDriver is the only driver: directories (or a device mounted on
// them) under the data root.
const DefaultDriver = "local"

// AnonymousLabel marks volumes made for one container without a name
// (image VOLUME, -v /path). Docker sets the same label; prune removes only
// these unless asked for all.
const AnonymousLabel = "com.docker.volume.anonymous"

// Volume is a volume's persisted record.
type Volume struct {
	Name      string
	Driver    string
	Labels    map[string]string `json:",omitempty"`
	Options   map[string]string `json:",omitempty"`
	CreatedAt time.Time
}

// Anonymous reports whether v was made for a container without a name.
func (v *Volume) Anonymous() bool {
	_, ok := v.Labels[AnonymousLabel]
	return ok
}

// CreateOptions are a new volume's settings.
type CreateOptions struct {
	Driver  string            // "" or "local"
	Labels  map[string]string // user labels
	Options map[string]string // local driver: type, device, o
}

// Store keeps the volumes under one data root.
type Store struct {
	root string
	db   *bolt.DB

	mu      sync.Mutex
	refs    map[string]map[string]struct{} // volume name -> container ids
	copying map[string]*sync.Mutex         // volume name -> copy-up lock
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidName reports whether name is acceptable as a local volume's name.
func ValidName(name string) bool { return validName.MatchString(name) }

// NewStore opens the volume store rooted at root (<data-root>/volumes) and
// finishes what a crash may have cut short: a removal whose directory was
// already renamed away is completed, a create that never wrote its record
// is undone, and a record that lost its directory gets an empty one.
// Anything else found there is left alone (with a warning): the store only
// ever deletes directories it can tell it made.
func NewStore(root string, db *bolt.DB) (*Store, error) {
	if err := os.MkdirAll(root, 0o701); err != nil {
		return nil, errdefs.System("create volume root %s: %w", root, err)
	}
	s := &Store{root: root, db: db, refs: map[string]map[string]struct{}{}, copying: map[string]*sync.Mutex{}}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, errdefs.System("read volume root %s: %w", root, err)
	}
	// A removal renames the directory to .remove-<name>-<rand> before it
	// deletes the record: roll it forward.
	for _, e := range entries {
		name, ok := removedName(e.Name())
		if !ok {
			continue
		}
		err := db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(metadata.BucketVolumes).Delete([]byte(name))
		})
		if err != nil {
			return nil, errdefs.System("finish removal of volume %s: %w", name, err)
		}
		s.removeLogged(filepath.Join(root, e.Name()))
	}
	known := map[string]bool{}
	for _, v := range s.list() {
		known[v.Name] = true
		if err := os.MkdirAll(s.DataPath(v.Name), 0o755); err != nil {
			return nil, errdefs.System("recreate directory of volume %s: %w", v.Name, err)
		}
	}
	for _, e := range entries {
		path := filepath.Join(root, e.Name())
		switch {
		case known[e.Name()]:
		case strings.HasPrefix(e.Name(), ".remove-"):
		case strings.HasPrefix(e.Name(), ".create-"), ValidName(e.Name()) && isFreshVolumeDir(path):
			// A create cut short before (or just after) its rename: never
			// committed, and nothing was written into it.
			s.removeLogged(path)
		default:
			slog.Warn("volume store: leaving alone an entry it did not make", "path", path)
		}
	}
	return s, nil
}

// removedName reads the volume name out of ".remove-<name>-<rand>".
func removedName(entry string) (string, bool) {
	rest, ok := strings.CutPrefix(entry, ".remove-")
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 {
		return "", false
	}
	return rest[:i], ValidName(rest[:i])
}

// isFreshVolumeDir reports whether dir is exactly what makeDir builds: a
// directory holding nothing but an empty _data.
func isFreshVolumeDir(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || entries[0].Name() != "_data" || !entries[0].IsDir() {
		return false
	}
	empty, err := isEmptyDir(filepath.Join(dir, "_data"))
	return err == nil && empty
}

// removeLogged removes a directory the store made; one it cannot clear (a
// mount that will not go) is left for the next start rather than keeping
// the daemon down.
func (s *Store) removeLogged(dir string) {
	if err := s.removeDir(dir); err != nil {
		slog.Warn("volume store: cannot remove a leftover directory", "path", dir, "error", err)
	}
}

// Root is the directory holding every volume.
func (s *Store) Root() string { return s.root }

// DataPath is the directory a volume's content lives in (its Mountpoint).
func (s *Store) DataPath(name string) string { return filepath.Join(s.root, name, "_data") }

// Create makes a volume, or returns the existing one of that name (as
// Docker does) when the driver matches. An empty name gets a random
// 64-hex name. created reports whether a new volume was made.
func (s *Store) Create(ctx context.Context, name string, o CreateOptions) (v *Volume, created bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.create(name, o)
}

func (s *Store) create(name string, o CreateOptions) (*Volume, bool, error) {
	if o.Driver == "" {
		o.Driver = DefaultDriver
	}
	if name == "" {
		name = RandomName()
	}
	if len(name) == 1 && ValidName(name+"x") {
		return nil, false, errdefs.InvalidArgument("create %s: volume name is too short, names should be at least two alphanumeric characters", name)
	}
	if !ValidName(name) {
		return nil, false, errdefs.InvalidArgument("create %s: %q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path", name, name)
	}
	if existing, err := s.get(name); err == nil {
		if existing.Driver != o.Driver {
			return nil, false, errdefs.Conflict("create %s: volume name must be unique: a volume of that name exists with driver %s", name, existing.Driver)
		}
		return existing, false, nil
	} else if !errdefs.IsNotFound(err) {
		return nil, false, err
	}
	if o.Driver != DefaultDriver {
		return nil, false, errdefs.NotFound("create %s: error looking up volume plugin %s: plugin %q not found", name, o.Driver, o.Driver)
	}
	if _, err := parseDriverOptions(o.Options); err != nil {
		return nil, false, fmt.Errorf("create %s: %w", name, err)
	}
	v := &Volume{Name: name, Driver: o.Driver, Labels: copyMap(o.Labels), Options: copyMap(o.Options), CreatedAt: time.Now().UTC().Truncate(time.Second)}
	if err := s.makeDir(name); err != nil {
		return nil, false, err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, false, errdefs.System("encode volume %s: %w", name, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(metadata.BucketVolumes).Put([]byte(name), data)
	})
	if err != nil {
		s.removeDir(filepath.Join(s.root, name))
		return nil, false, errdefs.System("record volume %s: %w", name, err)
	}
	return v, true, nil
}

// makeDir builds <name>/_data under a temporary name and renames it into
// place, so a crash never leaves a half-made volume directory.
func (s *Store) makeDir(name string) error {
	tmp, err := os.MkdirTemp(s.root, ".create-"+name+"-")
	if err != nil {
		return errdefs.System("create directory of volume %s: %w", name, err)
	}
	fail := func(err error) error {
		os.RemoveAll(tmp)
		return errdefs.System("create directory of volume %s: %w", name, err)
	}
	if err := os.Chmod(tmp, 0o701); err != nil {
		return fail(err)
	}
	if err := os.Mkdir(filepath.Join(tmp, "_data"), 0o755); err != nil {
		return fail(err)
	}
	if err := os.Chmod(filepath.Join(tmp, "_data"), 0o755); err != nil { // umask
		return fail(err)
	}
	if err := fsutil.SyncDir(tmp); err != nil {
		return fail(err)
	}
	final := filepath.Join(s.root, name)
	if _, err := os.Lstat(final); err == nil {
		// A directory without a record: ours only if it is exactly what
		// this function builds; anything else is not ours to delete.
		if !isFreshVolumeDir(final) {
			os.RemoveAll(tmp)
			return errdefs.Conflict("create %s: %s exists and is not a volume of this store", name, final)
		}
		if err := s.removeDir(final); err != nil {
			os.RemoveAll(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	if err := fsutil.SyncDir(s.root); err != nil {
		return errdefs.System("create directory of volume %s: %w", name, err)
	}
	return nil
}

// Get returns the volume called name.
func (s *Store) Get(ctx context.Context, name string) (*Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.get(name)
}

func (s *Store) get(name string) (*Volume, error) {
	var v *Volume
	err := s.db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(metadata.BucketVolumes).Get([]byte(name))
		if data == nil {
			return errdefs.NotFound("get %s: no such volume", name)
		}
		v = &Volume{}
		if err := json.Unmarshal(data, v); err != nil {
			return errdefs.System("decode volume %s: %w", name, err)
		}
		return nil
	})
	return v, err
}

// List returns every volume, sorted by name. Records that do not decode
// are skipped.
func (s *Store) List(ctx context.Context) []*Volume {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list()
}

func (s *Store) list() []*Volume {
	var out []*Volume
	s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(metadata.BucketVolumes).ForEach(func(k, data []byte) error {
			if data == nil {
				return nil // a nested bucket: not a volume
			}
			v := &Volume{}
			if json.Unmarshal(data, v) == nil && v.Name == string(k) {
				out = append(out, v)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Remove deletes a volume and its content. A volume referenced by a
// container is a Conflict (HTTP 409) naming the containers.
func (s *Store) Remove(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.get(name); err != nil {
		return err
	}
	if users := s.users(name); len(users) > 0 {
		return errdefs.Conflict("remove %s: volume is in use - [%s]", name, strings.Join(users, ", "))
	}
	// Unmount a driver device first: never delete through a mount.
	if err := unmountData(s.DataPath(name)); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	// Rename the directory out of the way, then delete the record: a crash
	// in between is rolled forward by NewStore, and a name is never seen
	// with half its content.
	trash := filepath.Join(s.root, ".remove-"+name+"-"+RandomName()[:12])
	if err := os.Rename(filepath.Join(s.root, name), trash); err != nil && !errors.Is(err, os.ErrNotExist) {
		return errdefs.System("remove %s: %w", name, err)
	}
	if err := fsutil.SyncDir(s.root); err != nil {
		return errdefs.System("remove %s: %w", name, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(metadata.BucketVolumes).Delete([]byte(name))
	})
	if err != nil {
		os.Rename(trash, filepath.Join(s.root, name))
		return errdefs.System("remove %s: delete record: %w", name, err)
	}
	delete(s.copying, name)
	// The record is gone, so the volume is gone; a directory left by a
	// failure here is removed at the next start.
	if err := s.removeDir(trash); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// removeDir deletes a volume directory after unmounting its _data, and
// refuses if a mount is still there (a bind-mounted host directory must
// never be emptied).
func (s *Store) removeDir(dir string) error {
	if err := unmountData(filepath.Join(dir, "_data")); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return errdefs.System("remove volume directory %s: %w", dir, err)
	}
	return nil
}

// Acquire records that container ref uses volume name. With create set, a
// missing volume is made first (created reports it); the lookup and the
// reference are one step, so a concurrent Remove cannot slip between them.
func (s *Store) Acquire(ctx context.Context, name, ref string, create *CreateOptions) (v *Volume, created bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err = s.get(name)
	if errdefs.IsNotFound(err) && create != nil {
		v, created, err = s.create(name, *create)
	}
	if err != nil {
		return nil, false, err
	}
	if s.refs[name] == nil {
		s.refs[name] = map[string]struct{}{}
	}
	s.refs[name][ref] = struct{}{}
	return v, created, nil
}

// Release drops container ref's use of volume name. When the last user
// goes, a driver device mounted for the volume is unmounted.
func (s *Store) Release(ctx context.Context, name, ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.refs[name]; m != nil {
		delete(m, ref)
		if len(m) > 0 {
			return nil
		}
		delete(s.refs, name)
	}
	v, err := s.get(name)
	if err != nil || len(v.Options) == 0 {
		return nil
	}
	return unmountData(s.DataPath(name))
}

// Users returns the ids of the containers using volume name, sorted.
func (s *Store) Users(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users(name)
}

func (s *Store) users(name string) []string {
	out := make([]string, 0, len(s.refs[name]))
	for id := range s.refs[name] {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Mount makes the volume's content available at its data path and returns
// that path: with driver options the device is mounted there first (once;
// it stays until the last user releases the volume).
func (s *Store) Mount(ctx context.Context, name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.get(name)
	if err != nil {
		return "", err
	}
	path := s.DataPath(name)
	if err := os.MkdirAll(path, 0o755); err != nil {
		return "", errdefs.System("mount volume %s: %w", name, err)
	}
	if len(v.Options) == 0 {
		return path, nil
	}
	mounted, err := isMountpoint(path)
	if err != nil {
		return "", fmt.Errorf("mount volume %s: %w", name, err)
	}
	if mounted {
		return path, nil
	}
	m, err := parseDriverOptions(v.Options)
	if err != nil {
		return "", fmt.Errorf("mount volume %s: %w", name, err)
	}
	if err := m.Mount(path); err != nil {
		return "", fmt.Errorf("mount volume %s: %w", name, err)
	}
	return path, nil
}

// Size is the disk space a volume's content takes, as Docker counts it:
// apparent sizes of its regular files, a hard-linked file once; -1 when it
// cannot be read.
func (s *Store) Size(ctx context.Context, name string) int64 {
	var total int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(s.DataPath(name), func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed while we walk
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += fi.Size()
		return nil
	})
	if err != nil {
		return -1
	}
	return total
}

// RandomName returns a 64-hex name, as Docker gives unnamed volumes.
func RandomName() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand unavailable: " + err.Error()) // the kernel's CSPRNG never fails on Linux
	}
	return hex.EncodeToString(b)
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
