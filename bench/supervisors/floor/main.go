// Command floor is the least a supervisor can be in Go: it starts one
// command with sh -c in a folder, says "ok <pid>" on stdout, waits for it,
// and gives back what starting touched (debug.FreeOSMemory).
// bench/supervisors runs it as the floor of a supervisor's memory and of
// an instance's start (a process that starts the instance's process).
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		os.Exit(2)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	cmd := exec.Command("/bin/sh", "-c", os.Args[2])
	cmd.Dir = os.Args[1]
	if err := cmd.Start(); err != nil {
		os.Exit(1)
	}
	fmt.Println("ok", cmd.Process.Pid) // as a supervisor answers its master
	_ = os.Stdout.Close()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	time.AfterFunc(time.Second, debug.FreeOSMemory)
	select {
	case <-term:
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
	case <-done:
	}
}
