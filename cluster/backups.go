package cluster

// Backups of instances on a node (subject To(node, "inst.backup")): the
// master pulls an archive a chunk at a time (start, then read until EOF;
// abort to give up), and pushes one to restore (write chunks in order, then
// run). Chunks are at most FileChunk bytes.

// Backup operations.
const (
	BackupStart  = "start" // begin archiving Instance's folder under Session
	BackupRead   = "read"  // the next chunk of Session's archive
	BackupAbort  = "abort" // end Session
	RestoreWrite = "write" // Data at Offset of Session's archive to restore
	RestoreRun   = "run"   // check Session's archive against SHA256 and restore it
)

// BackupRequest is one backup operation.
type BackupRequest struct {
	Op       string   `json:"op"`
	Instance string   `json:"instance"`
	Session  string   `json:"session"`
	Ignore   []string `json:"ignore,omitempty"`   // start: patterns beside the folder's .universeignore
	Offset   int64    `json:"offset,omitempty"`   // write
	Data     []byte   `json:"data,omitempty"`     // write
	SHA256   string   `json:"sha256,omitempty"`   // run
	Truncate bool     `json:"truncate,omitempty"` // run
}

// BackupReply answers a BackupRequest (Error and Code as in Reply).
type BackupReply struct {
	Error   string `json:"error,omitempty"`
	Code    string `json:"code,omitempty"`
	Data    []byte `json:"data,omitempty"` // read
	EOF     bool   `json:"eof,omitempty"`  // read: the archive is whole (with the counts)
	Files   int    `json:"files,omitempty"`
	Skipped int    `json:"skipped,omitempty"`
	Changed int    `json:"changed,omitempty"`
}

// Failure is the reply's error and code ("" when it succeeded).
func (r BackupReply) Failure() (msg, code string) { return r.Error, r.Code }
