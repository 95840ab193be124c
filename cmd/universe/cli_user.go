package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/master/users"
	"github.com/universe-orchestrator/universe/storage"
)

// runUserCommand is "universe user ...": "user create NAME [--admin]
// --data DIR" offline, against a data directory no master has open (the
// first admin, like the first key); the password is read from the terminal
// (asked twice, not echoed) or, when stdin is no terminal, its first line.
// Never a flag: flags show in process listings. With a master, the console
// (or the Commands endpoint) has "user create", which generates one.
func runUserCommand(e cliEnv, args []string) int {
	dir, name, admin := "", "", false
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--data" || a == "-data":
			if i+1 >= len(args) {
				fmt.Fprintln(e.stderr, "universe: --data needs a directory")
				return exitUsage
			}
			i++
			dir = args[i]
		case strings.HasPrefix(a, "--data="):
			dir = strings.TrimPrefix(a, "--data=")
		case a == "--admin":
			admin = true
		case a == "create" && i == 0:
		case name == "" && !strings.HasPrefix(a, "-") && i > 0:
			name = a
		default:
			fmt.Fprintln(e.stderr, "usage: universe user create NAME [--admin] --data DIR   (the password from the terminal or stdin)")
			return exitUsage
		}
	}
	if len(args) == 0 || args[0] != "create" || name == "" || dir == "" {
		fmt.Fprintln(e.stderr, "usage: universe user create NAME [--admin] --data DIR   (the password from the terminal or stdin; with a running master use its console: user create NAME)")
		return exitUsage
	}
	pw, err := readPassword(e.stdin, e.stderr)
	if err != nil {
		fmt.Fprintln(e.stderr, "universe: "+err.Error())
		return exitUsage
	}
	u, err := users.New(name, pw, admin, time.Now())
	if err != nil {
		fmt.Fprintln(e.stderr, "universe: "+universe.ErrorMessage(err))
		return exitUsage
	}
	db, err := storage.Open(dir, storage.Options{Timeout: 1500 * time.Millisecond})
	if err != nil {
		fmt.Fprintf(e.stderr, "universe: %s (%s)\n", universe.ErrorMessage(err), dir)
		return exitError
	}
	defer db.Close()
	if err := db.CreateUser(u); err != nil {
		fmt.Fprintln(e.stderr, "universe: "+universe.ErrorMessage(err))
		return exitError
	}
	role := "member"
	if admin {
		role = "admin"
	}
	fmt.Fprintf(e.stdout, "Created user %s (%s). Sign in on the dashboard, or POST /api/login.\n", name, role)
	return exitOK
}

// offlineUserCreate says whether args are the offline "user create …
// --data DIR" (else "user …" talks to a master).
func offlineUserCreate(args []string) bool {
	if len(args) == 0 || args[0] != "create" {
		return false
	}
	for _, a := range args {
		if a == "--data" || a == "-data" || strings.HasPrefix(a, "--data=") {
			return true
		}
	}
	return false
}

// readPassword reads a password: asked twice on a terminal without echo,
// else the first line of in.
func readPassword(in io.Reader, prompt io.Writer) (string, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		fmt.Fprint(prompt, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", fmt.Errorf("the two passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("no password on stdin (one line)")
	}
	return line, nil
}
