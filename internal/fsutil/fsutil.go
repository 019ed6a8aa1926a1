// Package fsutil holds the small file-system steps the stores share.
package fsutil

import (
	"errors"
	"os"
)

// SyncDir fsyncs a directory, so that entries created, renamed or removed
// in it survive a crash. A file system that cannot sync directories
// (EINVAL) is not an error.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
