// Package cgroup enforces instances' ramMB and cpu with cgroup v2, for
// the master's own instances and an agent node's alike.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// Limits enforces ramMB and cpu with cgroup v2: every instance gets a
// cgroup under one parent whose memory and cpu controllers are enabled, and
// its process starts inside it (the supervisor clones it into the cgroup).
// Where that cannot be set up, instances run without limits and status
// says why. Limits are never emulated with ulimit.
type Limits struct {
	parent string // "" when not enforced
	reason string
	log    *slog.Logger
}

// New sets up the cgroup parent. setting is "" or "off" (disabled),
// "auto" (below the master's own cgroup) or a cgroup v2 directory.
func New(setting string, log *slog.Logger) *Limits {
	l := &Limits{log: log}
	if log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	switch setting {
	case "", "off":
		l.reason = "resource limits are turned off (--cgroup-parent off)"
		return l
	case "auto":
		parent, err := autoParent(os.ReadFile)
		if err != nil {
			l.reason = err.Error()
			return l
		}
		setting = parent
	}
	if err := enableControllers(setting); err != nil {
		l.reason = err.Error()
		return l
	}
	l.parent = setting
	return l
}

// autoParent finds the master's own cgroup v2 directory and returns the
// parent for instance cgroups below it.
func autoParent(read func(string) ([]byte, error)) (string, error) {
	mounts, err := read("/proc/self/mountinfo")
	if err != nil {
		return "", errors.New("cannot read /proc/self/mountinfo")
	}
	mount := ""
	sc := bufio.NewScanner(bytes.NewReader(mounts))
	for sc.Scan() {
		// id parent major:minor root mountpoint options ... - fstype source super
		f := strings.Fields(sc.Text())
		for i, x := range f {
			if x == "-" && i+1 < len(f) && f[i+1] == "cgroup2" && len(f) > 4 {
				mount = f[4]
			}
		}
	}
	if mount == "" {
		return "", errors.New("cgroup v2 is not mounted on this node")
	}
	ctl, err := read(filepath.Join(mount, "cgroup.controllers"))
	if err != nil {
		return "", errors.New("cgroup v2 controllers cannot be read")
	}
	have := strings.Fields(string(ctl))
	for _, want := range []string{"memory", "cpu"} {
		if !contains(have, want) {
			return "", fmt.Errorf("the cgroup v2 hierarchy at %s has no %s controller (it may be bound to cgroup v1 on this host)", mount, want)
		}
	}
	self, err := read("/proc/self/cgroup")
	if err != nil {
		return "", errors.New("cannot read /proc/self/cgroup")
	}
	own := ""
	for _, line := range strings.Split(string(self), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			own = rest
		}
	}
	if own == "" {
		return "", errors.New("the master is in no cgroup v2")
	}
	return filepath.Join(mount, own, "universe"), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// enableControllers makes dir (created if needed) a parent whose children
// get the memory and cpu controllers. A cgroup that holds processes cannot
// give controllers to children, so when dir's own parent holds the master
// (auto mode), the master first moves into a leaf beside dir.
func enableControllers(dir string) error {
	up := filepath.Dir(dir)
	if err := writeControl(up, "+memory +cpu"); err != nil {
		if !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("cannot enable cgroup controllers in %s: %v", up, err)
		}
		leaf := filepath.Join(up, "master")
		if err := os.MkdirAll(leaf, 0o755); err != nil {
			return fmt.Errorf("cannot create cgroup %s: %v", leaf, err)
		}
		if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			return fmt.Errorf("cannot move the master into %s: %v", leaf, err)
		}
		if err := writeControl(up, "+memory +cpu"); err != nil {
			return fmt.Errorf("cannot enable cgroup controllers in %s: %v", up, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create cgroup %s: %v", dir, err)
	}
	if err := writeControl(dir, "+memory +cpu"); err != nil {
		return fmt.Errorf("cannot enable cgroup controllers in %s: %v", dir, err)
	}
	return nil
}

func writeControl(dir, s string) error {
	return os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(s), 0)
}

// Status says whether limits are enforced here, and why not.
func (l *Limits) Status() api.Limits {
	if l.parent == "" {
		return api.Limits{Enforced: false, Reason: l.reason}
	}
	return api.Limits{Enforced: true}
}

// Prepare makes the cgroup of instance id with its limits and returns its
// directory ("" when limits are not enforced).
func (l *Limits) Prepare(id string, ramMB, cpu int) (*api.Limits, string) {
	if l.parent == "" {
		return &api.Limits{Enforced: false, Reason: l.reason}, ""
	}
	dir := filepath.Join(l.parent, id)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return l.failed(id, err)
	}
	if ramMB > 0 {
		if err := os.WriteFile(filepath.Join(dir, "memory.max"), []byte(strconv.Itoa(ramMB<<20)), 0); err != nil {
			return l.failed(id, err)
		}
		_ = os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("0"), 0) // absent without swap accounting
	}
	if cpu > 0 {
		// cpu 100 is one core: 100 ms of CPU time per 100 ms period.
		if err := os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(strconv.Itoa(cpu*1000)+" 100000"), 0); err != nil {
			return l.failed(id, err)
		}
	}
	return &api.Limits{Enforced: true}, dir
}

func (l *Limits) failed(id string, err error) (*api.Limits, string) {
	l.log.Warn("cannot set up the instance's cgroup; it runs without limits", "instance", id, "err", err)
	l.Release(id)
	return &api.Limits{Enforced: false, Reason: "its cgroup could not be set up: " + err.Error()}, ""
}

// Release removes the cgroup of instance id once its processes are gone.
func (l *Limits) Release(id string) {
	if l.parent == "" {
		return
	}
	dir := filepath.Join(l.parent, id)
	for i := 0; i < 20; i++ {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		if i == 0 {
			_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.log.Warn("cannot remove the instance's cgroup", "instance", id, "dir", dir)
}
