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
//	├── <id>/layer.erofs     a committed layer as one EROFS image, mounted read-only on <id>/fs
//	├── <id>/work            overlay workdir (active snapshots)
//	├── new-<random>/        being created; removed at open
//	└── rm-<id>/             being removed; removed at open
//
// and in metadata.db:
//
//	snapshots/<key> -> {"ID":n,"Kind":"active|committed","Parent":"<key>","Created":...}
//
// A layer is unpacked with Unpack: into an EROFS image file when the kernel
// mounts file-backed EROFS (Linux 6.12+; probed at open), else into fs as a
// tree of files. Committing a snapshot that has an image mounts it on fs; the
// mount is made again at open (after a reboot) and before any use, and
// undone at Remove and Close. Everything else reads <id>/fs either way.
//
// A directory only counts once its record is committed in the same bbolt
// transaction that renamed it into place, so a crash at any point leaves
// either the old or the new state plus directories that open removes.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
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
	root   string
	db     *bolt.DB
	images bool // layers are unpacked into EROFS images

	mountMu sync.Mutex // serialises mounting layer images
}

// Names in a snapshot directory: a layer's EROFS image, and for an index
// image a symlink to the file holding the layer's tar (its content-store
// blob), relative to the directory.
const (
	layerImage = "layer.erofs"
	layerData  = "layer.data"
)

// LayerImages says how layers are unpacked.
type LayerImages string

// LayerImages values.
const (
	// LayerImagesAuto unpacks into EROFS images if the kernel mounts them.
	LayerImagesAuto LayerImages = "auto"
	// LayerImagesOn requires EROFS images: open fails without them.
	LayerImagesOn LayerImages = "true"
	// LayerImagesOff unpacks into directories (layers already unpacked
	// into images stay images).
	LayerImagesOff LayerImages = "false"
)

// ParseLayerImages reads a --storage-opt value of overlay2.layer-images.
func ParseLayerImages(v string) (LayerImages, error) {
	switch LayerImages(strings.ToLower(v)) {
	case "", LayerImagesAuto:
		return LayerImagesAuto, nil
	case LayerImagesOn, "1", "yes", "on":
		return LayerImagesOn, nil
	case LayerImagesOff, "0", "no", "off":
		return LayerImagesOff, nil
	}
	return "", errdefs.InvalidArgument("invalid layer-images value %q: want auto, true or false", v)
}

// Options configure an Overlay.
type Options struct {
	LayerImages LayerImages // default auto
}

// NewOverlay opens the snapshotter at root, creating its bucket, and removes
// directories that an interrupted create or remove left behind.
func NewOverlay(root string, db *bolt.DB, opts Options) (*Overlay, error) {
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
	mounted, err := MountPoints()
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if known[e.Name()] {
			continue
		}
		p := filepath.Join(root, e.Name())
		// A layer image of a crashed create or remove may still be mounted.
		for m := range mounted {
			if strings.HasPrefix(m, p+"/") {
				unix.Unmount(m, unix.MNT_DETACH)
			}
		}
		if err := os.RemoveAll(p); err != nil {
			return nil, errdefs.System("remove stale snapshot dir %s: %w", p, err)
		}
	}
	switch opts.LayerImages {
	case LayerImagesOff:
	case LayerImagesOn:
		if o.images = probeLayerImages(root); !o.images {
			return nil, errdefs.System("layer images required (layer-images=true), but this kernel does not mount file-backed EROFS images (Linux 6.12 or later with CONFIG_EROFS_FS_BACKED_BY_FILE)")
		}
	default:
		o.images = probeLayerImages(root)
	}
	// Committed layer images are mounted again after a reboot; those a
	// killed daemon left mounted are kept. One that cannot be mounted (its
	// tar lost, say) does not stop the daemon: using it fails, and system
	// check reports it.
	err = o.Walk(context.Background(), func(in Info) error {
		if in.Kind != KindCommitted {
			return nil
		}
		own := filepath.Join(o.dir(in.ID), "fs")
		if mounted[own] {
			return nil
		}
		if err := o.mountImage(in.ID); err != nil {
			slog.Warn("layer image not mounted", "snapshot", in.Key, "error", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

// LayerImages says whether layers are unpacked into EROFS images.
func (o *Overlay) LayerImages() bool { return o.images }

// probeLayerImages mounts an empty EROFS image once to learn whether the
// kernel takes file-backed EROFS mounts.
func probeLayerImages(root string) bool {
	dir, err := os.MkdirTemp(root, "new-probe-")
	if err != nil {
		return false
	}
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, layerImage))
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := WriteImage(context.Background(), f, strings.NewReader(emptyTar)); err != nil {
		return false
	}
	mnt := filepath.Join(dir, "fs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return false
	}
	if err := mountLayerImage(f.Name(), "", mnt); err != nil {
		return false
	}
	unix.Unmount(mnt, unix.MNT_DETACH)
	return true
}

// emptyTar is an archive with no entries (two zero blocks).
var emptyTar = string(make([]byte, 1024))

// mountImage mounts snapshot id's layer image on its fs directory if it has
// one and it is not mounted there yet.
func (o *Overlay) mountImage(id uint64) error {
	dir := o.dir(id)
	img := filepath.Join(dir, layerImage)
	if _, err := os.Lstat(img); err != nil {
		return nil // a layer unpacked as a tree of files
	}
	o.mountMu.Lock()
	defer o.mountMu.Unlock()
	own := filepath.Join(dir, "fs")
	var st, pst unix.Stat_t
	if err := unix.Lstat(own, &st); err != nil {
		return errdefs.System("layer image mount point %s: %w", own, err)
	}
	if err := unix.Lstat(dir, &pst); err != nil {
		return errdefs.System("layer image mount point %s: %w", own, err)
	}
	if st.Dev != pst.Dev {
		return nil // mounted
	}
	device := filepath.Join(dir, layerData)
	if _, err := os.Lstat(device); err != nil {
		device = ""
	}
	return mountLayerImage(img, device, own)
}

// unmountImage undoes mountImage (a no-op when nothing is mounted).
func (o *Overlay) unmountImage(id uint64) {
	own := filepath.Join(o.dir(id), "fs")
	for i := 0; i < 8 && unix.Unmount(own, unix.MNT_DETACH) == nil; i++ {
	}
}

// Close unmounts the committed layer images. Containers still running on
// them keep them alive (overlayfs holds its lower layers); open mounts them
// again.
func (o *Overlay) Close() error {
	o.mountMu.Lock()
	defer o.mountMu.Unlock()
	mounted, err := MountPoints()
	if err != nil {
		return err
	}
	for m := range mounted {
		if strings.HasPrefix(m, o.root+"/") && filepath.Base(m) == "fs" {
			unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	return nil
}

// UnpackOptions say where a layer's tar is kept.
type UnpackOptions struct {
	// Kept: the tar read is being stored byte for byte in a file that
	// outlives the snapshot (the layer's uncompressed blob). The snapshot
	// then refers to it instead of copying the file data; LinkData must
	// name the file before Commit.
	Kept bool
}

// Unpack applies the uncompressed layer tar r to the active snapshot key,
// which must be empty: as an EROFS image when the kernel mounts them, else
// as files in its directory (Apply). It returns the size of the regular
// files. Commit then makes it a layer.
func (o *Overlay) Unpack(ctx context.Context, key string, r io.Reader, opts UnpackOptions) (int64, error) {
	in, err := o.Stat(ctx, key)
	if err != nil {
		return 0, err
	}
	if in.Kind != KindActive {
		return 0, errdefs.InvalidArgument("unpack into snapshot %s: not active", key)
	}
	dir := o.dir(in.ID)
	if !o.images {
		return Apply(ctx, filepath.Join(dir, "fs"), r)
	}
	f, err := os.OpenFile(filepath.Join(dir, layerImage), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, errdefs.System("unpack into snapshot %s: %w", key, err)
	}
	write := WriteImage
	if opts.Kept {
		write = WriteIndex
	}
	size, err := write(ctx, f, r)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = errdefs.System("unpack into snapshot %s: %w", key, cerr)
	}
	if err != nil {
		os.Remove(f.Name())
		return size, err
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return size, errdefs.System("unpack into snapshot %s: sync: %w", key, err)
	}
	return size, nil
}

// Verify checks a committed snapshot's layer image, if it has one: the
// superblock is EROFS's and the file holds every block it counts.
func (o *Overlay) Verify(ctx context.Context, key string) error {
	in, err := o.Stat(ctx, key)
	if err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(o.dir(in.ID), layerImage))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return errdefs.System("layer image of %s: %w", key, err)
	}
	defer f.Close()
	var sb [128]byte
	if _, err := f.ReadAt(sb[:], erofsSuperOff); err != nil {
		return errdefs.System("layer image of %s: superblock: %w", key, err)
	}
	if binary.LittleEndian.Uint32(sb[0:]) != erofsMagic || (sb[12] != erofsBlockBits && sb[12] != tarBlockBits) {
		return errdefs.System("layer image of %s: not an EROFS image", key)
	}
	fi, err := f.Stat()
	if err != nil {
		return errdefs.System("layer image of %s: %w", key, err)
	}
	bits := sb[12]
	if blocks := int64(binary.LittleEndian.Uint32(sb[36:])); fi.Size() < blocks<<bits {
		return errdefs.System("layer image of %s: truncated (%d of %d bytes)", key, fi.Size(), blocks<<bits)
	}
	if binary.LittleEndian.Uint16(sb[86:]) == 0 {
		return nil
	}
	// An index image: its tar must be there, whole.
	var slot [128]byte
	if _, err := f.ReadAt(slot[:], erofsDevtOff); err != nil {
		return errdefs.System("layer image of %s: device table: %w", key, err)
	}
	dfi, err := os.Stat(filepath.Join(o.dir(in.ID), layerData))
	if err != nil {
		return errdefs.System("layer data of %s: %w", key, err)
	}
	if want := int64(binary.LittleEndian.Uint32(slot[64:])) << tarBlockBits; dfi.Size() < want-(1<<tarBlockBits) {
		return errdefs.System("layer data of %s: %d bytes, the image needs %d", key, dfi.Size(), want)
	}
	return nil
}

// LinkData names the file that holds the tar of a snapshot unpacked with
// UnpackOptions.Kept. It does nothing for a snapshot unpacked otherwise.
func (o *Overlay) LinkData(ctx context.Context, key, path string) error {
	in, err := o.Stat(ctx, key)
	if err != nil {
		return err
	}
	dir := o.dir(in.ID)
	if !o.images {
		return nil
	}
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		return errdefs.System("link layer data of %s: %w", key, err)
	}
	tmp := filepath.Join(dir, layerData+".tmp")
	os.Remove(tmp)
	if err := os.Symlink(rel, tmp); err != nil {
		return errdefs.System("link layer data of %s: %w", key, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, layerData)); err != nil {
		return errdefs.System("link layer data of %s: %w", key, err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return errdefs.System("link layer data of %s: sync: %w", key, err)
	}
	return nil
}

// MoveContent moves what was unpacked into the active snapshot from to the
// empty active snapshot to (a layer unpacked before its parent was known).
func (o *Overlay) MoveContent(ctx context.Context, from, to string) error {
	src, err := o.Stat(ctx, from)
	if err != nil {
		return err
	}
	dst, err := o.Stat(ctx, to)
	if err != nil {
		return err
	}
	if src.Kind != KindActive || dst.Kind != KindActive {
		return errdefs.InvalidArgument("move snapshot content %s to %s: both must be active", from, to)
	}
	sdir, ddir := o.dir(src.ID), o.dir(dst.ID)
	if _, err := os.Lstat(filepath.Join(sdir, layerImage)); err == nil {
		// The data link is relative to a sibling directory: it moves as is.
		for _, name := range []string{layerData, layerImage} {
			err := os.Rename(filepath.Join(sdir, name), filepath.Join(ddir, name))
			if err != nil && !(name == layerData && errors.Is(err, fs.ErrNotExist)) {
				return errdefs.System("move snapshot content %s to %s: %w", from, to, err)
			}
		}
		if err := fsutil.SyncDir(ddir); err != nil {
			return errdefs.System("move snapshot content %s to %s: sync: %w", from, to, err)
		}
		return nil
	}
	dfs := filepath.Join(ddir, "fs")
	if err := os.Remove(dfs); err != nil {
		return errdefs.System("move snapshot content %s to %s: %w", from, to, err)
	}
	if err := os.Rename(filepath.Join(sdir, "fs"), dfs); err != nil {
		os.Mkdir(dfs, 0o755)
		return errdefs.System("move snapshot content %s to %s: %w", from, to, err)
	}
	return nil
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

// Commit turns the active snapshot key into the committed snapshot name,
// mounting its layer image if it has one.
func (o *Overlay) Commit(ctx context.Context, name, key string) error {
	var id uint64
	err := o.db.Update(func(tx *bolt.Tx) error {
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
		id = in.ID
		// Mounted before the record says committed; a crash between the
		// two leaves an active snapshot whose removal unmounts it.
		if err := o.mountImage(in.ID); err != nil {
			return err
		}
		if err := b.Delete([]byte(key)); err != nil {
			return err
		}
		in.Key, in.Kind = name, KindCommitted
		return putInfo(b, in)
	})
	if err != nil && id != 0 {
		o.unmountImage(id)
	}
	return err
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
	// A layer image unmounted behind Berth's back would show as an empty
	// directory: mount what is missing before anything stacks on it.
	for _, c := range append([]Info{in}, chain...) {
		if c.Kind == KindCommitted {
			if err := o.mountImage(c.ID); err != nil {
				return nil, err
			}
		}
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
	if in.Kind == KindCommitted {
		if err := o.mountImage(in.ID); err != nil {
			return "", err
		}
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
	var id uint64
	err := o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(BucketSnapshots)
		in, err := getInfo(b, key)
		if err != nil {
			return err
		}
		id = in.ID
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
		o.unmountImage(in.ID)
		trash = filepath.Join(o.root, "rm-"+strconv.FormatUint(in.ID, 10))
		if err := os.Rename(dir, trash); err != nil && !errors.Is(err, fs.ErrNotExist) {
			trash = ""
			o.mountImage(in.ID)
			return errdefs.System("remove snapshot %s: %w", key, err)
		}
		return nil
	})
	if err != nil {
		if trash != "" {
			// The record stays (the transaction failed): so must the files.
			os.Rename(trash, dir)
			o.mountImage(id)
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
