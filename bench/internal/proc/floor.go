package proc

import (
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StartFloor is the floor of starting n instances: it makes n folders
// under dir, calls fill on each (nil: none), and starts "sh -c command"
// in it, 10 at a time; with via (bench/supervisors/floor built), each
// command is started by a process of that binary, which says when it has:
// the start of a supervised process. It returns how long that took, then
// stops the processes and removes dir.
func StartFloor(dir string, n int, command, via string, fill func(dir string)) time.Duration {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		procs []*exec.Cmd
	)
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	start := time.Now()
	for c := 0; c < 10; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				d := filepath.Join(dir, strconv.Itoa(i))
				if err := os.MkdirAll(d, 0o755); err != nil {
					log.Fatal(err)
				}
				if fill != nil {
					fill(d)
				}
				cmd := exec.Command("/bin/sh", "-c", command)
				cmd.Dir = d
				var out io.ReadCloser
				if via != "" {
					cmd = exec.Command(via, d, command)
					cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GOMAXPROCS=1"} // as a supervisor runs
					out, _ = cmd.StdoutPipe()
				}
				if err := cmd.Start(); err != nil {
					log.Fatal(err)
				}
				if out != nil {
					if b, _ := io.ReadAll(out); !strings.HasPrefix(string(b), "ok ") {
						log.Fatalf("floor supervisor: %q", b)
					}
				}
				mu.Lock()
				procs = append(procs, cmd)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for _, p := range procs {
		if via != "" {
			_ = p.Process.Signal(syscall.SIGTERM) // the floor supervisor stops its command
		} else {
			_ = p.Process.Kill()
		}
		_ = p.Wait()
	}
	_ = os.RemoveAll(dir)
	return took
}

// Perf runs perf record over the whole machine (-a -g, 499 Hz) into
// file+suffix until the returned func is called ("" file: nothing). Read
// it with perf report -i file --sort comm,dso,sym.
func Perf(file, suffix string) (stop func()) {
	if file == "" {
		return func() {}
	}
	cmd := exec.Command("perf", "record", "-a", "-g", "-F", "499", "-o", file+suffix)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatalf("perf: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // perf is recording
	return func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
	}
}
