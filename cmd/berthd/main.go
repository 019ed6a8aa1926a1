// Command berthd is Berth's daemon: it owns images and containers and serves
// the Docker Engine API.
package main

import (
	"fmt"
	"os"

	"github.com/berth-dev/berth/daemon/command"
	"github.com/berth-dev/berth/runtime"
)

func main() {
	// A TTY exec re-executes this binary as its reaper (see runtime.Exec).
	runtime.RunExecReaper()
	if err := command.New().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "berthd:", err)
		os.Exit(1)
	}
}
