// Package supervisor keeps instances running when the master does not: each
// instance process is started by its own small supervisor (the universe
// binary re-executed as "universe supervise <dir>"), which owns the
// process, its pipes and its log file, and serves the master over a unix
// socket in the instance's state directory. The master attaches to it after
// starting it and again after a restart of its own.
//
// The master's side is Client; the supervisor's side is Main.
package supervisor

import (
	"github.com/universe-orchestrator/universe/instance/runtime"
	"strconv"

	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// Files in a supervisor's state directory.
const (
	SocketName = "supervisor.sock" // the master attaches here
	ExitName   = "exit.json"       // written when the process has exited
	StderrName = "supervisor.log"  // the supervisor's own diagnostics
)

// Version is the protocol version. A master speaks with supervisors started
// by an older binary of the same version. (1 was gob-encoded; 2 is
// codec.go's framing.)
const Version = 2

// Spec is what the master hands a new supervisor, over its stdin (the
// environment may hold secrets, which never touch the disk).
type Spec struct {
	InstanceID string   `json:"instanceId"`
	Runtime    string   `json:"runtime"`
	Dir        string   `json:"dir"` // working directory
	Command    string   `json:"command"`
	Env        []string `json:"env"`
	StartedBy  string   `json:"startedBy"`
	NextSeq    uint64   `json:"nextSeq"` // the log's numbering goes on here
	LineRate   int      `json:"lineRate"`
	FileBytes  int64    `json:"fileBytes"`
	FileCount  int      `json:"fileCount"`
	Cgroup     string   `json:"cgroup,omitempty"` // start the process in this cgroup v2 directory
	// Container is the container of a container runtime ("docker").
	Container *runtime.ContainerSpec `json:"container,omitempty"`
}

// Exit is the content of ExitName.
type Exit struct {
	Code int    `json:"code"` // exit code, 128+n for signal n
	At   int64  `json:"at"`   // epoch ms
	Next uint64 `json:"next"` // sequence number after the log's last line
	// Reason says why beyond the code, when the runtime knows (a
	// container killed for its memory limit).
	Reason string `json:"reason,omitempty"`
}

// appendJSON appends e as JSON, as json.Marshal writes it, without the
// reflection json.Marshal does on its first use in a process (each
// supervisor writes one record in its life).
func (e Exit) appendJSON(b []byte) []byte {
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, int64(e.Code), 10)
	b = append(b, `,"at":`...)
	b = strconv.AppendInt(b, e.At, 10)
	b = append(b, `,"next":`...)
	b = strconv.AppendUint(b, e.Next, 10)
	if e.Reason != "" {
		r, _ := json.Marshal(e.Reason)
		b = append(append(b, `,"reason":`...), r...)
	}
	return append(b, '}')
}

// ReadExit returns the exit recorded in dir, if any.
func ReadExit(dir string) (Exit, bool) {
	b, err := os.ReadFile(filepath.Join(dir, ExitName))
	if err != nil {
		return Exit{}, false
	}
	var e Exit
	if json.Unmarshal(b, &e) != nil {
		return Exit{Code: -1}, true
	}
	return e, true
}

// ClearExit removes the exit record of dir (the master has recorded it).
func ClearExit(dir string) {
	_ = os.Remove(filepath.Join(dir, ExitName))
}

// createExit creates the file the exit record is written to, at start:
// creating a file (an inode) costs the most CPU of a supervisor's exit
// when hundreds stop at once (ext4's search for a free inode), and the
// record itself needs only a write and a rename.
func createExit(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, ExitName+".tmp"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
}

// writeExit writes e into f (from createExit, closed here) and renames it
// to ExitName.
func writeExit(dir string, f *os.File, e Exit) error {
	_, err := f.Write(e.appendJSON(make([]byte, 0, 96)))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, ExitName))
}

type op uint8

const (
	opAttach  op = iota + 1 // master → supervisor: Version, Since
	opHello                 // supervisor → master: Version, Pid
	opLines                 // supervisor → master: Lines, Dropped
	opGap                   // supervisor → master: From..To are only in the file
	opExit                  // supervisor → master: Code, Since (the log's next number); the last message
	opWrite                 // master → supervisor: Text to stdin; answered by opReply
	opSignal                // master → supervisor: Sig to the process group; answered by opReply
	opSystem                // master → supervisor: a system line for the log
	opReply                 // supervisor → master: ID, ErrCode, Text
	opBye                   // master → supervisor: the exit is recorded
	opProfile               // master → supervisor: Text a profile's name, Sig its seconds; answered by opReply with the profile in Text
)

// msg is every message of the protocol, in both directions (codec.go
// encodes it).
type msg struct {
	Op      op
	ID      uint64
	Version int
	Since   uint64
	Pid     int
	Lines   []api.LogLine
	Dropped int
	From    uint64
	To      uint64
	Code    int
	Sig     int
	Text    string
	ErrCode string
}

// ioTimeout bounds one message write in either direction: a peer that does
// not read for this long is dropped (lines stay in the file).
const ioTimeout = 10 * time.Second

// maxSockPath is the longest path a unix socket address may have, less
// the terminating NUL.
const maxSockPath = 107

// dial connects to the socket in dir. Paths too long for a socket address
// are reached through /proc/self/fd.
func dial(dir string, timeout time.Duration) (conn, error) {
	path := filepath.Join(dir, SocketName)
	if len(path) <= maxSockPath {
		return dialUnix(path, timeout)
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return dialUnix("/proc/self/fd/"+strconv.Itoa(int(d.Fd()))+"/"+SocketName, timeout)
}

// listen makes the socket in dir (removing a stale one), readable by the
// owner only.
func listen(dir string) (*listener, error) {
	path := filepath.Join(dir, SocketName)
	_ = os.Remove(path)
	addr := path
	if len(path) > maxSockPath {
		// The supervisor's working directory is its own: bind relatively.
		if err := os.Chdir(dir); err != nil {
			return nil, err
		}
		addr = SocketName
	}
	ln, err := listenUnix(addr)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	ln.path = path
	ln.id, _ = fileID(path)
	return ln, nil
}

var errNotRunning = errors.New("no supervisor answers")
