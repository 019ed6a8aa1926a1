package runtime

import (
	"os"
	"testing"
)

// TestMain lets the test binary serve as the TTY exec reaper, as berthd does.
func TestMain(m *testing.M) {
	RunExecReaper()
	os.Exit(m.Run())
}
