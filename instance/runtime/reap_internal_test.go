package runtime

import (
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
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var ok bool
		byChildren, ok = descendantsByChildren(os.Getpid())
		if !ok {
			t.Skip("this kernel keeps no children lists (/proc/<pid>/task/<tid>/children)")
		}
		byScan = descendantsByScan(os.Getpid())
		slices.Sort(byChildren)
		slices.Sort(byScan)
		// Once the tree has stopped growing (sh, 3 sleeps, the subshell),
		// both ways must find the same processes; while the shell still
		// forks, two reads one after the other may differ.
		if (len(byScan) >= 5 && slices.Equal(byChildren, byScan)) || time.Now().After(deadline) {
			break
		}
	}
	if len(byScan) < 5 || !slices.Equal(byChildren, byScan) {
		t.Fatalf("by children lists %v, by scan %v", byChildren, byScan)
	}
	for _, pid := range byChildren {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if !strings.HasPrefix(string(b), "sleep") && !strings.HasPrefix(string(b), "/bin/sh") {
			t.Errorf("descendant %d is %q", pid, b)
		}
	}
}
