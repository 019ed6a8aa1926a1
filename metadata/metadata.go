package metadata

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket names; see the package comment for the tree.
var (
	BucketImages     = []byte("images")
	BucketReferences = []byte("references")
	BucketContainers = []byte("containers")
	BucketNames      = []byte("names")
	BucketNetworks   = []byte("networks")
	BucketVolumes    = []byte("volumes")
	BucketLeases     = []byte("leases")
)

// Open opens (creating if needed) the metadata database at path and makes
// sure every bucket exists. A second daemon on the same data root fails fast
// instead of blocking forever on bbolt's file lock.
func Open(path string) (*bolt.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create metadata directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open metadata %s (is another berthd using this data root?): %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{BucketImages, BucketReferences, BucketContainers, BucketNames, BucketNetworks, BucketVolumes, BucketLeases} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise metadata %s: %w", path, err)
	}
	return db, nil
}
