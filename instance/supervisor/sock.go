package supervisor

import (
	"errors"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The socket between master and supervisor is made with system calls and
// *os.File (pollable, with deadlines) instead of package net: net brings
// in the cgo DNS resolver, and with it libc, into every supervisor.

// conn is one end of a connection.
type conn interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// listener accepts connections on a unix socket.
type listener struct {
	f    *os.File
	path string    // where the socket was bound (set by listen)
	id   [2]uint64 // its device and inode, to tell it from a successor's
}

// fileID is the device and inode of path, or false.
func fileID(path string) ([2]uint64, bool) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return [2]uint64{}, false
	}
	return [2]uint64{uint64(st.Dev), st.Ino}, true
}

// removeSocket removes the socket file, unless another supervisor of the
// same state directory has bound its own there since (an instance
// started again while this supervisor was still exiting): removing that
// one would leave the new supervisor unreachable for the next master.
// Call it before Close: a bound socket keeps its inode, so no other file
// can have the same device and inode meanwhile.
func (l *listener) removeSocket() {
	if id, ok := fileID(l.path); ok && id == l.id {
		_ = os.Remove(l.path)
	}
}

func unixSocket() (int, error) {
	return unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
}

// listenUnix binds a unix socket at path (relative paths are relative to
// the working directory).
func listenUnix(path string) (*listener, error) {
	fd, err := unixSocket()
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		_ = unix.Close(fd)
		return nil, &os.PathError{Op: "bind", Path: path, Err: err}
	}
	if err := unix.Listen(fd, 64); err != nil {
		_ = unix.Close(fd)
		return nil, &os.PathError{Op: "listen", Path: path, Err: err}
	}
	return &listener{f: os.NewFile(uintptr(fd), path)}, nil
}

// Accept waits for the next connection; it fails once Close was called.
func (l *listener) Accept() (conn, error) {
	rc, err := l.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var (
		nfd    int
		accErr error
	)
	err = rc.Read(func(fd uintptr) bool {
		nfd, _, accErr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return !errors.Is(accErr, unix.EAGAIN) // false: wait until readable
	})
	if err != nil {
		return nil, err
	}
	if accErr != nil {
		return nil, accErr
	}
	return os.NewFile(uintptr(nfd), "supervisor connection"), nil
}

// Close stops accepting; a blocked Accept returns.
func (l *listener) Close() error { return l.f.Close() }

// dialUnix connects to the unix socket at path.
func dialUnix(path string, timeout time.Duration) (conn, error) {
	deadline := time.Now().Add(timeout)
	for {
		fd, err := unixSocket()
		if err != nil {
			return nil, err
		}
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		if err == nil {
			return os.NewFile(uintptr(fd), path), nil
		}
		_ = unix.Close(fd)
		// A full backlog answers EAGAIN on a unix socket: try again.
		if !errors.Is(err, unix.EAGAIN) || time.Now().After(deadline) {
			return nil, &os.PathError{Op: "connect", Path: path, Err: err}
		}
		time.Sleep(5 * time.Millisecond)
	}
}
