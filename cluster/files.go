package cluster

import "github.com/universe-orchestrator/universe/api"

// Files and stats of an instance on a node, for the master's files and
// stats API (the node enforces the same path rules as the master):
//
//	To(node, "inst.files")  request FilesRequest → FilesReply
//	To(node, "inst.stats")  request InstanceRequest → StatsReply
//
// Contents travel in chunks of at most FileChunk bytes, so no message
// nears the server's payload limit: a read asks for one chunk at a
// time; a write sends them in order under an upload id, the last with
// Final, and the node puts the file in place only then.

// FileChunk bounds the bytes of one files message.
const FileChunk = 256 << 10

// File operations.
const (
	FilesList   = "list"
	FilesRead   = "read"
	FilesWrite  = "write"
	FilesRemove = "remove"
	FilesMkdir  = "mkdir"
	FilesRename = "rename" // Path to To
	FilesUnzip  = "unzip"  // the archive at Path into folder To
)

// FilesRequest is one operation on an instance's files.
type FilesRequest struct {
	Instance  string `json:"instance"`
	Op        string `json:"op"`
	Path      string `json:"path,omitempty"`
	Recursive bool   `json:"recursive,omitempty"`
	Offset    int64  `json:"offset,omitempty"`
	Upload    string `json:"upload,omitempty"` // write: the upload's id
	Data      []byte `json:"data,omitempty"`   // write: this chunk
	Final     bool   `json:"final,omitempty"`  // write: the last chunk
	To        string `json:"to,omitempty"`     // rename: the new path; unzip: the folder
}

// FilesReply answers a FilesRequest (Error and Code as in Reply).
type FilesReply struct {
	Error     string             `json:"error,omitempty"`
	Code      string             `json:"code,omitempty"`
	Entries   []api.TemplateFile `json:"entries,omitempty"`
	Truncated bool               `json:"truncated,omitempty"`
	Data      []byte             `json:"data,omitempty"` // read: the chunk at Offset
	Size      int64              `json:"size,omitempty"` // read: the file's size
	EOF       bool               `json:"eof,omitempty"`
	Unzipped  api.TemplateImport `json:"unzipped"` // unzip: files and bytes
}

// Usage is what a node publishes on From(node, "usage") every sampling
// interval: CPU and memory of each instance it runs, for the master's
// Prometheus series. At most MaxUsage entries; the master keeps only those
// of instances it placed on that node.
type Usage struct {
	Instances []InstanceUsage `json:"instances"`
}

// InstanceUsage is one instance's CPU seconds in all and memory now.
type InstanceUsage struct {
	ID          string  `json:"id"`
	CPUSeconds  float64 `json:"cpuSeconds"`
	MemoryBytes int64   `json:"memoryBytes"`
}

// MaxUsage bounds a Usage message.
const MaxUsage = 10000

// StatsReply answers inst.stats.
type StatsReply struct {
	Error string            `json:"error,omitempty"`
	Code  string            `json:"code,omitempty"`
	Stats api.InstanceStats `json:"stats"`
}

// Failure is the reply's error and code ("" when it succeeded).
func (r FilesReply) Failure() (msg, code string) { return r.Error, r.Code }
