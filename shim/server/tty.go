package server

import (
	"fmt"
	"net"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

type masterResult struct {
	f   *os.File
	err error
}

// receiveMaster accepts the runtime's connection on the console socket and receives the pty master it sends
// (SCM_RIGHTS), as runc does for --console-socket.
func receiveMaster(ln *net.UnixListener) masterResult {
	c, err := ln.AcceptUnix()
	if err != nil {
		return masterResult{err: fmt.Errorf("accept on the console socket: %w", err)}
	}
	defer c.Close()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return masterResult{err: fmt.Errorf("read the console socket: %w", err)}
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return masterResult{err: fmt.Errorf("no pty master in the console socket message (%v)", err)}
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return masterResult{err: fmt.Errorf("no pty master in the console socket message (%v)", err)}
	}
	unix.CloseOnExec(fds[0])
	// Non-blocking, so the runtime poller serves reads and a Close interrupts a pending Read.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return masterResult{err: err}
	}
	return masterResult{f: os.NewFile(uintptr(fds[0]), "pty-master")}
}

// ignoreSignals keeps the shim alive through the signals a dying terminal or daemon could send its way.
func ignoreSignals() {
	signal.Ignore(unix.SIGHUP, unix.SIGPIPE, unix.SIGINT)
}
