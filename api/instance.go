package api

import (
	"encoding/json"
	"reflect"
	"strconv"
	"time"
)

// Ports is an inclusive port range.
type Ports struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// AdditionalPort is an extra port an instance exposes (informational).
type AdditionalPort struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol,omitempty"` // default "TCP"
	Name     string `json:"name,omitempty"`
}

// Template names one template of a configuration's install plan.
type Template struct {
	Name     string `json:"name"`
	Group    string `json:"group"`
	Storage  string `json:"storage,omitempty"` // "local" (the only storage)
	Priority int    `json:"priority"`
}

// TemplateInstallationConfig says which templates an instance gets, see the
// wire contract for the order and override rules.
type TemplateInstallationConfig struct {
	AllOf                               []Template `json:"allOf"`
	AllInGroups                         []string   `json:"allInGroups"`
	OneOf                               []Template `json:"oneOf"`
	OneInGroups                         []string   `json:"oneInGroups"`
	OnTemplatePasteOverridePresentFiles bool       `json:"onTemplatePasteOverridePresentFiles"`
}

// Restart policies of a configuration.
const (
	RestartNever     = "never"
	RestartOnFailure = "on-failure"
	RestartAlways    = "always"
)

// Configuration is what instances are started from: Universe's fields plus
// stopCommand, stopTimeoutSeconds and restartPolicy. Every field is optional
// on input; the master fills the defaults.
type Configuration struct {
	Name           string   `json:"name"`
	Runtime        string   `json:"runtime"`
	Command        string   `json:"command"`
	Static         bool     `json:"static"`
	RAMMB          int      `json:"ramMB"`
	CPU            int      `json:"cpu"`
	InstanceGroups []string `json:"instanceGroups"`
	Nodes          []string `json:"nodes"`
	// NodeLabels picks the nodes its instances may go to by their labels:
	// every one must match (beside Nodes, when both are set).
	NodeLabels                 map[string]string          `json:"nodeLabels,omitempty"`
	HostAddress                string                     `json:"hostAddress"`
	AvailablePorts             Ports                      `json:"availablePorts"`
	MinimumServiceCount        int                        `json:"minimumServiceCount"`
	EnvironmentVariables       map[string]string          `json:"environmentVariables"`
	TemplateInstallationConfig TemplateInstallationConfig `json:"templateInstallationConfig"`
	FileModifications          []string                   `json:"fileModifications"`
	Properties                 map[string]string          `json:"properties"`
	AdditionalPorts            []AdditionalPort           `json:"additionalPorts"`
	StopCommand                string                     `json:"stopCommand"`
	StopTimeoutSeconds         int                        `json:"stopTimeoutSeconds"`
	RestartPolicy              string                     `json:"restartPolicy"`
	// MaximumServiceCount caps the active (CREATING or ONLINE) instances;
	// 0 means no cap.
	MaximumServiceCount int `json:"maximumServiceCount"`
	// HeartbeatTimeoutSeconds: an instance that reported its state and then
	// stays silent this long is taken OFFLINE ("heartbeat timeout"); 0 = off.
	HeartbeatTimeoutSeconds int `json:"heartbeatTimeoutSeconds"`
	// CrashLoopFailures unrequested exits within CrashLoopWindowSeconds stop
	// the restart policy (defaults 5 and 60).
	CrashLoopFailures      int `json:"crashLoopFailures"`
	CrashLoopWindowSeconds int `json:"crashLoopWindowSeconds"`
	// InstanceKeyAccess grants the instances' own keys more than their own
	// instance: "instances:read" lets them read the instance list (a proxy
	// polling it needs no admin token).
	InstanceKeyAccess []string `json:"instanceKeyAccess"`
	// LostAfterSeconds: an instance on an agent node the master cannot
	// reach for this long (counted from when it last heard from the node)
	// is lost, and a dynamic one is replaced (default 120).
	LostAfterSeconds int `json:"lostAfterSeconds,omitempty"`
	// Image is the container image of the docker runtime (required there,
	// refused elsewhere).
	Image string `json:"image,omitempty"`
	// DockerOptions tune the container of the docker runtime.
	DockerOptions *DockerOptions `json:"dockerOptions,omitempty"`
	// Backup: where its instances' backups go, how many are kept, what
	// they leave out and what is sent to the instance around them.
	Backup *BackupOptions `json:"backup,omitempty"`
	// Scaling starts instances before they are needed (readyHeadroom
	// joinable at all times) and stops those left empty, within the
	// minimum and maximum counts.
	Scaling *Scaling `json:"scaling,omitempty"`
	// Maintenance: the configuration is not scaled, and its instances
	// show it (not joinable).
	Maintenance bool `json:"maintenance,omitempty"`
	// HealthCheck probes each instance's allocated port; an instance
	// failing it is not joinable and, after Failures failures in a row, is
	// restarted under its restart policy.
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`
}

// Scaling is a configuration's scaling by players.
type Scaling struct {
	// ReadyHeadroom: how many instances must be joinable at any time
	// (ONLINE, reported within the heartbeat window, players < maxPlayers
	// × fullAt, not draining, health not failing).
	ReadyHeadroom int `json:"readyHeadroom"`
	// FullAt is the fill at which an instance is no longer joinable, in
	// (0, 1] (default 0.9).
	FullAt float64 `json:"fullAt,omitempty"`
	// ScaleDownAfterSeconds: an instance above the minimum with 0 players
	// for this long is stopped (default 300); also the time after a start
	// of the configuration before any stop.
	ScaleDownAfterSeconds int `json:"scaleDownAfterSeconds,omitempty"`
}

// HealthCheck probes an instance on its allocated port.
type HealthCheck struct {
	Type            string `json:"type"`           // "tcp" (connect) or "http" (GET Path, 2xx/3xx)
	Path            string `json:"path,omitempty"` // http: default "/"
	IntervalSeconds int    `json:"intervalSeconds,omitempty"`
	TimeoutSeconds  int    `json:"timeoutSeconds,omitempty"`
	GraceSeconds    int    `json:"graceSeconds,omitempty"`
	Failures        int    `json:"failures,omitempty"`
}

// Health states of an instance.
const (
	HealthPassing = "passing"
	HealthFailing = "failing"
	HealthUnknown = "unknown"
)

// ScalingStatus answers GET /api/configurations/{name}/scaling.
type ScalingStatus struct {
	Desired   int               `json:"desired"`
	Actual    int               `json:"actual"`
	Joinable  int               `json:"joinable"`
	Decisions []ScalingDecision `json:"decisions"`
}

// ScalingDecision is one decision of the scaler, with the numbers it was
// made from.
type ScalingDecision struct {
	Time   time.Time `json:"time"`
	Action string    `json:"action"` // "start", "stop" or "none"
	// Cause is what moved a start or a stop: headroom, empty, drained,
	// drain-deadline.
	Cause      string `json:"cause,omitempty"`
	Reason     string `json:"reason"` // the sentence, with its numbers
	InstanceID string `json:"instanceId,omitempty"`
	Desired    int    `json:"desired"`
	Actual     int    `json:"actual"`
	Joinable   int    `json:"joinable"`
	Starting   int    `json:"starting"`
}

// DrainRequest is the body of POST /api/instances/{id}/drain.
type DrainRequest struct {
	// DeadlineSeconds: stopped then at the latest (0: when it is empty).
	DeadlineSeconds int `json:"deadlineSeconds"`
}

// DockerOptions tune an instance's container (runtime "docker").
type DockerOptions struct {
	// User runs the command as this user (name or uid[:gid]) instead of
	// the image's.
	User string `json:"user,omitempty"`
	// Mounts are extra bind mounts "host:container[:ro]"; the host path
	// must lie inside one of the master's --docker-mount-root folders.
	Mounts []string `json:"mounts,omitempty"`
	// NetworkMode is the container's network: "bridge" (default), "host",
	// "none" or the name of a Docker network.
	NetworkMode string `json:"networkMode,omitempty"`
	// CapAdd gives capabilities back (every capability is dropped by
	// default), e.g. "NET_BIND_SERVICE".
	CapAdd []string `json:"capAdd,omitempty"`
	// ImagePullPolicy: "never", "missing" (default) or "always".
	ImagePullPolicy string `json:"imagePullPolicy,omitempty"`
}

// InstanceKeyAccess values.
const AccessInstancesRead = "instances:read"

// TemplateSync answers POST /api/templates/sync.
type TemplateSync struct {
	Message string `json:"message"`
	Nodes   int    `json:"nodes"` // nodes the templates went to
}

// InstanceInfo describes one instance: the contract's fields plus
// startedAt, exitCode, restarts, reason and properties.
type InstanceInfo struct {
	ID                string `json:"id"`
	ConfigurationName string `json:"configurationName"`
	WrapperNodeID     string `json:"wrapperNodeId"`
	HostAddress       string `json:"hostAddress"`
	AllocatedPort     int    `json:"allocatedPort"`
	State             string `json:"state"`
	LastHeartbeat     int64  `json:"lastHeartbeat"` // epoch milliseconds
	ProcessPid        *int64 `json:"processPid"`
	AllocatedRAMMB    int    `json:"allocatedRamMB"`
	AllocatedCPU      int    `json:"allocatedCpu"`
	Runtime           string `json:"runtime"`
	Static            bool   `json:"static"`
	CreatedAt         int64  `json:"createdAt"`           // epoch milliseconds
	StartedAt         int64  `json:"startedAt,omitempty"` // epoch milliseconds of the last start
	ExitCode          *int   `json:"exitCode"`            // of the last exit; null while running or never run
	// Lost: the instance was lost with its node and waits for its
	// replacement under a new id; then this record goes.
	Lost bool `json:"lost,omitempty"`
	// UnreachableSince: its node has been unreachable since then (epoch
	// ms; the master last heard from it); it still counts as running until
	// its lostAfterSeconds. 0: reachable.
	UnreachableSince int64  `json:"unreachableSince,omitempty"`
	Restarts         int    `json:"restarts"`
	Reason           string `json:"reason,omitempty"` // why it is in its state, when not obvious
	// ReportedState is the state the instance last reported about itself
	// (PUT .../state). It never replaces State, which is what the master
	// observed.
	ReportedState string `json:"reportedState,omitempty"`
	// Transition is the lifecycle action under way: "starting",
	// "stopping" or "restarting" ("" when none). State keeps the
	// original's four values.
	Transition string `json:"transition,omitempty"`
	// Properties are what the instance reported about itself beyond its
	// state (GET /api/instances/{id}/properties). Not in this object on the
	// wire: an instance is a flat object of scalars, as the original's
	// clients read it (Gson, Map<String, String>).
	Properties map[string]any `json:"-"`
	// Players and MaxPlayers are the last reported player counts (proxies
	// balance on them).
	Players    int `json:"players"`
	MaxPlayers int `json:"maxPlayers"`
	// NextRestartAt is when the restart policy starts it again (epoch ms).
	NextRestartAt int64 `json:"nextRestartAt,omitempty"`
	// LimitsEnforced says whether ramMB and cpu are enforced for this
	// instance; LimitsReason says why not.
	LimitsEnforced bool   `json:"limitsEnforced"`
	LimitsReason   string `json:"limitsReason,omitempty"`
	// Joinable: a proxy may send players here (ONLINE, reported within
	// the heartbeat window, not full, not draining, health not failing,
	// its configuration not in maintenance).
	Joinable bool `json:"joinable"`
	// Draining: taken out of the joinable set; stopped once empty or at
	// DrainDeadline (epoch ms, 0: none).
	Draining      bool  `json:"draining"`
	DrainDeadline int64 `json:"drainDeadline,omitempty"`
	// Maintenance: its configuration is in maintenance.
	Maintenance bool `json:"maintenance,omitempty"`
	// Health is its health check's state ("" without a check) and
	// HealthError the last failure.
	Health      string `json:"health"`
	HealthError string `json:"healthError,omitempty"`
	// ReportedAt is when the master last took a state report of the
	// instance (its own clock: the report's lastHeartbeat is the
	// instance's word). Not on the wire.
	ReportedAt time.Time `json:"-"`
}

// Limits reports the enforcement of resource limits.
type Limits struct {
	Enforced bool   `json:"enforced"`
	Reason   string `json:"reason,omitempty"` // why not, when not
}

// InstanceCreateRequest is the body of POST /api/instances.
type InstanceCreateRequest struct {
	ConfigurationName string `json:"configurationName"`
	// Name is read when ConfigurationName is absent: the original's
	// clients may send a whole Configuration, whose name says which.
	Name string `json:"name,omitempty"`
}

// ExecuteRequest is the body of POST /api/instances/{id}/execute: one line
// for the instance's stdin.
type ExecuteRequest struct {
	Command string `json:"command"`
}

// LifecycleResponse answers PATCH /api/instances/{id}/lifecycle: 200 when
// there was nothing to do or the action finished, 202 when it runs in the
// background.
type LifecycleResponse struct {
	InstanceID string       `json:"instanceId"`
	Target     string       `json:"target"`
	Accepted   bool         `json:"accepted"` // the action runs in the background
	Instance   InstanceInfo `json:"instance"`
}

// StateReport is the body of PUT /api/instances/{id}/state. State and
// LastHeartbeat (a number, a numeric string, or null for now) are read;
// every other field is kept and returned under InstanceInfo.properties (a
// field set to null removes that property).
type StateReport struct {
	State         string
	LastHeartbeat int64
	Extra         map[string]json.RawMessage
}

// UnmarshalJSON reads a state report; lastHeartbeat may be a number or a
// numeric string.
func (r *StateReport) UnmarshalJSON(b []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	if v, ok := all["state"]; ok {
		if err := json.Unmarshal(v, &r.State); err != nil {
			return &json.UnmarshalTypeError{Value: "state", Type: reflect.TypeOf(""), Field: "state"}
		}
		delete(all, "state")
	}
	if v, ok := all["lastHeartbeat"]; ok && string(v) == "null" {
		delete(all, "lastHeartbeat") // the original took null as now
	} else if ok {
		var n json.Number
		if err := json.Unmarshal(v, &n); err != nil {
			return &json.UnmarshalTypeError{Value: "lastHeartbeat", Type: reflect.TypeOf(int64(0)), Field: "lastHeartbeat"}
		}
		ms, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return &json.UnmarshalTypeError{Value: "lastHeartbeat", Type: reflect.TypeOf(int64(0)), Field: "lastHeartbeat"}
		}
		r.LastHeartbeat = ms
		delete(all, "lastHeartbeat")
	}
	r.Extra = all
	return nil
}

// Log streams.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	StreamSystem = "system"
)

// LogLine is one line of an instance's log. Seq increases by one per line
// and is never reused for that instance.
type LogLine struct {
	Seq    uint64 `json:"seq"`
	TS     int64  `json:"ts"` // epoch milliseconds
	Stream string `json:"stream"`
	Line   string `json:"line"`
}

// Logs answers GET /api/instances/{id}/logs: the lines' text, as the
// original answered. The newest lines come first to the byte limit of a
// response; OmittedLines counts the requested lines left out for it.
type Logs struct {
	InstanceID     string   `json:"instanceId"`
	Lines          []string `json:"lines"`
	TotalLines     uint64   `json:"totalLines"`
	RequestedLines int      `json:"requestedLines"`
	OmittedLines   int      `json:"omittedLines"`
}

// LogEntries answers GET /api/instances/{id}/logs?format=entries: the same
// lines with their sequence numbers, times and streams.
type LogEntries struct {
	InstanceID     string    `json:"instanceId"`
	Entries        []LogLine `json:"entries"`
	TotalLines     uint64    `json:"totalLines"`
	RequestedLines int       `json:"requestedLines"`
	OmittedLines   int       `json:"omittedLines"`
}

// Live-log frame types in ?format=json (lines have no type).
const (
	FrameState = "state"
	FrameGap   = "gap"
	FrameLines = "lines" // ?batch=1: several lines in one frame
)

// LiveLogFrame is one frame of WS /api/instances/{id}/live-log?format=json:
// a line ({"seq","ts","stream","line"}), a state change
// ({"type":"state","state",...}) or a gap ({"type":"gap","from","to"}:
// lines from..to, inclusive, were not delivered to this client). With
// ?batch=1, consecutive lines come together as {"type":"lines","lines":[...]}
// (each element a LogLine, in order; a frame holds at most
// LiveLogBatchBytes of JSON unless a single line alone is longer).
type LiveLogFrame struct {
	Type     string        `json:"type,omitempty"`
	Seq      uint64        `json:"seq,omitempty"`
	TS       int64         `json:"ts,omitempty"`
	Stream   string        `json:"stream,omitempty"`
	Line     string        `json:"line,omitempty"`
	State    string        `json:"state,omitempty"`
	Deleted  bool          `json:"deleted,omitempty"`
	Instance *InstanceInfo `json:"instance,omitempty"`
	From     uint64        `json:"from,omitempty"`
	To       uint64        `json:"to,omitempty"`
	Lines    []LogLine     `json:"lines,omitempty"`
}

// LiveLogBatchBytes bounds a batched live-log frame ("type":"lines"), so a
// client's read limit of 64 KiB is enough for any frame of short lines.
const LiveLogBatchBytes = 60 << 10

// TemplateInfo describes one template (GET /api/templates...).
type TemplateInfo struct {
	Group string `json:"group"`
	Name  string `json:"name"`
	Files int    `json:"files"`
	Size  int64  `json:"size"`
	// Storage ("local") and Priority (0) are the original's Template
	// fields, which its clients read.
	Storage  string `json:"storage"`
	Priority int    `json:"priority"`
}

// TemplateFile is one file of a template (GET .../files).
type TemplateFile struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	Mode    string `json:"mode"` // e.g. "0644"
	Dir     bool   `json:"dir,omitempty"`
	ModTime int64  `json:"modTime"` // epoch milliseconds
	// Unusable says why the entry cannot be read, written or deleted
	// through the API (a name with control characters, a file with other
	// hard links); empty for every usable one.
	Unusable string `json:"unusable,omitempty"`
}

// FileAction is the body of POST /api/instances/{id}/files/{path}: make
// the folder {path} ("mkdir"), move {path} to To ("rename"), or unpack the
// zip archive {path} into the folder To ("unzip"; "" for the top).
type FileAction struct {
	Action string `json:"action"`
	To     string `json:"to,omitempty"`
}

// FileActionResult answers a FileAction: what an unzip unpacked.
type FileActionResult struct {
	Files int   `json:"files"`
	Size  int64 `json:"size"`
}

// TemplateImport answers POST .../import.
type TemplateImport struct {
	Group string `json:"group"`
	Name  string `json:"name"`
	Files int    `json:"files"`
	Size  int64  `json:"size"`
}

// StatSample is one sample of an instance's process tree.
type StatSample struct {
	Time        int64   `json:"time"`        // epoch milliseconds
	CPU         float64 `json:"cpu"`         // cores used since the previous sample
	MemoryBytes int64   `json:"memoryBytes"` // resident memory of the whole tree
}

// InstanceStats answers GET /api/instances/{id}/stats: the current sample
// and the last 10 minutes, oldest first. An instance that does not run
// (or runs on an agent node, not sampled yet) has no samples.
type InstanceStats struct {
	InstanceID      string       `json:"instanceId"`
	IntervalMs      int64        `json:"intervalMs"`
	CPUSecondsTotal float64      `json:"cpuSecondsTotal"`
	Current         *StatSample  `json:"current"`
	Samples         []StatSample `json:"samples"`
}
