package universe

import "github.com/universe-orchestrator/universe/api"

// AuditEntry records one command run through the API (REST or console
// WebSocket): who ran it, what, when and how it ended. Any token in the
// command or its output is masked before the entry is built. It is the
// wire's api.AuditEntry (GET /api/audit sends it as stored).
type AuditEntry = api.AuditEntry
