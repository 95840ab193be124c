package supervisor

import (
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// reap collects the exit of a supervisor the master started, without a
// thread of its own: cmd.Wait would park an OS thread in waitid for as
// long as the supervisor runs (one per instance). A non-blocking pidfd in
// the runtime's poller wakes us when it exits; then waitid reaps it. The
// pipes os/exec would close in Wait are closed by the caller. Without
// pidfds (Linux before 5.10) it falls back to cmd.Wait.
// The caller must not use cmd.Process once reap runs: it is released.
func reap(cmd *exec.Cmd) {
	pid := cmd.Process.Pid
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		_ = cmd.Wait()
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		_ = cmd.Wait()
		return
	}
	_ = rc.Read(func(fd uintptr) bool {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG, nil)
		// Reaped (info names it), or gone: done. Still running: wait for
		// the pidfd to become readable, then try again.
		return err != nil || info.Signo != 0
	})
	_ = cmd.Process.Release()
}
