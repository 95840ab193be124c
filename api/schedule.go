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
