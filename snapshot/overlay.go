package snapshot

// A snapshot is a directory tree with a name (its key). Berth uses two kinds:
//
// Committed snapshots are unpacked image layers. The key of a layer's
// snapshot is the layer's chain ID, so a layer that two images share is
// unpacked once and used by both. A committed snapshot never changes.
//
// Active snapshots are writable layers on top of a committed chain: a
// container's root filesystem, or a layer being unpacked.
//
// # Importing a layer
//
//	mounts, _ := o.Prepare(ctx, "extract-<random>", parentChainID)
//	dir, _ := o.UpperDir(ctx, "extract-<random>")  // unpack the tar into dir, whiteouts in overlay form
//	o.Commit(ctx, chainID, "extract-<random>")      // now usable as a parent
//
// # Running a container
//
//	mounts, _ := o.Prepare(ctx, containerID, image.ChainID)
//	snapshot.MountAll(mounts, rootfs)
//	...
//	snapshot.Unmount(rootfs); o.Remove(ctx, containerID)
//
// # On disk
//
//	<root>/                  (<data-root>/snapshots)
//	├── <id>/fs              the snapshot's own files (overlay upperdir or lowerdir)
//	├── <id>/work            overlay workdir (active snapshots)
//	├── new-<random>/        being created; removed at open
//	└── rm-<id>/             being removed; removed at open
//
// and in metadata.db:
//
//	snapshots/<key> -> {"ID":n,"Kind":"active|committed","Parent":"<key>","Created":...}
//
// A directory only counts once its record is committed in the same bbolt
// transaction that renamed it into place, so a crash at any point leaves
// either the old or the new state plus directories that open removes.

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/errdefs"
	bolt "go.etcd.io/bbolt"
)

// BucketSnapshots holds one record per snapshot, keyed by snapshot key.
var BucketSnapshots = []byte("snapshots")

// Kind is a snapshot's kind.
type Kind string

// Snapshot kinds.
const (
	KindActive    Kind = "active"
	KindCommitted Kind = "committed"
)

// Info describes a snapshot.
type Info struct {
	Key     string    `json:"-"`
	ID      uint64    `json:"ID"`
	Kind    Kind      `json:"Kind"`
	Parent  string    `json:"Parent,omitempty"`
	Created time.Time `json:"Created"`
}

// Mount is one mount(2) call: the snapshot's filesystem at a target.
type Mount struct {
	Type    string
	Source  string
	Options []string
}

// Overlay is an overlayfs snapshotter.
type Overlay struct {
	root string
	db   *bolt.DB
}

// NewOverlay opens the snapshotter at root, creating its bucket, and removes
// directories that an interrupted create or remove left behind.
func NewOverlay(root string, db *bolt.DB) (*Overlay, error) {
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, errdefs.System("create snapshot root %s: %w", root, err)
	}
	o := &Overlay{root: root, db: db}
	known := map[string]bool{}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(BucketSnapshots)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var in Info
			if err := json.Unmarshal(v, &in); err == nil {
				known[strconv.FormatUint(in.ID, 10)] = true
			}
			return nil
		})
	})
	if err != nil {
		return nil, errdefs.System("open snapshot metadata: %w", err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, errdefs.System("list snapshots in %s: %w", root, err)
	}
	for _, e := range entries {
		if known[e.Name()] {
			continue
		}
		p := filepath.Join(root, e.Name())
		// A directory of a crashed create/remove may still be mounted by
		// nobody (mounts die with their namespace), so plain removal works.
		if err := os.RemoveAll(p); err != nil {
			return nil, errdefs.System("remove stale snapshot dir %s: %w", p, err)
		}
	}
	return o, nil
}

// Root is the snapshotter's directory.
func (o *Overlay) Root() string { return o.root }

func (o *Overlay) dir(id uint64) string { return filepath.Join(o.root, strconv.FormatUint(id, 10)) }

func getInfo(b *bolt.Bucket, key string) (Info, error) {
	v := b.Get([]byte(key))
	if v == nil {
		return Info{}, errdefs.NotFound("snapshot %s: not found", key)
	}
	var in Info
	if err := json.Unmarshal(v, &in); err != nil {
		return Info{}, errdefs.System("snapshot %s: corrupt record: %w", key, err)
	}
	in.Key = key
	return in, nil
}

func putInfo(b *bolt.Bucket, in Info) error {
	v, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return b.Put([]byte(in.Key), v)
}

// Stat returns a snapshot's record.
func (o *Overlay) Stat(ctx context.Context, key string) (Info, error) {
	var in Info
	err := o.db.View(func(tx *bolt.Tx) error {
		var err error
		in, err = getInfo(tx.Bucket(BucketSnapshots), key)
		return err
	})
	return in, err
}

// Walk calls fn for every snapshot.
func (o *Overlay) Walk(ctx context.Context, fn func(Info) error) error {
	var all []Info
	err := o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(BucketSnapshots).ForEach(func(k, v []byte) error {
			in, err := getInfo(tx.Bucket(BucketSnapshots), string(k))
			if err != nil {
				return err
			}
			all = append(all, in)
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, in := range all {
		if err := fn(in); err != nil {
			return err
		}
	}
	return nil
}

// Prepare creates an active (writable) snapshot key on top of the committed
// snapshot parent ("" for an empty filesystem) and returns how to mount it.
func (o *Overlay) Prepare(ctx context.Context, key, parent string) ([]Mount, error) {
	if key == "" {
		return nil, errdefs.InvalidArgument("snapshot key must not be empty")
	}
	tmp, err := os.MkdirTemp(o.root, "new-")
	if err != nil {
		return nil, errdefs.System("prepare snapshot %s: %w", key, err)
	}
	defer os.RemoveAll(tmp) // no-op once renamed
	for _, d := range []string{"fs", "work"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return nil, errdefs.System("prepare snapshot %s: %w", key, err)
		}
	}
	var in Info
	err = o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(BucketSnapshots)
		if b.Get([]byte(key)) != nil {
			return errdefs.Conflict("snapshot %s: already exists", key)
		}
		if parent != "" {
			p, err := getInfo(b, parent)
			if err != nil {
				return errdefs.NotFound("prepare snapshot %s: parent %s not found", key, parent)
			}
			if p.Kind != KindCommitted {
				return errdefs.InvalidArgument("prepare snapshot %s: parent %s is not committed", key, parent)
			}
		}
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		in = Info{Key: key, ID: id, Kind: KindActive, Parent: parent, Created: time.Now().UTC()}
		if err := putInfo(b, in); err != nil {
			return err
		}
		if err := os.Rename(tmp, o.dir(id)); err != nil {
			return errdefs.System("prepare snapshot %s: %w", key, err)
		}
		return nil
	})
	if err != nil {
		if in.ID != 0 {
			os.RemoveAll(o.dir(in.ID))
		}
		return nil, err
	}
	return o.Mounts(ctx, key)
}

// Commit turns the active snapshot key into the committed snapshot name.
func (o *Overlay) Commit(ctx context.Context, name, key string) error {
	return o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(BucketSnapshots)
		in, err := getInfo(b, key)
		if err != nil {
			return err
		}
		if in.Kind != KindActive {
			return errdefs.InvalidArgument("commit snapshot %s: not active", key)
		}
		if b.Get([]byte(name)) != nil {
			return errdefs.Conflict("commit snapshot %s: %s already exists", key, name)
		}
		if err := b.Delete([]byte(key)); err != nil {
			return err
		}
		in.Key, in.Kind = name, KindCommitted
		return putInfo(b, in)
	})
}

// parents returns the chain below key, nearest first.
func parents(b *bolt.Bucket, in Info) ([]Info, error) {
	var chain []Info
	for p := in.Parent; p != ""; {
		pi, err := getInfo(b, p)
		if err != nil {
			return nil, errdefs.System("snapshot %s: broken parent chain at %s: %w", in.Key, p, err)
		}
		chain = append(chain, pi)
		p = pi.Parent
		if len(chain) > 1000 {
			return nil, errdefs.System("snapshot %s: parent chain too long or cyclic", in.Key)
		}
	}
	return chain, nil
}

// Mounts returns how to mount a snapshot: an active one read-write, a
// committed one read-only.
func (o *Overlay) Mounts(ctx context.Context, key string) ([]Mount, error) {
	var in Info
	var chain []Info
	err := o.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(BucketSnapshots)
		var err error
		if in, err = getInfo(b, key); err != nil {
			return err
		}
		chain, err = parents(b, in)
		return err
	})
	if err != nil {
		return nil, err
	}
	own := filepath.Join(o.dir(in.ID), "fs")
	if in.Kind == KindCommitted {
		if len(chain) == 0 {
			return []Mount{{Type: "bind", Source: own, Options: []string{"ro", "rbind"}}}, nil
		}
		lowers := []string{own}
		for _, p := range chain {
			lowers = append(lowers, filepath.Join(o.dir(p.ID), "fs"))
		}
		return []Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + strings.Join(lowers, ":")}}}, nil
	}
	if len(chain) == 0 {
		return []Mount{{Type: "bind", Source: own, Options: []string{"rw", "rbind"}}}, nil
	}
	var lowers []string
	for _, p := range chain {
		lowers = append(lowers, filepath.Join(o.dir(p.ID), "fs"))
	}
	// redirect_dir and metacopy off: a directory rename or a chmod then
	// copies up whole, so the upper directory alone is the diff.
	return []Mount{{Type: "overlay", Source: "overlay", Options: []string{
		"index=off",
		"redirect_dir=off",
		"metacopy=off",
		"workdir=" + filepath.Join(o.dir(in.ID), "work"),
		"upperdir=" + own,
		"lowerdir=" + strings.Join(lowers, ":"),
	}}}, nil
}

// UpperDir is the directory holding the snapshot's own files: the overlay
// upper directory of an active snapshot, where a layer is unpacked and where
// a container's changes land.
func (o *Overlay) UpperDir(ctx context.Context, key string) (string, error) {
	in, err := o.Stat(ctx, key)
	if err != nil {
		return "", err
	}
	return filepath.Join(o.dir(in.ID), "fs"), nil
}

// LowerDirs are the own directories of the committed chain below key (key
// itself excluded), nearest first.
func (o *Overlay) LowerDirs(ctx context.Context, key string) ([]string, error) {
	var dirs []string
	err := o.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(BucketSnapshots)
		in, err := getInfo(b, key)
		if err != nil {
			return err
		}
		chain, err := parents(b, in)
		if err != nil {
			return err
		}
		for _, p := range chain {
			dirs = append(dirs, filepath.Join(o.dir(p.ID), "fs"))
		}
		return nil
	})
	return dirs, err
}

// Remove deletes a snapshot. A committed snapshot that others build on
// cannot be removed (Conflict); a missing one is NotFound.
func (o *Overlay) Remove(ctx context.Context, key string) error {
	var trash, dir string
	err := o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(BucketSnapshots)
		in, err := getInfo(b, key)
		if err != nil {
			return err
		}
		var child string
		b.ForEach(func(k, v []byte) error {
			var c Info
			if json.Unmarshal(v, &c) == nil && c.Parent == key && child == "" {
				child = string(k)
			}
			return nil
		})
		if child != "" {
			return errdefs.Conflict("remove snapshot %s: snapshot %s depends on it", key, child)
		}
		if err := b.Delete([]byte(key)); err != nil {
			return err
		}
		dir = o.dir(in.ID)
		trash = filepath.Join(o.root, "rm-"+strconv.FormatUint(in.ID, 10))
		if err := os.Rename(dir, trash); err != nil && !errors.Is(err, fs.ErrNotExist) {
			trash = ""
			return errdefs.System("remove snapshot %s: %w", key, err)
		}
		return nil
	})
	if err != nil {
		if trash != "" {
			// The record stays (the transaction failed): so must the files.
			os.Rename(trash, dir)
		}
		return err
	}
	if err := os.RemoveAll(trash); err != nil {
		return errdefs.System("remove snapshot %s files: %w", key, err)
	}
	return nil
}

// Usage is the number of bytes in the snapshot's own directory (file sizes,
// hard links counted once): a container's SizeRw, a layer's size.
func (o *Overlay) Usage(ctx context.Context, key string) (int64, error) {
	dir, err := o.UpperDir(ctx, key)
	if err != nil {
		return 0, err
	}
	return DirSize(ctx, dir)
}

// DirSize sums the sizes of the files under dir, counting hard links once.
func DirSize(ctx context.Context, dir string) (int64, error) {
	var total int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
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
		return 0, errdefs.System("measure %s: %w", dir, err)
	}
	return total, nil
}
