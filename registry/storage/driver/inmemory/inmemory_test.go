package inmemory

import (
	"testing"

	"github.com/berth-dev/berth/registry/storage/driver"
	"github.com/berth-dev/berth/registry/storage/driver/drivertest"
)

func TestInMemoryDriver(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver { return New() })
}
