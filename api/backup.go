package api

import "time"

// States of a backup: PENDING until it begins, RUNNING while the archive is
// written, then COMPLETED or FAILED (with a reason). A backup that was
// running when its master stopped is FAILED when the master comes back.
const (
	BackupPending   = "PENDING"
	BackupRunning   = "RUNNING"
	BackupCompleted = "COMPLETED"
	BackupFailed    = "FAILED"
)

// Backup is the record of one backup of an instance's working directory:
// a tar archive compressed with zstd, kept on a target.
type Backup struct {
	ID            string `json:"id"`
	InstanceID    string `json:"instanceId"`
	Configuration string `json:"configuration"`
	Name          string `json:"name"`
	// Target: "local" or the name of an S3 target of the master.
	Target string `json:"target"`
	State  string `json:"state"`
	// Reason says why a backup FAILED.
	Reason string `json:"reason,omitempty"`
	// SizeBytes is the archive's size, SHA256 its digest (hex).
	SizeBytes int64  `json:"sizeBytes"`
	Files     int    `json:"files"`
	SHA256    string `json:"sha256,omitempty"`
	Locked    bool   `json:"locked"`
	// Skipped counts the entries not archived: FIFOs, sockets, devices.
	Skipped int `json:"skipped,omitempty"`
	// Changed counts files that changed size while they were read (the
	// archive holds what was read, padded or cut to the size first seen).
	Changed int `json:"changed,omitempty"`
	// WaitTimedOut: the configuration's waitForLine was not seen in time;
	// the archive was taken anyway.
	WaitTimedOut bool       `json:"waitTimedOut,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`
	StartedAt    *time.Time `json:"startedAt,omitempty"`
	CompletedAt  *time.Time `json:"completedAt,omitempty"`
	// By: who asked (a key's label, "user:NAME", or a schedule).
	By string `json:"by"`
	// UploadedBy names the node that uploaded the archive to its target
	// itself (an instance on an agent, an S3 target the agent has); empty
	// when the master wrote it. Its SHA256 is then the node's count; its
	// SizeBytes the target's.
	UploadedBy string `json:"uploadedBy,omitempty"`
}

// BackupRequest asks for a backup of an instance. Name is optional (at most
// 64 bytes, no control characters); Ignore adds gitignore patterns to the
// configuration's and the instance folder's .universeignore.
type BackupRequest struct {
	Name   string   `json:"name,omitempty"`
	Ignore []string `json:"ignore,omitempty"`
}

// RestoreRequest asks for a backup to be restored into its instance's
// folder (the instance stopped). Truncate deletes what the backup does not
// hold; otherwise the backup is laid over the folder.
type RestoreRequest struct {
	Truncate bool `json:"truncate"`
}

// BackupOptions are a configuration's backup settings.
type BackupOptions struct {
	// Target: "local" (default) or an S3 target of the master.
	Target string `json:"target,omitempty"`
	// Keep at most this many unlocked backups of an instance (0: no
	// limit): the oldest go when a new one completes. Locked ones are
	// never deleted and do not count.
	Keep   int      `json:"keep,omitempty"`
	Ignore []string `json:"ignore,omitempty"`
	// Before are stdin commands sent before the archive (a running
	// instance only), After those sent after it, whatever happened.
	Before []string `json:"before,omitempty"`
	After  []string `json:"after,omitempty"`
	// WaitForLine: the archive starts when a log line holds this text (or
	// after WaitSeconds, default 60, recorded on the backup).
	WaitForLine string `json:"waitForLine,omitempty"`
	WaitSeconds int    `json:"waitSeconds,omitempty"`
}
