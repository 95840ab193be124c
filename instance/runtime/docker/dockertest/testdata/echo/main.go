// Command echo is the program of the docker runtime's test image (FROM
// scratch, so it is static and needs no shell). It prints "ready", then
// answers each line of stdin:
//
//	hog          allocates memory until the memory limit kills it
//	exit N       exits with code N
//	err TEXT     prints TEXT on stderr
//	anything     prints "echo: anything"
//
// With -port it serves TCP there: each connection gets "hello <id>".
// With -tick it prints "tick N" every that often, with -stamp the wall
// clock in unix nanoseconds. SIGTERM: "bye", exit 0.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	port := flag.Int("port", 0, "TCP port to serve")
	tick := flag.Duration("tick", 0, "print a tick this often")
	stamp := flag.Duration("stamp", 0, "print the wall clock (unix ns) this often")
	flag.Parse()
	var mu sync.Mutex
	say := func(f *os.File, s string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(f, s)
	}
	id := os.Getenv("UNIVERSE_INSTANCE_ID")
	if *port > 0 {
		ln, err := net.Listen("tcp", ":"+strconv.Itoa(*port))
		if err != nil {
			say(os.Stderr, "listen: "+err.Error())
			os.Exit(3)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintln(c, "hello", id)
				_ = c.Close()
			}
		}()
	}
	if *tick > 0 {
		go func() {
			for i := 1; ; i++ {
				time.Sleep(*tick)
				say(os.Stdout, "tick "+strconv.Itoa(i))
			}
		}()
	}
	if *stamp > 0 {
		go func() {
			for {
				time.Sleep(*stamp)
				say(os.Stdout, "stamp "+strconv.FormatInt(time.Now().UnixNano(), 10))
			}
		}()
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		say(os.Stdout, "bye")
		os.Exit(0)
	}()
	wd, _ := os.Getwd()
	say(os.Stdout, "ready "+id+" in "+wd+" args "+strings.Join(flag.Args(), ","))
	say(os.Stderr, "stderr hello")
	in := bufio.NewScanner(os.Stdin)
	var hog [][]byte
	for in.Scan() {
		line := in.Text()
		switch {
		case line == "hog":
			for {
				b := make([]byte, 1<<20)
				for i := range b {
					b[i] = 1
				}
				hog = append(hog, b)
			}
		case strings.HasPrefix(line, "exit "):
			n, _ := strconv.Atoi(strings.TrimPrefix(line, "exit "))
			os.Exit(n)
		case strings.HasPrefix(line, "err "):
			say(os.Stderr, strings.TrimPrefix(line, "err "))
		default:
			say(os.Stdout, "echo: "+line)
		}
	}
	select {} // stdin closed: wait for a signal
}
