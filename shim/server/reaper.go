package server

import (
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// maxUnclaimed bounds the exits kept for pids nobody asked about yet (the init can exit before its pid file is
// read; anything else reparented to the shim is only reaped).
const maxUnclaimed = 64

// reaper is the shim's only caller of wait4. As child subreaper the shim inherits the container's init (and any
// orphan), so every child it starts itself must be waited for here too, or the reaper would steal its status.
type reaper struct {
	mu        sync.Mutex
	waiters   map[int]chan unix.WaitStatus
	unclaimed map[int]unix.WaitStatus
	sigs      chan os.Signal
}

func newReaper() *reaper {
	r := &reaper{
		waiters:   make(map[int]chan unix.WaitStatus),
		unclaimed: make(map[int]unix.WaitStatus),
		sigs:      make(chan os.Signal, 1),
	}
	signal.Notify(r.sigs, unix.SIGCHLD)
	go func() {
		for range r.sigs {
			r.reap()
		}
	}()
	return r
}

func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if ch, ok := r.waiters[pid]; ok {
			ch <- ws
			delete(r.waiters, pid)
			continue
		}
		if len(r.unclaimed) < maxUnclaimed {
			r.unclaimed[pid] = ws
		}
	}
}

// start starts a process and returns a channel that receives its wait status. The lock is held across the
// fork so the reaper cannot collect the child before it is registered.
func (r *reaper) start(path string, argv []string, attr *os.ProcAttr) (<-chan unix.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := os.StartProcess(path, argv, attr)
	if err != nil {
		return nil, err
	}
	ch := make(chan unix.WaitStatus, 1)
	r.waiters[p.Pid] = ch
	p.Release() // the reaper, not os.Process, waits for it
	return ch, nil
}

// wait returns a channel that receives pid's wait status, also if it was reaped before anyone asked.
func (r *reaper) wait(pid int) <-chan unix.WaitStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan unix.WaitStatus, 1)
	if ws, ok := r.unclaimed[pid]; ok {
		delete(r.unclaimed, pid)
		ch <- ws
		return ch
	}
	r.waiters[pid] = ch
	// The pid may have been reaped and dropped from unclaimed, or may not be our child at all: check it is
	// still there so the caller does not wait forever.
	if err := unix.Kill(pid, 0); err == unix.ESRCH {
		delete(r.waiters, pid)
		ch <- unix.WaitStatus(255 << 8)
	}
	return ch
}

// exitCode is Docker's exit code of a wait status: the status, or 128+signal.
func exitCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 255
}
