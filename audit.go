package universe

import "time"

// AuditEntry records one command run through the API (REST or console
// WebSocket): who ran it, what, when and how it ended. Any token in the
// command or its output is masked before the entry is built.
type AuditEntry struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	KeyID   string    `json:"keyId"`
	Source  string    `json:"source"` // "rest" or "websocket"
	Command string    `json:"command"`
	Result  string    `json:"result"` // "ok" or "error"
	Error   string    `json:"error,omitempty"`
	Output  []string  `json:"output,omitempty"`
}
