// Command berth-shim is the per-container monitor that berthd starts through package shim; it is not meant
// to be run by hand. To stay within a few MiB of memory it imports only small standard packages, x/sys and
// shim/server (not flag, fmt, net, os/exec or encoding/json).
package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"

	"github.com/berth-dev/berth/shim/server"
)

// readyFd is the pipe on which the shim reports "ok <pid>" or "error <message>" to the daemon. lockFd is the
// state dir's shim.lock, flocked by the daemon: it stays open (and locked) until the shim exits.
const (
	readyFd = 3
	lockFd  = 4
)

const usage = `usage: berth-shim -id ID -bundle DIR -state-dir DIR -runtime-root DIR [-runtime BIN]
       [-log-path FILE [-log-max-size BYTES [-log-max-file N]]] [-terminal] [-stdin] [-stdin-once]
       (started by berthd, with a ready pipe on fd 3)
`

// Memory tuning, each unless the environment sets it: a shim's live heap is a few hundred KiB, so a small
// GC target and a soft limit (which makes the runtime hand freed pages back at once) keep its RSS near that.
const (
	gcPercent   = 25
	memoryLimit = 6 << 20
	maxProcs    = 2
)

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	if os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) > maxProcs {
		runtime.GOMAXPROCS(maxProcs)
	}
	cfg, ok := parseArgs(os.Args[1:])
	if !ok {
		os.Stderr.WriteString(usage)
		os.Exit(2)
	}
	// Not an os.File: nothing may close it before exit. Close-on-exec: the runtime must not inherit the lock.
	syscall.CloseOnExec(lockFd)
	ready := os.NewFile(readyFd, "ready")
	if _, err := ready.Stat(); err != nil {
		os.Stderr.WriteString("berth-shim: no ready pipe on fd 3\n")
		os.Exit(2)
	}
	if err := server.Run(cfg, ready); err != nil {
		os.Exit(1)
	}
}

func parseArgs(args []string) (server.Config, bool) {
	cfg := server.Config{Runtime: "runc"}
	strs := map[string]*string{
		"-id": &cfg.ID, "-bundle": &cfg.Bundle, "-state-dir": &cfg.StateDir, "-log-path": &cfg.LogPath,
		"-runtime": &cfg.Runtime, "-runtime-root": &cfg.RuntimeRoot,
	}
	bools := map[string]*bool{"-terminal": &cfg.Terminal, "-stdin": &cfg.Stdin, "-stdin-once": &cfg.StdinOnce}
	var maxFiles int64
	ints := map[string]*int64{"-log-max-size": &cfg.LogMaxSize, "-log-max-file": &maxFiles}
	for i := 0; i < len(args); i++ {
		if p, ok := strs[args[i]]; ok && i+1 < len(args) {
			*p = args[i+1]
			i++
			continue
		}
		if p, ok := ints[args[i]]; ok && i+1 < len(args) {
			n, err := strconv.ParseInt(args[i+1], 10, 64)
			if err != nil || n < 1 {
				return cfg, false
			}
			*p = n
			i++
			continue
		}
		if p, ok := bools[args[i]]; ok {
			*p = true
			continue
		}
		return cfg, false
	}
	cfg.LogMaxFiles = int(maxFiles)
	// Without -log-path the output is not stored (--log-driver none); rotation then has nothing to rotate.
	ok := cfg.ID != "" && cfg.Bundle != "" && cfg.StateDir != "" && cfg.RuntimeRoot != "" && cfg.Runtime != "" &&
		(cfg.LogPath != "" || cfg.LogMaxSize == 0 && cfg.LogMaxFiles == 0)
	return cfg, ok
}
