package runtime

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The children lists find the same descendants as a scan of every
// process, those in another session included.
func TestDescendantsByChildrenMatchesScan(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "sleep 30 & setsid sleep 31 & (sleep 32 & wait) & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() }()
	var byChildren, byScan []int
	// Each descendant is sh or sleep, once it has exec'd ("setsid" forks,
	// then execs sleep: read in between, it is still setsid).
	named := func(pids []int) (string, bool) {
		for _, pid := range pids {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			if !strings.HasPrefix(string(b), "sleep") && !strings.HasPrefix(string(b), "/bin/sh") {
				return fmt.Sprintf("descendant %d is %q", pid, b), false
			}
		}
		return "", true
	}
	var why string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var ok bool
		byChildren, ok = descendantsByChildren(os.Getpid())
		if !ok {
			t.Skip("this kernel keeps no children lists (/proc/<pid>/task/<tid>/children)")
		}
		byScan = descendantsByScan(os.Getpid())
		slices.Sort(byChildren)
		slices.Sort(byScan)
		// Once the tree has stopped growing (sh, 3 sleeps, the subshell)
		// and every process has exec'd, both ways must find the same
		// processes; while the shell still forks, two reads one after the
		// other may differ.
		var settled bool
		why, settled = named(byChildren)
		if (len(byScan) >= 5 && slices.Equal(byChildren, byScan) && settled) || time.Now().After(deadline) {
			break
		}
	}
	if len(byScan) < 5 || !slices.Equal(byChildren, byScan) {
		t.Fatalf("by children lists %v, by scan %v", byChildren, byScan)
	}
	if why != "" {
		t.Fatal(why)
	}
}
