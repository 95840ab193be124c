package supervisor

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// trimMemory gives back what starting up touched and a supervisor no
// longer needs: the heap freed after start, and the pages of the binary
// and its libraries it only read. Those pages stay in the page cache,
// shared by every process of the binary; dropping them from this process's
// page tables only means that the few it does use are mapped again on
// their next use. A mapping with any page written to (copy-on-write, such
// as .data or a library's relocated RELRO) is never touched: dropping such
// a page would lose what was written.
func trimMemory() {
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return
	}
	defer f.Close()
	var (
		start, end uint64
		candidate  bool // a private, non-writable file mapping
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if fields[0] == "Anonymous:" {
			// The per-mapping counters follow its header line; this
			// one says whether any page of it was written.
			if candidate && len(fields) >= 2 && fields[1] == "0" {
				_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED)
			}
			candidate = false
			continue
		}
		// A header: "00400000-00ce5000 r-xp 00000000 fe:00 9994490   /path"
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok || len(fields) < 6 {
			continue
		}
		var err1, err2 error
		start, err1 = strconv.ParseUint(lo, 16, 64)
		end, err2 = strconv.ParseUint(hi, 16, 64)
		perms := fields[1]
		candidate = err1 == nil && err2 == nil && end > start && len(perms) == 4 &&
			perms[1] == '-' && perms[3] == 'p' && strings.HasPrefix(fields[5], "/")
	}
}
