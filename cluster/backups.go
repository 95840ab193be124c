package cluster

// Backups of instances on a node (subject To(node, "inst.backup")): the
// master pulls an archive a chunk at a time (start, then read until EOF;
// abort to give up), and pushes one to restore (write chunks in order, then
// run). Chunks are at most FileChunk bytes. To an S3 target the node knows
// (its own --backup-targets), the node uploads the archive itself (upload,
// then status until done; abort to give up); a node without that target
// says NoTarget and the master pulls the archive instead.

// Backup operations.
const (
	BackupStart  = "start"        // begin archiving Instance's folder under Session
	BackupRead   = "read"         // the next chunk of Session's archive
	BackupAbort  = "abort"        // end Session
	RestoreWrite = "write"        // Data at Offset of Session's archive to restore
	RestoreRun   = "run"          // check Session's archive against SHA256 and restore it
	BackupUpload = "upload"       // archive Instance's folder to Target under Key, in the background, as Session
	BackupStatus = "status"       // how Session's upload goes: Written so far, or Done with its outcome
	RestoreFrom  = "restore-from" // read the archive from Target under Key, check it against SHA256 and restore it
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
	Target   string   `json:"target,omitempty"`   // upload, restore-from: the S3 target's name
	Key      string   `json:"key,omitempty"`      // upload, restore-from: where on the target
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
	// Upload and status: NoTarget, the node has no target of that name;
	// Written, the archive's bytes sent so far; Done, the upload ended
	// (Error says how it failed), with the archive's Size and SHA256 as
	// the node counted them.
	NoTarget bool   `json:"noTarget,omitempty"`
	Written  int64  `json:"written,omitempty"`
	Done     bool   `json:"done,omitempty"`
	Size     int64  `json:"size,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
}

// Failure is the reply's error and code ("" when it succeeded).
func (r BackupReply) Failure() (msg, code string) { return r.Error, r.Code }
