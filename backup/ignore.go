package backup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	gitignore "github.com/sabhiram/go-gitignore"
)

// Ignore decides which paths a backup leaves out: gitignore patterns (with
// "!" negation), from the configuration, the request and the instance
// folder's .universeignore. The nil Ignore leaves nothing out.
type Ignore struct {
	m *gitignore.GitIgnore
	// negates: some pattern re-includes ("!"): a folder matched may
	// still hold paths to keep, so it is walked (and kept).
	negates bool
}

// maxIgnoreBytes bounds the .universeignore read.
const maxIgnoreBytes = 256 << 10

// NewIgnore compiles patterns, followed by those of dir's .universeignore
// when there is one (a regular file; a link there is not followed).
func NewIgnore(dir string, patterns ...[]string) (*Ignore, error) {
	var lines []string
	for _, p := range patterns {
		lines = append(lines, p...)
	}
	f, err := os.OpenFile(filepath.Join(dir, IgnoreFile), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	switch {
	case err == nil:
		defer f.Close()
		if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s is not a regular file", IgnoreFile)
		}
		sc := bufio.NewScanner(io.LimitReader(f, maxIgnoreBytes))
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", IgnoreFile, err)
		}
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, syscall.ELOOP):
		return nil, fmt.Errorf("%s is a link: not followed", IgnoreFile)
	default:
		return nil, fmt.Errorf("read %s: %w", IgnoreFile, err)
	}
	if len(lines) == 0 {
		return nil, nil
	}
	ig := &Ignore{m: gitignore.CompileIgnoreLines(lines...)}
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "!") {
			ig.negates = true
		}
	}
	return ig, nil
}

// Match reports whether the slash-separated path p (relative to the
// folder) is left out.
func (ig *Ignore) Match(p string, dir bool) bool {
	m, _ := ig.match(p, dir)
	return m
}

// match also says, for a folder left out, whether it must still be walked:
// a "!" pattern may keep paths inside it (the folder is kept then only if
// one is).
func (ig *Ignore) match(p string, dir bool) (matched, walk bool) {
	if ig == nil {
		return false, false
	}
	if dir {
		return ig.m.MatchesPath(p + "/"), ig.negates
	}
	return ig.m.MatchesPath(p), false
}
