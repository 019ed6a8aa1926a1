package builder

// The builder's directory (<data-root>/builder):
//
//	cache.db     the build cache (below)
//	tmp/         spooled context tars of running builds (unlinked at once;
//	             anything left is removed when the builder starts)
//
// The build cache, in cache.db (bbolt):
//
//	steps/
//	  <sha256(parent image ID, step key)> -> image ID the step made
//	files/
//	  <absolute path> -> {size, mtime, inode, digest}: content hashes of
//	                     directory contexts, so an unchanged file is not re-read

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketSteps = []byte("steps")
	bucketFiles = []byte("files")
)

// Cache maps build steps to the images they made and files to their
// content digests.
type Cache struct {
	db *bolt.DB
}

// OpenCache opens (or creates) the cache database at path.
func OpenCache(path string) (*Cache, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, errdefs.System("open build cache %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSteps, bucketFiles} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, errdefs.System("init build cache %s: %w", path, err)
	}
	return &Cache{db: db}, nil
}

// Close closes the database.
func (c *Cache) Close() error { return c.db.Close() }

func stepKey(parent digest.Digest, key string) []byte {
	h := sha256.New()
	h.Write([]byte(parent))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return []byte(hex.EncodeToString(h.Sum(nil)))
}

// Step returns the image an earlier build made for key on parent.
func (c *Cache) Step(parent digest.Digest, key string) (digest.Digest, bool) {
	var id digest.Digest
	c.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketSteps).Get(stepKey(parent, key)); v != nil {
			id = digest.Digest(v)
		}
		return nil
	})
	return id, id != ""
}

// PutStep records that key on parent made image id.
func (c *Cache) PutStep(parent digest.Digest, key string, id digest.Digest) error {
	err := c.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSteps).Put(stepKey(parent, key), []byte(id))
	})
	if err != nil {
		return errdefs.System("record build cache step: %w", err)
	}
	return nil
}

// fileStat is what identifies an unchanged file.
type fileStat struct {
	Size   int64         `json:"s"`
	Mtime  int64         `json:"m"`
	Inode  uint64        `json:"i"`
	Digest digest.Digest `json:"d"`
}

// fileDigests looks up many files at once.
func (c *Cache) fileDigests(paths []string, stats []fileStat) []digest.Digest {
	out := make([]digest.Digest, len(paths))
	c.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		for i, p := range paths {
			v := b.Get([]byte(p))
			if v == nil {
				continue
			}
			var fs fileStat
			if json.Unmarshal(v, &fs) != nil {
				continue
			}
			if fs.Size == stats[i].Size && fs.Mtime == stats[i].Mtime && fs.Inode == stats[i].Inode {
				out[i] = fs.Digest
			}
		}
		return nil
	})
	return out
}

// putFiles records content digests.
func (c *Cache) putFiles(m map[string]fileStat) error {
	if len(m) == 0 {
		return nil
	}
	err := c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		for p, fs := range m {
			v, _ := json.Marshal(fs)
			if err := b.Put([]byte(p), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return errdefs.System("record file hashes: %w", err)
	}
	return nil
}

// PruneReport is what Prune removed.
type PruneReport struct {
	Steps  []digest.Digest // images the dropped steps pointed at
	Hashes int             // file hashes forgotten
}

// Prune forgets every step and file hash; the caller may then remove the
// images the steps made.
func (c *Cache) Prune() (PruneReport, error) {
	var r PruneReport
	err := c.db.Update(func(tx *bolt.Tx) error {
		seen := map[digest.Digest]bool{}
		tx.Bucket(bucketSteps).ForEach(func(_, v []byte) error {
			if d := digest.Digest(v); !seen[d] {
				seen[d] = true
				r.Steps = append(r.Steps, d)
			}
			return nil
		})
		r.Hashes = tx.Bucket(bucketFiles).Stats().KeyN
		for _, b := range [][]byte{bucketSteps, bucketFiles} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return r, errdefs.System("prune build cache: %w", err)
	}
	return r, nil
}
