// Command berth-shim is the per-container monitor that berthd starts through package shim; it is not meant
// to be run by hand. It imports only the standard library, x/sys and shim/server to stay small in memory.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/berth-dev/berth/shim/server"
)

// readyFd is the pipe on which the shim reports "ok <pid>" or "error <message>" to the daemon.
const readyFd = 3

func main() {
	var cfg server.Config
	flag.StringVar(&cfg.ID, "id", "", "container id")
	flag.StringVar(&cfg.Bundle, "bundle", "", "OCI bundle directory")
	flag.StringVar(&cfg.StateDir, "state-dir", "", "directory for shim.sock, shim.pid, exit.json")
	flag.StringVar(&cfg.LogPath, "log-path", "", "json-file log of the container")
	flag.StringVar(&cfg.Runtime, "runtime", "runc", "OCI runtime binary")
	flag.StringVar(&cfg.RuntimeRoot, "runtime-root", "", "the runtime's --root")
	flag.BoolVar(&cfg.Terminal, "terminal", false, "the process has a tty")
	flag.BoolVar(&cfg.Stdin, "stdin", false, "give the process a stdin pipe")
	flag.BoolVar(&cfg.StdinOnce, "stdin-once", false, "close the stdin pipe at the first attached EOF")
	flag.Parse()
	if cfg.ID == "" || cfg.Bundle == "" || cfg.StateDir == "" || cfg.LogPath == "" || cfg.RuntimeRoot == "" {
		fmt.Fprintln(os.Stderr, "berth-shim: -id, -bundle, -state-dir, -log-path and -runtime-root are required")
		os.Exit(2)
	}
	ready := os.NewFile(readyFd, "ready")
	if ready == nil {
		fmt.Fprintln(os.Stderr, "berth-shim: no ready pipe on fd 3")
		os.Exit(2)
	}
	if err := server.Run(cfg, ready); err != nil {
		os.Exit(1)
	}
}
