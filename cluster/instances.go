package cluster

import (
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/supervisor"
)

// Instances on nodes. The master's bbolt says which node runs which
// instance; a node runs what the master asks, each start under an epoch
// (the start's time, epoch ms): a request or report of another epoch than
// the instance's current one is stale and does nothing.
//
//	To(node, "inst.start")    request StartRequest → Reply (pid)
//	To(node, "inst.attach")   request InstanceRequest{Since} → Reply
//	                          (running, pid); the node then sends the
//	                          lines after Since, and goes on sending
//	To(node, "inst.stdin")    request InstanceRequest{Line} → Reply
//	To(node, "inst.signal")   request InstanceRequest{Signal} → Reply
//	To(node, "inst.system")   publish InstanceRequest{Line}: a line for
//	                          the instance's log, numbered by the node
//	To(node, "inst.expect")   request Expected → Reply: the node kills
//	                          every instance it runs that is not listed
//	                          under the same epoch (stale: replaced while
//	                          the node was unreachable)
//	To(node, "inst.files")    request FilesRequest → FilesReply (files.go)
//	To(node, "inst.stats")    request InstanceRequest → StatsReply
//	To(node, "inst.pprof")    request InstanceRequest{Profile, Seconds}
//	                          → Reply (Data: the supervisor's profile)
//	From(node, "inst.log")    publish LogBatch
//	From(node, "inst.health") publish HealthReport (a verdict that
//	                          differs from the last, and every failure)
//	From(node, "inst.exit")   request ExitReport → Reply (the node sends
//	                          it again until the master answered)

// StartRequest starts an instance on a node. Spec.Dir is the node's own
// choice (<data>/running/<instance>).
type StartRequest struct {
	Instance string          `json:"instance"`
	Epoch    int64           `json:"epoch"`
	Spec     supervisor.Spec `json:"spec"`
	Install  *Install        `json:"install,omitempty"`
}

// Install says how the node fills a new working folder: the templates of
// Plan from its synced copy (syncing first if one is missing), then the
// placeholders (names without %) replaced in Files.
type Install struct {
	Plan         []api.Template    `json:"plan,omitempty"`
	Override     bool              `json:"override,omitempty"`
	Files        []string          `json:"files,omitempty"`
	Placeholders map[string]string `json:"placeholders,omitempty"`
	// RAMMB and CPU are the instance's limits, which the node enforces
	// with cgroup v2 where it can (its answer says whether it does).
	RAMMB int `json:"ramMB,omitempty"`
	CPU   int `json:"cpu,omitempty"`
	// Health is the instance's health check: the node probes Port on
	// itself and reports each verdict that differs, and every failure
	// (inst.health).
	Health *api.HealthCheck `json:"health,omitempty"`
	Port   int              `json:"port,omitempty"`
}

// HealthReport is a node's verdict of an instance's health check: Fails
// counts the failures in a row (the master restarts the instance past the
// configuration's threshold).
type HealthReport struct {
	Instance string `json:"instance"`
	Epoch    int64  `json:"epoch"`
	Passing  bool   `json:"passing"`
	Error    string `json:"error,omitempty"`
	Fails    int    `json:"fails"`
}

// InstanceRequest acts on an instance of a node.
type InstanceRequest struct {
	Instance string `json:"instance"`
	Epoch    int64  `json:"epoch"`
	Line     string `json:"line,omitempty"`
	Signal   int    `json:"signal,omitempty"`
	Since    uint64 `json:"since,omitempty"`
	// Profile and Seconds ask inst.pprof for a Go profile of the
	// instance's supervisor.
	Profile string `json:"profile,omitempty"`
	Seconds int    `json:"seconds,omitempty"`
}

// Reply answers the requests about instances. Code is a universe error
// code when Error is set.
type Reply struct {
	Error   string `json:"error,omitempty"`
	Code    string `json:"code,omitempty"`
	Pid     int    `json:"pid,omitempty"`
	Running bool   `json:"running,omitempty"`
	Data    []byte `json:"data,omitempty"` // inst.pprof: the profile
	// Limits answers inst.start: whether the node enforces the
	// instance's limits, and why not.
	Limits *api.Limits `json:"limits,omitempty"`
}

// LogBatch carries an instance's log lines, in order, from a node.
type LogBatch struct {
	Instance string        `json:"instance"`
	Epoch    int64         `json:"epoch"`
	Lines    []api.LogLine `json:"lines"`
}

// ExitReport says an instance's process ended on its node. Next is the
// sequence number after its log's last line.
type ExitReport struct {
	Instance string `json:"instance"`
	Epoch    int64  `json:"epoch"`
	Code     int    `json:"code"`
	Reason   string `json:"reason,omitempty"`
	Next     uint64 `json:"next"`
	Lost     bool   `json:"lost,omitempty"` // its supervisor died: the process is gone
}

// MaxBatchBytes bounds the lines of one LogBatch (under NATS's 1 MiB).
const MaxBatchBytes = 512 << 10

// Expected lists the instances (and their epochs) the master has on a
// node.
type Expected struct {
	Instances map[string]int64 `json:"instances"`
}
