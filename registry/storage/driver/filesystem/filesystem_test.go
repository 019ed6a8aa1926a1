package filesystem

import (
	"testing"

	"github.com/berth-dev/berth/registry/storage/driver"
	"github.com/berth-dev/berth/registry/storage/driver/drivertest"
)

func TestFilesystemDriver(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver {
		d, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

func TestNewRejectsEmptyRoot(t *testing.T) {
	if _, err := New(""); err == nil {
		t.Fatal("New(\"\") succeeded")
	}
}
