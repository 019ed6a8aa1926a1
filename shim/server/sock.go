package server

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// The shim speaks unix sockets through raw fds wrapped in os.File (which the runtime poller serves), not
// through package net: that keeps net's resolver and friends out of the binary and out of its memory.

// listenUnix listens on a new unix stream socket at path, created 0600.
func listenUnix(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	old := unix.Umask(0o077)
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: path})
	unix.Umask(old)
	if err == nil {
		err = unix.Listen(fd, 128)
	}
	if err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "listen", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// accept waits for and accepts one connection on ln. Closing ln makes a pending accept return os.ErrClosed.
func accept(ln *os.File) (*os.File, error) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var aerr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
			if aerr != unix.EINTR && aerr != unix.ECONNABORTED {
				return aerr != unix.EAGAIN
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if aerr != nil {
		return nil, os.NewSyscallError("accept4", aerr)
	}
	return os.NewFile(uintptr(nfd), "conn"), nil
}

// receiveFd reads one message from c and returns the single fd it carries (SCM_RIGHTS).
func receiveFd(c *os.File) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	var oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		_, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return -1, os.NewSyscallError("recvmsg", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return -1, errors.New("the message carries no file descriptor")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return -1, errors.New("the message carries no single file descriptor")
	}
	return fds[0], nil
}

type masterResult struct {
	f   *os.File
	err error
}

// receiveMaster accepts the runtime's connection on the console socket and receives the pty master it sends,
// as runc does for --console-socket.
func receiveMaster(ln *os.File) masterResult {
	c, err := accept(ln)
	if err != nil {
		return masterResult{err: errors.New("accept on the console socket: " + err.Error())}
	}
	defer c.Close()
	fd, err := receiveFd(c)
	if err != nil {
		return masterResult{err: errors.New("receive the pty master: " + err.Error())}
	}
	// Non-blocking, so the poller serves reads and a Close interrupts a pending Read.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return masterResult{err: err}
	}
	return masterResult{f: os.NewFile(uintptr(fd), "pty-master")}
}

// shutdownWrite half-closes a connection.
func shutdownWrite(c *os.File) {
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_WR) })
	}
}
