package api

import "time"

// Error is the one error body of the API: {"error":"..."}. RequestID is set
// on 500s (match it with the master's log); RetryAfterMs on 429s; Output on
// failed console commands.
type Error struct {
	Error        string   `json:"error"`
	RequestID    string   `json:"requestId,omitempty"`
	RetryAfterMs int64    `json:"retryAfterMs,omitempty"`
	Output       []string `json:"output,omitempty"`
}

// Ping is the body of GET /api/ping.
type Ping struct {
	Status string `json:"status"`
	// In a cluster of masters: whether this one leads, and the leader's
	// API URL (when one is known).
	Leader    *bool  `json:"leader,omitempty"`
	LeaderURL string `json:"leaderUrl,omitempty"`
}

// Master is one master of a cluster (GET /api/cluster/masters).
type Master struct {
	ID            string `json:"id"`
	RaftAddress   string `json:"raftAddress"`
	APIURL        string `json:"apiUrl"`
	Leader        bool   `json:"leader"`
	Term          uint64 `json:"term"`
	LastContactMs int64  `json:"lastContactMs"`
	AppliedIndex  uint64 `json:"appliedIndex"`
	State         string `json:"state"` // leader, follower, candidate, unreachable
	// NATSURL is where agents reach this master's NATS server (their
	// --master lists every master's).
	NATSURL string `json:"natsUrl,omitempty"`
}

// MasterJoin is the body of POST /api/cluster/masters: the new master's
// advertised HA address (and its --ha-id, when not that address).
type MasterJoin struct {
	Address string `json:"address"`
	ID      string `json:"id,omitempty"`
}

// Node is the body of GET /api/node: public facts about the master node.
// It carries no paths, commands or secrets, so PUBLIC keys may read it.
type Node struct {
	Version   string         `json:"version"`
	NodeID    string         `json:"nodeId"`
	StartedAt int64          `json:"startedAt"` // epoch milliseconds
	UptimeMs  int64          `json:"uptimeMs"`
	Instances InstanceCounts `json:"instances"`
	// Limits says whether ramMB and cpu are enforced on this node (for
	// the process, tmux and screen runtimes).
	Limits Limits `json:"limits"`
	// Runtimes lists every runtime of this node: whether it can be used
	// here (and why not), and whether it enforces ramMB and cpu.
	Runtimes []RuntimeInfo `json:"runtimes"`
}

// RuntimeInfo describes one runtime of a node.
type RuntimeInfo struct {
	Name      string `json:"name"`
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"` // why it is not available
	// LimitsEnforced says whether ramMB and cpu hold for its instances.
	LimitsEnforced bool   `json:"limitsEnforced"`
	LimitsReason   string `json:"limitsReason,omitempty"`
}

// InstanceCounts counts the instances of a node by state.
type InstanceCounts struct {
	Total   int            `json:"total"`
	ByState map[string]int `json:"byState"`
}

// Scopes of keys.
const (
	ScopeAll    = "ALL"
	ScopePublic = "PUBLIC"
	// ScopeInstance keys are issued by the master to instances only.
	ScopeInstance = "INSTANCE"
)

// Key describes an API key. It never carries the token or its hash.
type Key struct {
	ID         string `json:"id"`
	Label      string `json:"label"`
	Scope      string `json:"scope"`
	CreatedAt  int64  `json:"createdAt"`            // epoch milliseconds
	LastUsedAt int64  `json:"lastUsedAt,omitempty"` // epoch milliseconds; 0 = never
	ExpiresAt  int64  `json:"expiresAt,omitempty"`  // epoch milliseconds; 0 = never
	Expired    bool   `json:"expired,omitempty"`
	Instance   string `json:"instance,omitempty"` // INSTANCE keys: the instance it is bound to
}

// KeyCreateRequest is the body of POST /api/keys. ExpiresIn is a duration
// such as "30d", "12h" or "90m"; empty means the key does not expire.
type KeyCreateRequest struct {
	Label     string `json:"label"`
	Scope     string `json:"scope"`
	ExpiresIn string `json:"expiresIn,omitempty"`
}

// KeyCreated is the answer to POST /api/keys: the key and its token. The
// token is shown this once and can never be retrieved again.
type KeyCreated struct {
	Key
	Token string `json:"token"`
}

// RateLimit is the rate-limit state of a PUBLIC key.
type RateLimit struct {
	Limit     int   `json:"limit"`
	Remaining int   `json:"remaining"`
	WindowMs  int64 `json:"windowMs"`
	ResetMs   int64 `json:"resetMs"`
}

// Auth is the body of GET /api/auth and POST /api/auth/verify: who the
// caller's key is. RateLimit is nil for ALL keys (they are never limited).
type Auth struct {
	ID        string     `json:"id"`
	Label     string     `json:"label"`
	Scope     string     `json:"scope"`
	ExpiresAt int64      `json:"expiresAt,omitempty"`
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
}

// CommandRequest is the body of POST /api/commands/execute.
type CommandRequest struct {
	Command string `json:"command"`
}

// CommandResponse is the answer of POST /api/commands/execute once the
// command has finished: its output lines, free of terminal escape codes.
type CommandResponse struct {
	Command string   `json:"command"`
	Output  []string `json:"output"`
}

// ConsoleEOT starts the frame that ends each command's output on the
// console WebSocket (text format): EOT (U+0004) followed by a JSON
// ConsoleEnd. Output lines never contain control characters, so it cannot be
// mistaken for one.
const ConsoleEOT = "\x04"

// ConsoleEnd reports how a command sent over WS /api/console ended.
type ConsoleEnd struct {
	Type    string `json:"type"` // "end"
	Command string `json:"command"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
}

// ConsoleFrame is one frame of WS /api/console in ?format=json: either
// {"type":"output","line":"..."} or a ConsoleEnd ({"type":"end",...}).
type ConsoleFrame struct {
	Type    string `json:"type"`
	Line    string `json:"line,omitempty"`
	Command string `json:"command,omitempty"`
	OK      *bool  `json:"ok,omitempty"`
	Error   string `json:"error,omitempty"`
}

// AuditEntry is one entry of GET /api/audit: a command run through the
// Commands endpoint, the console WebSocket or a key change.
type AuditEntry struct {
	Seq   uint64    `json:"seq"`
	Time  time.Time `json:"time"`
	KeyID string    `json:"keyId"`
	// User and KeyLabel: who acted (a user's key or sign-in), and with
	// which key, as they were then.
	User     string   `json:"user,omitempty"`
	KeyLabel string   `json:"keyLabel,omitempty"`
	Source   string   `json:"source"` // "rest" or "websocket"
	Command  string   `json:"command"`
	Result   string   `json:"result"` // "ok" or "error"
	Error    string   `json:"error,omitempty"`
	Output   []string `json:"output,omitempty"` // an excerpt: the first lines, up to 2 KiB
	// OutputOmitted counts the lines of output not kept in the entry.
	OutputOmitted int `json:"outputOmitted,omitempty"`
	// InstanceID and Configuration: what the action was on, when it was
	// on an instance or a configuration (a member with audit.read there
	// sees the entry).
	InstanceID    string `json:"instanceId,omitempty"`
	Configuration string `json:"configuration,omitempty"`
}

// Node states (GET /api/cluster/nodes).
const (
	NodeOnline       = "ONLINE"
	NodeDisconnected = "DISCONNECTED"
	NodeDraining     = "DRAINING"
	NodeRevoked      = "REVOKED"
)

// ClusterNode describes one node of the cluster: the master's own (local)
// or an agent.
type ClusterNode struct {
	ID            string            `json:"id"` // = name, stable across restarts
	Name          string            `json:"name"`
	Address       string            `json:"address"` // where the agent connects from
	State         string            `json:"state"`
	Local         bool              `json:"local"`
	LastHeartbeat int64             `json:"lastHeartbeat"` // epoch ms; 0: never
	Version       string            `json:"version"`
	Capacity      NodeCapacity      `json:"capacity"`
	Resources     NodeResources     `json:"resources"`
	Ports         Ports             `json:"ports"`
	Labels        map[string]string `json:"labels"`
	InstanceCount int               `json:"instanceCount"`
	// Instances are the ids of its instances (GET of one node only).
	Instances []string `json:"instances,omitempty"`
}

// NodeCapacity is what a node offers.
type NodeCapacity struct {
	RAMMB int `json:"ramMB"`
	CPU   int `json:"cpu"` // 100 = one core
}

// NodeResources is what the instances placed on a node reserve.
type NodeResources struct {
	UsedRAMMB int `json:"usedRamMB"`
	UsedCPU   int `json:"usedCpu"`
}

// NodeCreateRequest is the body of POST /api/cluster/nodes.
type NodeCreateRequest struct {
	Name   string            `json:"name"`
	RAMMB  int               `json:"ramMB,omitempty"`
	CPU    int               `json:"cpu,omitempty"`
	Ports  *Ports            `json:"ports,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// NodeCreated answers POST /api/cluster/nodes: the node, and its
// credential, shown this once, in the line an operator pastes on the
// node's machine.
type NodeCreated struct {
	ClusterNode
	Key         string `json:"key"`
	JoinCommand string `json:"joinCommand"`
	// NATSAuthorization, with an operator's NATS cluster (--nats-url), is
	// the user entry their servers' configuration needs for this node:
	// its public nkey and permissions limited to its own subjects.
	NATSAuthorization string `json:"natsAuthorization,omitempty"`
	// Warning says what may keep the join command from working where it
	// is run (a loopback address, reachable from this machine only).
	Warning string `json:"warning,omitempty"`
}

// NodePatch is the body of PATCH /api/cluster/nodes/{name}.
type NodePatch struct {
	Draining *bool `json:"draining"`
}
