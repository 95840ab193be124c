package master

import (
	"encoding/json"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster/ha"
	"github.com/universe-orchestrator/universe/master/users"
)

// The OpenAPI 3.1 document of the REST API (GET /api/openapi.json). The
// operations are listed here by hand, next to nothing else, and their
// schemas are reflected from the api package's types, so field names and
// types cannot drift from what handlers send. TestOpenAPIMatchesRoutes
// checks that every route is documented and every documented path is
// routed.

// access says who may call an operation.
type access int

const (
	accessOpen     access = iota // no key
	accessInstance               // ALL, or the instance's own INSTANCE key
	accessAnyKey                 // any valid key
	accessUser                   // ALL and PUBLIC (rate limited)
	accessAll                    // ALL only
)

type param struct {
	name, in, desc string
	kind           string // "string", "integer", "boolean"
	required       bool
}

type operation struct {
	method, path, summary string
	access                access
	params                []param
	body                  any    // a value of the request body's type; nil: none
	bodyType              string // for non-JSON bodies: its media type
	status                int    // the success status
	resp                  any    // a value of the answer's type; nil: no body
	respType              string // for non-JSON answers: its media type
	ws                    bool   // a WebSocket upgrade
	also                  []int  // other statuses it answers, besides those every route of its kind has
}

var (
	pathID    = param{name: "id", in: "path", desc: "instance id", kind: "string", required: true}
	pathName  = param{name: "name", in: "path", desc: "configuration or template name", kind: "string", required: true}
	pathGroup = param{name: "group", in: "path", desc: "template group", kind: "string", required: true}
	pathKey   = param{name: "key", in: "path", desc: "key id or label", kind: "string", required: true}
	pathFile  = param{name: "path", in: "path", desc: "file path inside the template, segments as sent", kind: "string", required: true}
	qLines    = param{name: "lines", in: "query", desc: "how many of the last lines (default 100, at most 10000)", kind: "integer"}
	tplParams = []param{pathGroup, pathName}
)

func operations() []operation {
	tplFile := append(append([]param{}, tplParams...), pathFile)
	return []operation{
		{method: "GET", path: "/api/ping", summary: "Liveness", access: accessOpen, status: 200, resp: api.Ping{}},
		{method: "HEAD", path: "/api/ping", summary: "Liveness, without a body", access: accessOpen, status: 200},
		{method: "GET", path: "/api/metrics", summary: "Prometheus metrics", access: accessOpen, status: 200, respType: "text/plain"},
		{method: "GET", path: "/api/openapi.json", summary: "This document", access: accessAnyKey, status: 200, respType: "application/json"},
		{method: "GET", path: "/api/node", summary: "Facts about this node", access: accessUser, status: 200, resp: api.Node{}},
		{method: "GET", path: "/api/auth", summary: "Who the caller's key is, with its rate-limit headroom", access: accessUser, status: 200, resp: api.Auth{}},
		{method: "POST", path: "/api/auth/verify", summary: "Check the caller's key", access: accessUser, status: 200, resp: api.Auth{}},

		{method: "GET", path: "/api/keys", summary: "List keys", access: accessAll, status: 200, resp: []api.Key{}},
		{method: "POST", path: "/api/keys", also: []int{409}, summary: "Create a key; its token is in the answer, once", access: accessAll, body: api.KeyCreateRequest{}, status: 201, resp: api.KeyCreated{}},
		{method: "GET", path: "/api/keys/{key}", summary: "One key", access: accessAll, params: []param{pathKey}, status: 200, resp: api.Key{}},
		{method: "DELETE", path: "/api/keys/{key}", summary: "Revoke a key (at once)", access: accessAll, params: []param{pathKey}, status: 204},
		{method: "POST", path: "/api/commands/execute", also: []int{404, 409, 503}, summary: "Run a console command; answers once it finished", access: accessAll, body: api.CommandRequest{}, status: 200, resp: api.CommandResponse{}},
		{method: "GET", path: "/api/console", summary: "Console WebSocket: each text frame one command line (?format=text|json)", access: accessAll, ws: true,
			params: []param{{name: "format", in: "query", desc: "text (default) or json", kind: "string"}}},
		{method: "GET", path: "/api/debug/pprof/{name}", also: []int{409}, summary: "Go profiles of the master (index, profile, trace, symbol, heap, goroutine, allocs, block, mutex, threadcreate); 409 while another CPU profile is taken; 403 to a dashboard session (Authorization header only)", access: accessAll,
			params: []param{{name: "name", in: "path", desc: "the profile; empty for the index", kind: "string", required: true}}, status: 200, respType: "application/octet-stream"},
		{method: "GET", path: "/api/instances/{id}/debug/pprof/{name}", also: []int{409}, summary: "Go profiles of an instance's supervisor, wherever it runs (profile, heap, allocs, goroutine, threadcreate, block, mutex); 409 when it is not running", access: accessAll,
			params: []param{pathID, {name: "name", in: "path", desc: "the profile", kind: "string", required: true}, {name: "seconds", in: "query", desc: "profile only: 1 to 60, default 30", kind: "integer"}}, status: 200, respType: "application/octet-stream"},
		{method: "GET", path: "/api/cluster/masters", summary: "The masters of the cluster (one, alone): leader, term, last contact, applied index, state", access: accessAll, status: 200, resp: []ha.Master{}},
		{method: "POST", path: "/api/cluster/masters", also: []int{409, 503}, summary: "Add a master (started with --ha-join) to the cluster", access: accessAll, body: api.MasterJoin{}, status: 204},
		{method: "DELETE", path: "/api/cluster/masters/{id}", also: []int{409, 503}, summary: "Take a master out of the cluster", access: accessAll, params: []param{{name: "id", in: "path", desc: "the master's id", kind: "string", required: true}}, status: 204},
		{method: "POST", path: "/api/login", also: []int{400, 401, 429}, summary: "Sign a user in (name, password, and the TOTP or a recovery code when two-factor is on): the dashboard's session cookie; 401 alike for any wrong part, 429 with retryAfterMs after 5 failures a minute per user or address", access: accessOpen, body: loginRequest{}, status: 200},
		{method: "POST", path: "/api/users", also: []int{400, 409}, summary: "Make a user (admin); the password: 10 characters or more, not the name", access: accessAll, body: userCreate{}, status: 201, resp: userView{}},
		{method: "GET", path: "/api/users", summary: "The users (admin)", access: accessAll, status: 200, resp: []userView{}},
		{method: "GET", path: "/api/users/{name}", summary: "One user (admin)", access: accessAll, params: []param{pathName}, status: 200, resp: userView{}},
		{method: "PATCH", path: "/api/users/{name}", also: []int{400, 409}, summary: "Disable or enable a user, or set its password (its sessions end at once)", access: accessAll, params: []param{pathName}, body: userPatch{}, status: 200, resp: userView{}},
		{method: "DELETE", path: "/api/users/{name}", also: []int{409}, summary: "Delete a user with its grants and keys (409 for the last admin)", access: accessAll, params: []param{pathName}, status: 204},
		{method: "POST", path: "/api/users/{name}/grants", also: []int{400, 403}, summary: "Grant permissions on an instance or a configuration (an admin, or a member with user.grant there, never more than they hold)", access: accessAll, params: []param{pathName}, body: grantCreate{}, status: 201, resp: users.Grant{}},
		{method: "GET", path: "/api/users/{name}/grants", summary: "A user's grants (admin)", access: accessAll, params: []param{pathName}, status: 200, resp: []users.Grant{}},
		{method: "DELETE", path: "/api/users/{name}/grants/{grant}", also: []int{403}, summary: "Revoke a grant (the member's sessions end)", access: accessAll, status: 204,
			params: []param{pathName, {name: "grant", in: "path", desc: "the grant's id", kind: "string", required: true}}},
		{method: "GET", path: "/api/me", summary: "The caller's user, grants and key (a user's key or session)", access: accessAll, status: 200, resp: meView{}},
		{method: "POST", path: "/api/me/keys", also: []int{400, 409}, summary: "A key of the caller's user, narrowed to permissions if given (never wider); the token is shown once", access: accessAll, body: meKeyCreate{}, status: 201},
		{method: "POST", path: "/api/me/totp", also: []int{409}, summary: "Start two-factor enrolment: the secret and its otpauth:// URL, shown once", access: accessAll, status: 200},
		{method: "POST", path: "/api/me/totp/confirm", also: []int{400, 409}, summary: "Turn two-factor sign-in on with a first code: 10 recovery codes, shown once", access: accessAll, body: codeRequest{}, status: 200},
		{method: "DELETE", path: "/api/me/totp", also: []int{403, 409}, summary: "Turn two-factor sign-in off, with a current code", access: accessAll, body: codeRequest{}, status: 204},
		{method: "POST", path: "/api/me/password", also: []int{400, 403}, summary: "Change the caller's password (the current one first); its other sessions end", access: accessAll, body: passwordChange{}, status: 204},
		{method: "GET", path: "/api/audit", summary: "Newest audit entries", access: accessAll, status: 200, resp: []api.AuditEntry{},
			params: []param{{name: "limit", in: "query", desc: "1 to 1000, default 100", kind: "integer"}}},

		{method: "GET", path: "/api/configurations", summary: "List configurations", access: accessAll, status: 200, resp: []api.Configuration{}},
		{method: "GET", path: "/api/configurations/{name}", summary: "One configuration", access: accessAll, params: []param{pathName}, status: 200, resp: api.Configuration{}},
		{method: "PUT", path: "/api/configurations/{name}", summary: "Create or replace a configuration", access: accessAll, params: []param{pathName}, body: api.Configuration{}, status: 204},
		{method: "DELETE", path: "/api/configurations/{name}", also: []int{409}, summary: "Delete a configuration (409 while it has instances, unless force)", access: accessAll, status: 204,
			params: []param{pathName, {name: "force", in: "query", desc: "true: delete its instances too", kind: "boolean"}}},

		{method: "GET", path: "/api/templates", summary: "List templates", access: accessAll, status: 200, resp: []api.TemplateInfo{}},
		{method: "POST", path: "/api/templates/sync", summary: "Distribute the templates to the nodes (with one node, nothing to do)", access: accessAll, status: 200, resp: api.TemplateSync{}},
		{method: "GET", path: "/api/templates/{group}/{name}", summary: "One template", access: accessAll, params: tplParams, status: 200, resp: api.TemplateInfo{}},
		{method: "POST", path: "/api/templates/{group}/{name}", also: []int{409}, summary: "Create an empty template", access: accessAll, params: tplParams, status: 201, resp: api.TemplateInfo{}},
		{method: "DELETE", path: "/api/templates/{group}/{name}", summary: "Delete a template and its files", access: accessAll, params: tplParams, status: 204},
		{method: "GET", path: "/api/templates/{group}/{name}/files", summary: "List a template's files", access: accessAll, params: tplParams, status: 200, resp: []api.TemplateFile{}},
		{method: "GET", path: "/api/templates/{group}/{name}/files/{path}", summary: "Read one file", access: accessAll, params: tplFile, status: 200, respType: "application/octet-stream"},
		{method: "POST", path: "/api/templates/{group}/{name}/files/{path}", also: []int{409}, summary: "Create one file (409 if it exists)", access: accessAll, params: tplFile, bodyType: "application/octet-stream", status: 201},
		{method: "PUT", path: "/api/templates/{group}/{name}/files/{path}", summary: "Create or overwrite one file", access: accessAll, params: tplFile, bodyType: "application/octet-stream", status: 204},
		{method: "PATCH", path: "/api/templates/{group}/{name}/files/{path}", summary: "Create or overwrite one file", access: accessAll, params: tplFile, bodyType: "application/octet-stream", status: 204},
		{method: "DELETE", path: "/api/templates/{group}/{name}/files/{path}", summary: "Delete one file or folder", access: accessAll, params: tplFile, status: 204},
		{method: "GET", path: "/api/templates/{group}/{name}/export", summary: "The template as a zip", access: accessAll, params: tplParams, status: 200, respType: "application/zip"},
		{method: "POST", path: "/api/templates/{group}/{name}/export", summary: "The template as a zip", access: accessAll, params: tplParams, status: 200, respType: "application/zip"},
		{method: "POST", path: "/api/templates/{group}/{name}/import", also: []int{409}, summary: "Unpack a zip into the template", access: accessAll, bodyType: "application/zip", status: 201, resp: api.TemplateImport{},
			params: append(append([]param{}, tplParams...), param{name: "replace", in: "query", desc: "true: empty an existing template first", kind: "boolean"})},

		{method: "GET", path: "/api/instances", summary: "List instances (also instance keys whose configuration grants instances:read)", access: accessInstance, status: 200, resp: []api.InstanceInfo{},
			params: []param{{name: "state", in: "query", desc: "only this state", kind: "string"}, {name: "configuration", in: "query", desc: "only of this configuration", kind: "string"}}},
		{method: "POST", path: "/api/instances", also: []int{404, 409, 503}, summary: "Create and start an instance", access: accessAll, body: api.InstanceCreateRequest{}, status: 201, resp: api.InstanceInfo{}},
		{method: "GET", path: "/api/instances/{id}", summary: "One instance", access: accessInstance, params: []param{pathID}, status: 200, resp: api.InstanceInfo{}},
		{method: "DELETE", path: "/api/instances/{id}", summary: "Stop and delete an instance", access: accessAll, params: []param{pathID}, status: 204},
		{method: "PUT", path: "/api/instances/{id}/state", summary: "Report state and heartbeat from inside the instance; other fields become properties", access: accessInstance,
			params: []param{pathID}, body: map[string]any{}, status: 200, resp: api.InstanceInfo{}},
		{method: "PATCH", path: "/api/instances/{id}/lifecycle", also: []int{202, 409}, summary: "Start, stop or restart (202 when it goes on in the background)", access: accessAll, status: 200, resp: api.LifecycleResponse{},
			params: []param{pathID, {name: "target", in: "query", desc: "start, stop or restart", kind: "string", required: true}}},
		{method: "POST", path: "/api/instances/{id}/execute", also: []int{409, 503}, summary: "One line to the instance's stdin", access: accessAll, params: []param{pathID}, body: api.ExecuteRequest{}, status: 204},
		{method: "POST", path: "/api/instances/{id}/command", also: []int{409, 503}, summary: "The same as execute (the original's clients call it)", access: accessAll, params: []param{pathID}, body: api.ExecuteRequest{}, status: 204},
		{method: "POST", path: "/api/instances/{id}/stop", also: []int{202, 409}, summary: "The same as lifecycle stop (the original's clients call it)", access: accessAll, params: []param{pathID}, status: 200, resp: api.LifecycleResponse{}},
		{method: "GET", path: "/api/instances/{id}/properties", summary: "What the instance reported about itself beyond its state", access: accessInstance, params: []param{pathID}, status: 200, resp: map[string]any{}},
		{method: "GET", path: "/api/instances/{id}/logs", summary: "The last lines of the log", access: accessAll, params: []param{pathID, qLines}, status: 200, resp: api.Logs{}},
		{method: "GET", path: "/api/instances/{id}/live-log", summary: "Live-log WebSocket: one frame per line (?format=json: api.LiveLogFrame; &batch=1: lines share frames)", access: accessAll, ws: true,
			params: []param{pathID, qLines, {name: "since", in: "query", desc: "resume after this sequence number", kind: "integer"},
				{name: "format", in: "query", desc: "text (default) or json", kind: "string"}}},
		{method: "GET", path: "/api/instances/{id}/stats", summary: "CPU (cores) and memory (RSS of the process tree) of an instance: the current sample and the last 10 minutes", access: accessAll, params: []param{pathID}, status: 200, resp: api.InstanceStats{}},
		{method: "GET", path: "/api/instances/{id}/files", also: []int{503}, summary: "The files of an instance's directory (the tree, or one folder with ?path=&recursive=false; at most 10000 entries, X-Universe-Truncated: true when there are more)", access: accessAll, status: 200, resp: []api.TemplateFile{},
			params: []param{pathID, {name: "path", in: "query", desc: "a folder inside the instance's directory", kind: "string"}, {name: "recursive", in: "query", desc: "false: only that folder's entries", kind: "boolean"}}},
		{method: "GET", path: "/api/instances/{id}/files/{path}", also: []int{503}, summary: "Read one file of an instance", access: accessAll, params: []param{pathID, pathFile}, status: 200, respType: "application/octet-stream"},
		{method: "PUT", path: "/api/instances/{id}/files/{path}", also: []int{503}, summary: "Create or overwrite one file of an instance (its folders are created)", access: accessAll, params: []param{pathID, pathFile}, bodyType: "application/octet-stream", status: 204},
		{method: "POST", path: "/api/instances/{id}/files/{path}", also: []int{409, 503}, summary: "A file action: make the folder {path} (mkdir), move {path} to \"to\" (rename), or unpack the zip archive {path} into the folder \"to\" (unzip)", access: accessAll, params: []param{pathID, pathFile}, body: api.FileAction{}, status: 200, resp: api.FileActionResult{}},
		{method: "DELETE", path: "/api/instances/{id}/files/{path}", also: []int{503}, summary: "Delete one file or folder (with its content) of an instance", access: accessAll, params: []param{pathID, pathFile}, status: 204},

		{method: "POST", path: "/api/instances/{id}/backups", also: []int{409, 503}, summary: "Back up an instance's folder (tar + zstd, to its configuration's target): 202 with the PENDING record; the instance's log says when it is done", access: accessAll, params: []param{pathID}, body: api.BackupRequest{}, status: 202, resp: api.Backup{}},
		{method: "GET", path: "/api/instances/{id}/backups", summary: "An instance's backups, oldest first", access: accessAll, params: []param{pathID}, status: 200, resp: []api.Backup{}},
		{method: "GET", path: "/api/configurations/{name}/backups", summary: "The backups of a configuration's instances, oldest first", access: accessAll, params: []param{pathName}, status: 200, resp: []api.Backup{}},
		{method: "GET", path: "/api/backups/{backup}", summary: "One backup", access: accessAll, params: []param{pathBackup}, status: 200, resp: api.Backup{}},
		{method: "GET", path: "/api/backups/{backup}/download", also: []int{409, 503}, summary: "A COMPLETED backup's archive (tar + zstd), with Content-Length, X-Checksum-Sha256 and Digest", access: accessAll, params: []param{pathBackup}, status: 200, respType: "application/zstd"},
		{method: "DELETE", path: "/api/backups/{backup}", also: []int{409, 503}, summary: "Delete a backup, its archive with it (409 when locked or under way)", access: accessAll, params: []param{pathBackup}, status: 204},
		{method: "POST", path: "/api/backups/{backup}/lock", summary: "Lock a backup: never rotated nor deleted until unlocked", access: accessAll, params: []param{pathBackup}, status: 200, resp: api.Backup{}},
		{method: "POST", path: "/api/backups/{backup}/unlock", summary: "Unlock a backup", access: accessAll, params: []param{pathBackup}, status: 200, resp: api.Backup{}},
		{method: "POST", path: "/api/backups/{backup}/restore", also: []int{409, 503}, summary: "Restore a backup into its instance, which must be stopped (409 otherwise): checked against its SHA-256, unpacked beside the folder and swapped in; 202, the instance's log says when it is done", access: accessAll, params: []param{pathBackup}, body: api.RestoreRequest{}, status: 202, resp: api.Backup{}},

		{method: "POST", path: "/api/schedules", also: []int{404}, summary: "Create a schedule: a cron expression in a time zone and a chain of tasks, on an instance or a configuration's instances; each firing runs once", access: accessAll, body: api.Schedule{}, status: 201, resp: api.Schedule{}},
		{method: "GET", path: "/api/schedules", summary: "Schedules, with their next run", access: accessAll, status: 200, resp: []api.Schedule{},
			params: []param{{name: "instanceId", in: "query", desc: "only this instance's", kind: "string"}, {name: "configuration", in: "query", desc: "only this configuration's", kind: "string"}}},
		{method: "POST", path: "/api/instances/{id}/drain", summary: "Drain an instance: no longer joinable (no new players), stopped once it has no players or at deadlineSeconds; draining again is no error (the earlier deadline holds)", access: accessAll, params: []param{pathID}, body: api.DrainRequest{}, status: 200, resp: api.InstanceInfo{}},
		{method: "GET", path: "/api/configurations/{name}/scaling", summary: "A configuration's scaling: desired, actual and joinable instances (the scaler's last pass) and its decisions, newest first", access: accessAll, params: []param{pathName}, status: 200, resp: api.ScalingStatus{}},
		{method: "GET", path: "/api/schedules/preview", summary: "The next run times of a cron expression in a time zone (the dashboard's cron helper); 400 naming the field at fault", access: accessAll, status: 200, resp: api.SchedulePreview{},
			params: []param{{name: "cron", in: "query", desc: "the expression", kind: "string", required: true}, {name: "timezone", in: "query", desc: "an IANA time zone (default UTC)", kind: "string"},
				{name: "count", in: "query", desc: "how many times (1 to 50, default 5)", kind: "integer"}}},
		{method: "GET", path: "/api/schedules/{schedule}", summary: "One schedule", access: accessAll, params: []param{pathSchedule}, status: 200, resp: api.Schedule{}},
		{method: "PUT", path: "/api/schedules/{schedule}", also: []int{404}, summary: "Replace a schedule's fields", access: accessAll, params: []param{pathSchedule}, body: api.Schedule{}, status: 200, resp: api.Schedule{}},
		{method: "DELETE", path: "/api/schedules/{schedule}", summary: "Delete a schedule and its runs", access: accessAll, params: []param{pathSchedule}, status: 204},
		{method: "POST", path: "/api/schedules/{schedule}/run", also: []int{409}, summary: "Run a schedule now (409 while a run is under way)", access: accessAll, params: []param{pathSchedule}, status: 202, resp: api.ScheduleRun{}},
		{method: "GET", path: "/api/schedules/{schedule}/runs", summary: "A schedule's last 50 runs, newest first, each task's outcome", access: accessAll, params: []param{pathSchedule}, status: 200, resp: []api.ScheduleRun{}},

		{method: "GET", path: "/api/events", summary: "The event log (this master's, bounded), oldest first", access: accessAll, status: 200, resp: []api.Event{},
			params: []param{{name: "since", in: "query", desc: "events after this sequence number", kind: "integer"}, {name: "type", in: "query", desc: "only this type", kind: "string"},
				{name: "instanceId", in: "query", desc: "only this instance's", kind: "string"}, {name: "limit", in: "query", desc: "at most this many (default 1000)", kind: "integer"}}},
		{method: "GET", path: "/api/events/live", summary: "Follow the event log: a frame per event (api.EventFrame), a gap frame (with the count) for events missed; a message holds one or more frames, a line each", access: accessAll, ws: true,
			params: []param{{name: "since", in: "query", desc: "resume after this sequence number (default: from now)", kind: "integer"}}},
		{method: "POST", path: "/api/webhooks", summary: "Send events to a URL (signed JSON, or a Discord message); the secret is in the answer, once", access: accessAll, body: webhookCreate{}, status: 201, resp: api.Webhook{}},
		{method: "GET", path: "/api/webhooks", summary: "Webhooks (without their secrets)", access: accessAll, status: 200, resp: []api.Webhook{}},
		{method: "DELETE", path: "/api/webhooks/{webhook}", summary: "Delete a webhook", access: accessAll, params: []param{pathWebhook}, status: 204},
		{method: "GET", path: "/api/webhooks/{webhook}/deliveries", summary: "A webhook's latest deliveries, newest first", access: accessAll, params: []param{pathWebhook}, status: 200, resp: []api.Delivery{}},

		{method: "GET", path: "/api/cluster/nodes", summary: "Every node: the master's own first, then the agents", access: accessAll, status: 200, resp: []api.ClusterNode{}},
		{method: "POST", path: "/api/cluster/nodes", also: []int{409}, summary: "Register an agent node: its credential and join command, shown once", access: accessAll, body: api.NodeCreateRequest{}, status: 201, resp: api.NodeCreated{}},
		{method: "GET", path: "/api/cluster/nodes/{name}", summary: "One node, with the ids of its instances", access: accessAll, params: []param{pathNode}, status: 200, resp: api.ClusterNode{}},
		{method: "PATCH", path: "/api/cluster/nodes/{name}", also: []int{409}, summary: "Drain a node or take it back", access: accessAll, params: []param{pathNode}, body: api.NodePatch{}, status: 200, resp: api.ClusterNode{}},
		{method: "DELETE", path: "/api/cluster/nodes/{name}", also: []int{409}, summary: "Revoke a node: it is disconnected at once and cannot connect again; with forget=true it is also removed from the list (its name free again)", access: accessAll,
			params: []param{pathNode, {name: "forget", in: "query", desc: "true: revoke and remove the node", kind: "boolean"}}, status: 204},
	}
}

var pathWebhook = param{name: "webhook", in: "path", desc: "webhook id", kind: "string", required: true}

var pathSchedule = param{name: "schedule", in: "path", desc: "schedule id", kind: "string", required: true}

var pathBackup = param{name: "backup", in: "path", desc: "backup id", kind: "string", required: true}

var pathNode = param{name: "name", in: "path", desc: "node name", kind: "string", required: true}

var (
	openAPIOnce sync.Once
	openAPIDoc  []byte
)

// openAPIDocument builds the document once (it depends on nothing but the
// code).
func openAPIDocument(version string) []byte {
	openAPIOnce.Do(func() {
		openAPIDoc, _ = json.MarshalIndent(buildOpenAPI(version), "", "  ")
	})
	return openAPIDoc
}

func (m *Master) handleOpenAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", openAPIDocument(m.cfg.Version))
}

// schemas collects the component schemas reflected from Go types.
type schemas map[string]any

func buildOpenAPI(version string) map[string]any {
	comps := schemas{}
	comps.of(reflect.TypeOf(api.Error{}))
	paths := map[string]map[string]any{}
	for _, op := range operations() {
		o := map[string]any{"summary": op.summary, "operationId": operationID(op)}
		var params []any
		for _, p := range op.params {
			params = append(params, map[string]any{"name": p.name, "in": p.in, "description": p.desc,
				"required": p.required || p.in == "path", "schema": map[string]any{"type": p.kind}})
		}
		if params != nil {
			o["parameters"] = params
		}
		switch {
		case op.body != nil:
			o["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": comps.of(reflect.TypeOf(op.body))}}}
		case op.bodyType != "":
			o["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				op.bodyType: map[string]any{"schema": map[string]any{"type": "string", "contentMediaType": op.bodyType}}}}
		}
		responses := map[string]any{}
		switch {
		case op.ws:
			responses["101"] = map[string]any{"description": "switching to the WebSocket protocol"}
		case op.resp != nil:
			responses[strconv.Itoa(op.status)] = map[string]any{"description": http.StatusText(op.status), "content": map[string]any{
				"application/json": map[string]any{"schema": comps.of(reflect.TypeOf(op.resp))}}}
		case op.respType != "":
			responses[strconv.Itoa(op.status)] = map[string]any{"description": http.StatusText(op.status), "content": map[string]any{
				op.respType: map[string]any{"schema": map[string]any{"type": "string"}}}}
		default:
			responses[strconv.Itoa(op.status)] = map[string]any{"description": http.StatusText(op.status)}
		}
		errRef := map[string]any{"$ref": "#/components/responses/Error"}
		// Every route: 400, 500, and 403 outside --allow-cidr.
		responses["400"], responses["500"], responses["403"] = errRef, errRef, errRef
		if op.access != accessOpen {
			// 429: a client address with too many failed
			// authentications, PUBLIC and INSTANCE keys over their rate.
			responses["401"], responses["429"] = errRef, errRef
			o["security"] = []any{map[string]any{"bearer": []any{}}, map[string]any{"session": []any{}}}
		} else {
			o["security"] = []any{}
		}
		if strings.Contains(op.path, "{") {
			responses["404"] = errRef
		}
		if op.body != nil || op.bodyType != "" {
			responses["408"], responses["413"] = errRef, errRef // a body too slow, too large
			if op.body != nil {
				responses["415"] = errRef
			}
		}
		if op.ws {
			responses["426"] = errRef
		}
		if op.method != http.MethodGet {
			responses["507"] = errRef // a write on a full disk: nothing written
		}
		for _, st := range op.also {
			if st < 300 {
				responses[strconv.Itoa(st)] = map[string]any{"description": http.StatusText(st)}
			} else {
				responses[strconv.Itoa(st)] = errRef
			}
		}
		o["responses"] = responses
		o["x-universe-access"] = []string{"open", "ALL or the instance's own INSTANCE key", "any valid key", "ALL or PUBLIC (PUBLIC is rate limited)", "ALL"}[op.access]
		if paths[op.path] == nil {
			paths[op.path] = map[string]any{}
		}
		paths[op.path][strings.ToLower(op.method)] = o
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "Universe master API", "version": version,
			"description": "REST and WebSocket API of the Universe master. Every error is {\"error\": \"...\"}."},
		"servers": []any{map[string]any{"url": "http://localhost:7000"}},
		"paths":   paths,
		"components": map[string]any{
			"schemas": comps,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer",
				"description": "Authorization: Bearer <token>"},
				"session": map[string]any{"type": "apiKey", "in": "cookie", "name": "universe_session",
					"description": "The dashboard's session (signing in at /ui/ with an ALL key). A Bearer header takes precedence. Unsafe methods and WebSocket upgrades with it must come from the master's own origin (403 otherwise). Under TLS the cookie is __Host-universe_session."}},
			"responses": map[string]any{"Error": map[string]any{"description": "an error",
				"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}}},
		},
	}
}

func operationID(op operation) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(op.method))
	for _, s := range strings.Split(op.path, "/") {
		s = strings.Trim(s, "{}")
		s = strings.TrimSuffix(s, ".json")
		if s == "" || s == "api" {
			continue
		}
		for _, part := range strings.Split(s, "-") {
			if part != "" {
				b.WriteString(strings.ToUpper(part[:1]) + part[1:])
			}
		}
	}
	return b.String()
}

var timeType = reflect.TypeOf(time.Time{})

// of returns the schema of t: a $ref for named structs (added to the
// components), inline otherwise.
func (s schemas) of(t reflect.Type) any {
	switch t.Kind() {
	case reflect.Pointer:
		return s.of(t.Elem())
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": s.of(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": s.of(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		if t == timeType {
			return map[string]any{"type": "string", "format": "date-time"}
		}
		if t.Name() == "" {
			return s.object(t)
		}
		if _, ok := s[t.Name()]; !ok {
			s[t.Name()] = nil // a placeholder: recursive types end here
			s[t.Name()] = s.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + t.Name()}
	}
	return map[string]any{}
}

func (s schemas) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	s.fields(t, props, &required)
	out := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		sort.Strings(required)
		out["required"] = required
	}
	if t == reflect.TypeOf(api.StateReport{}) {
		return map[string]any{"type": "object", "additionalProperties": true}
	}
	return out
}

// fields adds the JSON fields of struct t (embedded structs inlined).
func (s schemas) fields(t reflect.Type, props map[string]any, required *[]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			s.fields(f.Type, props, required)
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = s.of(f.Type)
		if !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Pointer {
			*required = append(*required, name)
		}
	}
}
