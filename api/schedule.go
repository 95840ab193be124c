package api

import "time"

// Task types of a schedule's chain.
const (
	TaskCommand        = "command"         // payload: a line to the instance's stdin
	TaskPower          = "power"           // payload: start, stop, restart or kill
	TaskBackup         = "backup"          // payload: the backup's name; waits for its outcome
	TaskRollingRestart = "rolling-restart" // a configuration's instances, maxUnavailable at a time
)

// Run and task outcomes.
const (
	OutcomeOK      = "ok"
	OutcomeFailed  = "failed"
	OutcomeSkipped = "skipped"
	OutcomeRunning = "running"
)

// Schedule runs a chain of tasks at the times of a cron expression, on an
// instance or on each instance of a configuration.
type Schedule struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	InstanceID    string `json:"instanceId,omitempty"`
	Configuration string `json:"configuration,omitempty"`
	// Cron: five fields, or @hourly, @daily, @weekly, @monthly, @yearly,
	// @every <duration> (at least 1s).
	Cron string `json:"cron"`
	// Timezone: an IANA name (default UTC).
	Timezone       string `json:"timezone"`
	Enabled        bool   `json:"enabled"`
	OnlyWhenOnline bool   `json:"onlyWhenOnline"`
	// CatchUpSeconds: a run missed while no master led runs on start if
	// it is younger than this (default 300), else it is recorded skipped.
	CatchUpSeconds int            `json:"catchUpSeconds"`
	Tasks          []ScheduleTask `json:"tasks"`
	CreatedAt      time.Time      `json:"createdAt"`
	By             string         `json:"by,omitempty"`
	// NextRun is when it fires next (computed; absent when disabled).
	NextRun *time.Time `json:"nextRun,omitempty"`
}

// ScheduleTask is one step of a schedule's chain.
type ScheduleTask struct {
	Type              string `json:"type"`
	Payload           string `json:"payload,omitempty"`
	OffsetSeconds     int    `json:"offsetSeconds"`
	ContinueOnFailure bool   `json:"continueOnFailure"`
	MaxUnavailable    int    `json:"maxUnavailable,omitempty"`
}

// ScheduleRun is one firing of a schedule. Its id is the schedule's and
// the fire time's: a run is written before its first task acts, and a
// firing whose run exists is never run again.
type ScheduleRun struct {
	ID         string       `json:"id"`
	ScheduleID string       `json:"scheduleId"`
	FireTime   time.Time    `json:"fireTime"`
	StartedAt  time.Time    `json:"startedAt"`
	FinishedAt *time.Time   `json:"finishedAt,omitempty"`
	Outcome    string       `json:"outcome"`
	Reason     string       `json:"reason,omitempty"`
	Manual     bool         `json:"manual,omitempty"`
	Tasks      []TaskResult `json:"tasks"`
}

// TaskResult is a task's outcome in a run (on one instance).
type TaskResult struct {
	Type       string `json:"type"`
	InstanceID string `json:"instanceId,omitempty"`
	Outcome    string `json:"outcome"`
	Reason     string `json:"reason,omitempty"`
}

// Event types.
const (
	EventInstanceStarted   = "instance.started"
	EventInstanceStopped   = "instance.stopped"
	EventInstanceCrashed   = "instance.crashed"
	EventInstanceRestarted = "instance.restarted"
	EventInstanceCrashLoop = "instance.crashloop"
	EventInstanceLost      = "instance.lost"
	EventInstanceReplaced  = "instance.replaced"
	EventNodeLost          = "node.lost"
	EventNodeBack          = "node.back"
	EventBackupCompleted   = "backup.completed"
	EventBackupFailed      = "backup.failed"
	EventRestoreCompleted  = "restore.completed"
	EventRestoreFailed     = "restore.failed"
	EventScheduleFailed    = "schedule.failed"
	EventKeyCreated        = "key.created"
	EventKeyRevoked        = "key.revoked"
	EventScalingDecision   = "scaling.decision"
)

// Event is one thing that happened, in the event log.
type Event struct {
	Seq           uint64         `json:"seq"`
	Time          time.Time      `json:"time"`
	Type          string         `json:"type"`
	InstanceID    string         `json:"instanceId,omitempty"`
	Configuration string         `json:"configuration,omitempty"`
	Node          string         `json:"node,omitempty"`
	Message       string         `json:"message"`
	Data          map[string]any `json:"data,omitempty"`
}

// EventFrame is one frame of the events WebSocket: an event, or a gap of
// events this follower missed (From..To), never silent.
type EventFrame struct {
	Event *Event `json:"event,omitempty"`
	Gap   *Gap   `json:"gap,omitempty"`
}

// Gap names sequence numbers not delivered.
type Gap struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
	// Count is how many events were missed (the numbers from From to To
	// may jump: a master numbers from the clock when it starts or leads).
	Count uint64 `json:"count,omitempty"`
}

// Webhook sends events to a URL.
type Webhook struct {
	ID string `json:"id"`
	// URL: http(s); loopback and private addresses only with the
	// master's --webhooks-allow-private.
	URL string `json:"url"`
	// Events: types, or ["*"].
	Events []string `json:"events"`
	// Format: "json" (signed, see the README) or "discord".
	Format    string    `json:"format"`
	CreatedAt time.Time `json:"createdAt"`
	By        string    `json:"by,omitempty"`
	// Secret signs the deliveries: answered once, at creation.
	Secret string `json:"secret,omitempty"`
}

// Delivery is one event's delivery to a webhook.
type Delivery struct {
	ID        string    `json:"id"`
	WebhookID string    `json:"webhookId"`
	EventSeq  uint64    `json:"eventSeq"`
	EventType string    `json:"eventType"`
	Attempts  int       `json:"attempts"`
	Status    int       `json:"status,omitempty"` // the last HTTP status
	Outcome   string    `json:"outcome"`          // ok, failed, retrying, dropped
	Error     string    `json:"error,omitempty"`
	Time      time.Time `json:"time"`
}

// SchedulePreview is a cron expression's next run times.
type SchedulePreview struct {
	Cron     string      `json:"cron"`
	Timezone string      `json:"timezone"`
	Next     []time.Time `json:"next"`
}
