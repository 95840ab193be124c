package runtime

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER of prctl(2).
const prSetChildSubreaper = 36

// Subreaper makes this process the reaper of its orphaned descendants: a
// process that leaves its group and session (setsid) and whose parent
// exits is re-parented here instead of to init, so it can still be found
// and killed. A supervisor calls it once at start.
func Subreaper() error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return e
	}
	return nil
}

// procEntry is what /proc/<pid>/stat says of one process.
type procEntry struct {
	pid, ppid int
	zombie    bool
}

// processes lists every process of the system (those that vanish while
// it reads are left out).
func processes() []procEntry {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	out := make([]procEntry, 0, len(names))
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + n + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		out = append(out, procEntry{pid: pid, ppid: ppid, zombie: f[0] == "Z"})
	}
	return out
}

// descendants returns the living processes below root. It follows the
// kernel's lists of children (/proc/<pid>/task/<tid>/children), which costs
// a few reads per descendant; where the kernel has no such lists it scans
// every process of the system.
func descendants(root int) []int {
	if out, ok := descendantsByChildren(root); ok {
		return out
	}
	return descendantsByScan(root)
}

// descendantsByScan finds the living processes below root by reading
// every process of the system.
func descendantsByScan(root int) []int {
	children := map[int][]procEntry{}
	for _, p := range processes() {
		children[p.ppid] = append(children[p.ppid], p)
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			if !c.zombie {
				out = append(out, c.pid)
			}
			queue = append(queue, c.pid)
		}
	}
	return out
}

// descendantsByChildren walks the children lists from root; ok is false
// when the kernel does not keep them.
func descendantsByChildren(root int) (out []int, ok bool) {
	queue := []int{root}
	for first := true; len(queue) > 0; first = false {
		p := queue[0]
		queue = queue[1:]
		kids, ok := childrenOf(p)
		if !ok {
			if first {
				return nil, false
			}
			continue // p exited meanwhile
		}
		for _, c := range kids {
			if !zombie(c) {
				out = append(out, c)
			}
			queue = append(queue, c)
		}
	}
	return out, true
}

// childrenOf lists the children of pid, from each of its threads' lists.
func childrenOf(pid int) ([]int, bool) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	d, err := os.Open(dir)
	if err != nil {
		return nil, false
	}
	tids, _ := d.Readdirnames(-1)
	_ = d.Close()
	var out []int
	found := false
	for _, tid := range tids {
		b, err := os.ReadFile(dir + "/" + tid + "/children")
		if err != nil {
			continue
		}
		found = true
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out, found
}

// zombie says whether pid has exited and waits to be reaped (or is gone).
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}

// killDescendants kills every process below this one (a subreaper) and
// reaps its children among them, until none is left: a process forking
// meanwhile is found in the next round. With no child at all there is no
// descendant either (an orphan below us is re-parented to us), and /proc
// is not scanned: the common case, cheap when hundreds of supervisors stop
// at once.
func killDescendants() {
	self := os.Getpid()
	for round := 0; round < 50 && hasChildren(); round++ {
		pids := descendants(self)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(time.Duration(round+1) * time.Millisecond)
		reapOrphans(0)
	}
	reapOrphans(0)
}

// hasChildren says whether this process has any child, living or dead.
func hasChildren() bool {
	var info unix.Siginfo
	return unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil) != unix.ECHILD
}

// reapOrphans collects the exit of every dead child of this process but
// keep (the child whose exit WaitPoll waits for): descendants that were
// re-parented here and then exited. It asks the kernel which child is
// waitable (waitid with WNOWAIT, so keep's exit is left for WaitPoll) and
// reaps those one by one; when keep is the waitable one, the others wait
// for the next call.
func reapOrphans(keep int) {
	for {
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err != nil {
			return // no children
		}
		pid := int(siginfoPid(&info))
		if pid == 0 || pid == keep {
			return
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err != nil {
			return
		}
	}
}

// siginfoPid is si_pid of a SIGCHLD siginfo: the first field of the union
// that follows signo, errno and code, aligned to 8 bytes (offset 16 on
// 64-bit Linux).
func siginfoPid(info *unix.Siginfo) int32 {
	b := (*[20]byte)(unsafe.Pointer(info))
	return *(*int32)(unsafe.Pointer(&b[16]))
}
