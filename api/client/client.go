// Package client is the Go client of the Universe master's REST and
// WebSocket API: one method per endpoint, typed with the wire types of
// package api. The CLI ("universe instance list", ...) and the end-to-end
// tests use it; so can plugins, bots and dashboards.
//
// Every failed call returns an *Error carrying the HTTP status and the
// master's message (429s also carry the delay to wait). The token is sent
// as "Authorization: Bearer" and never appears in an error.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// DefaultURL is the master's address when none is given.
const DefaultURL = "http://localhost:7000"

// Client talks to one master. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
	ua    string
}

// Option changes a Client.
type Option func(*Client)

// WithHTTPClient uses hc for every request (timeouts, TLS, proxies). The
// default is a client with a 60 s timeout; WebSockets and streaming
// downloads are bounded by their context instead.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.ua = ua } }

// New returns a client of the master at baseURL ("http://host:7000"; ""
// means DefaultURL) that authenticates with token.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	if baseURL == "" {
		baseURL = DefaultURL
	}
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("master URL %q: want http://host:port or https://host:port", baseURL)
	}
	c := &Client{base: u, token: token, http: &http.Client{Timeout: 60 * time.Second}, ua: "universe-client"}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// URL returns the master's base URL.
func (c *Client) URL() string { return c.base.String() }

// Error is a failed call: the HTTP status (0 when the master could not be
// reached) and the master's message.
type Error struct {
	Status  int
	Message string
	// RetryAfter is how long to wait before the next call (429 only).
	RetryAfter time.Duration
	// RequestID matches the master's log line of a 500.
	RequestID string
	// Output is the output of a failed console command.
	Output []string
	// InsufficientScope: the key is valid but may not do this (a 401
	// whose WWW-Authenticate says error="insufficient_scope").
	InsufficientScope bool
	err               error // the transport error when Status is 0
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return e.Message
	}
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Status == http.StatusTooManyRequests && e.RetryAfter > 0 {
		return fmt.Sprintf("%s (retry in %s)", msg, e.RetryAfter.Round(time.Millisecond))
	}
	return msg
}

// Unwrap returns the transport error, if any.
func (e *Error) Unwrap() error { return e.err }

// StatusOf returns the HTTP status of err (0 if it is not an *Error, or the
// master was not reached).
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsNotFound says whether err is a 404.
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }

// transportError hides the URL's query and the token (never in a URL, but
// be sure) and says what failed.
func transportError(err error) *Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &Error{Message: "cannot reach the master: " + err.Error(), err: err}
}

// do sends a request and decodes a JSON answer into out (when not nil).
// body is JSON-encoded unless it is an io.Reader (sent as is).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.send(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return &Error{Status: resp.StatusCode, Message: "unreadable answer from the master: " + err.Error()}
	}
	return nil
}

// send sends a request and returns the response of a 2xx; any other status
// becomes an *Error.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	var (
		rd    io.Reader
		ctype string
	)
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd, ctype = b, "application/octet-stream"
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd, ctype = bytes.NewReader(buf), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(path, query), rd)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	c.authorize(req.Header)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, transportError(err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, errorFrom(resp)
}

func (c *Client) authorize(h http.Header) {
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	h.Set("User-Agent", c.ua)
}

// endpoint joins the base URL, path (already escaped) and query.
func (c *Client) endpoint(path string, query url.Values) string {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	if p, err := url.PathUnescape(u.Path); err == nil && p != u.Path {
		u.RawPath, u.Path = u.Path, p
	}
	u.RawQuery = query.Encode()
	return u.String()
}

// errorFrom reads the {"error": ...} body of a failed answer.
func errorFrom(resp *http.Response) *Error {
	e := &Error{Status: resp.StatusCode}
	var body api.Error
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		e.Message, e.RequestID, e.Output = body.Error, body.RequestID, body.Output
		e.RetryAfter = time.Duration(body.RetryAfterMs) * time.Millisecond
	} else {
		e.Message = http.StatusText(resp.StatusCode)
	}
	e.InsufficientScope = strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`)
	if e.RetryAfter == 0 {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			e.RetryAfter = time.Duration(s) * time.Second
		}
	}
	return e
}

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }

// Ping calls GET /api/ping (no key needed).
func (c *Client) Ping(ctx context.Context) (api.Ping, error) {
	var out api.Ping
	return out, c.do(ctx, "GET", "/api/ping", nil, nil, &out)
}

// Metrics returns the Prometheus text of GET /api/metrics.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.send(ctx, "GET", "/api/metrics", nil, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// OpenAPI returns the OpenAPI document of the API (GET /api/openapi.json).
func (c *Client) OpenAPI(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	return out, c.do(ctx, "GET", "/api/openapi.json", nil, nil, &out)
}

// Node returns facts about the master's node (GET /api/node).
func (c *Client) Node(ctx context.Context) (api.Node, error) {
	var out api.Node
	return out, c.do(ctx, "GET", "/api/node", nil, nil, &out)
}

// Auth says who the client's key is and its rate-limit headroom (GET
// /api/auth). It is rate limited like every PUBLIC call.
func (c *Client) Auth(ctx context.Context) (api.Auth, error) {
	var out api.Auth
	return out, c.do(ctx, "GET", "/api/auth", nil, nil, &out)
}

// VerifyAuth checks the client's key (POST /api/auth/verify).
func (c *Client) VerifyAuth(ctx context.Context) (api.Auth, error) {
	var out api.Auth
	return out, c.do(ctx, "POST", "/api/auth/verify", nil, nil, &out)
}

// Keys lists the API keys (GET /api/keys).
func (c *Client) Keys(ctx context.Context) ([]api.Key, error) {
	var out []api.Key
	return out, c.do(ctx, "GET", "/api/keys", nil, nil, &out)
}

// Key returns one key by id or label (GET /api/keys/{key}).
func (c *Client) Key(ctx context.Context, ref string) (api.Key, error) {
	var out api.Key
	return out, c.do(ctx, "GET", "/api/keys/"+seg(ref), nil, nil, &out)
}

// CreateKey creates a key (POST /api/keys); the answer holds its token,
// shown this once.
func (c *Client) CreateKey(ctx context.Context, req api.KeyCreateRequest) (api.KeyCreated, error) {
	var out api.KeyCreated
	return out, c.do(ctx, "POST", "/api/keys", nil, req, &out)
}

// RevokeKey revokes a key by id or label (DELETE /api/keys/{key}).
func (c *Client) RevokeKey(ctx context.Context, ref string) error {
	return c.do(ctx, "DELETE", "/api/keys/"+seg(ref), nil, nil, nil)
}

// Command runs a console command (POST /api/commands/execute) and returns
// its output once it has finished. A failed command is an *Error whose
// Output holds what it printed.
func (c *Client) Command(ctx context.Context, command string) (api.CommandResponse, error) {
	var out api.CommandResponse
	return out, c.do(ctx, "POST", "/api/commands/execute", nil, api.CommandRequest{Command: command}, &out)
}

// Audit returns the newest audit entries, at most limit (0: the master's
// default of 100) (GET /api/audit).
func (c *Client) Audit(ctx context.Context, limit int) ([]api.AuditEntry, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []api.AuditEntry
	return out, c.do(ctx, "GET", "/api/audit", q, nil, &out)
}

// Configurations lists the configurations (GET /api/configurations).
func (c *Client) Configurations(ctx context.Context) ([]api.Configuration, error) {
	var out []api.Configuration
	return out, c.do(ctx, "GET", "/api/configurations", nil, nil, &out)
}

// Configuration returns one configuration (GET /api/configurations/{name}).
func (c *Client) Configuration(ctx context.Context, name string) (api.Configuration, error) {
	var out api.Configuration
	return out, c.do(ctx, "GET", "/api/configurations/"+seg(name), nil, nil, &out)
}

// PutConfiguration creates or replaces a configuration (PUT
// /api/configurations/{name}). cfg may be an api.Configuration or raw JSON
// (json.RawMessage), so that fields the client does not know pass through.
func (c *Client) PutConfiguration(ctx context.Context, name string, cfg any) error {
	return c.do(ctx, "PUT", "/api/configurations/"+seg(name), nil, cfg, nil)
}

// DeleteConfiguration deletes a configuration; force deletes its instances
// too (DELETE /api/configurations/{name}?force=true).
func (c *Client) DeleteConfiguration(ctx context.Context, name string, force bool) error {
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	return c.do(ctx, "DELETE", "/api/configurations/"+seg(name), q, nil, nil)
}

// Templates lists the templates (GET /api/templates).
func (c *Client) Templates(ctx context.Context) ([]api.TemplateInfo, error) {
	var out []api.TemplateInfo
	return out, c.do(ctx, "GET", "/api/templates", nil, nil, &out)
}

func tplPath(group, name string) string { return "/api/templates/" + seg(group) + "/" + seg(name) }

// filePath escapes each segment of a template file's path.
func filePath(p string) string {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i, s := range parts {
		parts[i] = seg(s)
	}
	return strings.Join(parts, "/")
}

// Template returns one template (GET /api/templates/{group}/{name}).
func (c *Client) Template(ctx context.Context, group, name string) (api.TemplateInfo, error) {
	var out api.TemplateInfo
	return out, c.do(ctx, "GET", tplPath(group, name), nil, nil, &out)
}

// CreateTemplate creates an empty template (POST /api/templates/{group}/{name}).
func (c *Client) CreateTemplate(ctx context.Context, group, name string) (api.TemplateInfo, error) {
	var out api.TemplateInfo
	return out, c.do(ctx, "POST", tplPath(group, name), nil, nil, &out)
}

// DeleteTemplate deletes a template and its files.
func (c *Client) DeleteTemplate(ctx context.Context, group, name string) error {
	return c.do(ctx, "DELETE", tplPath(group, name), nil, nil, nil)
}

// TemplateFiles lists a template's files (GET .../files).
func (c *Client) TemplateFiles(ctx context.Context, group, name string) ([]api.TemplateFile, error) {
	var out []api.TemplateFile
	return out, c.do(ctx, "GET", tplPath(group, name)+"/files", nil, nil, &out)
}

// TemplateFile streams one file of a template to w (GET .../files/{path}).
func (c *Client) TemplateFile(ctx context.Context, group, name, path string, w io.Writer) error {
	return c.download(ctx, "GET", tplPath(group, name)+"/files/"+filePath(path), w)
}

// WriteTemplateFile creates or overwrites one file (PUT .../files/{path}).
func (c *Client) WriteTemplateFile(ctx context.Context, group, name, path string, content io.Reader) error {
	return c.do(ctx, "PUT", tplPath(group, name)+"/files/"+filePath(path), nil, content, nil)
}

// DeleteTemplateFile deletes one file or folder (DELETE .../files/{path}).
func (c *Client) DeleteTemplateFile(ctx context.Context, group, name, path string) error {
	return c.do(ctx, "DELETE", tplPath(group, name)+"/files/"+filePath(path), nil, nil, nil)
}

// ExportTemplate writes the template as a zip to w (GET .../export).
func (c *Client) ExportTemplate(ctx context.Context, group, name string, w io.Writer) error {
	return c.download(ctx, "GET", tplPath(group, name)+"/export", w)
}

// ImportTemplate unpacks a zip into the template, creating it; replace
// empties an existing one first (POST .../import?replace=true).
func (c *Client) ImportTemplate(ctx context.Context, group, name string, zip io.Reader, replace bool) (api.TemplateImport, error) {
	q := url.Values{}
	if replace {
		q.Set("replace", "true")
	}
	var out api.TemplateImport
	return out, c.do(ctx, "POST", tplPath(group, name)+"/import", q, zip, &out)
}

func (c *Client) download(ctx context.Context, method, path string, w io.Writer) error {
	resp, err := c.send(ctx, method, path, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// InstanceFilter narrows Instances; empty fields match all.
type InstanceFilter struct {
	State         string
	Configuration string
}

// Instances lists instances (GET /api/instances).
func (c *Client) Instances(ctx context.Context, f InstanceFilter) ([]api.InstanceInfo, error) {
	q := url.Values{}
	if f.State != "" {
		q.Set("state", f.State)
	}
	if f.Configuration != "" {
		q.Set("configuration", f.Configuration)
	}
	var out []api.InstanceInfo
	return out, c.do(ctx, "GET", "/api/instances", q, nil, &out)
}

// Instance returns one instance (GET /api/instances/{id}).
func (c *Client) Instance(ctx context.Context, id string) (api.InstanceInfo, error) {
	var out api.InstanceInfo
	return out, c.do(ctx, "GET", "/api/instances/"+seg(id), nil, nil, &out)
}

// CreateInstance creates and starts an instance of a configuration (POST
// /api/instances).
func (c *Client) CreateInstance(ctx context.Context, configuration string) (api.InstanceInfo, error) {
	var out api.InstanceInfo
	return out, c.do(ctx, "POST", "/api/instances", nil, api.InstanceCreateRequest{ConfigurationName: configuration}, &out)
}

// DeleteInstance stops and deletes an instance (DELETE /api/instances/{id}).
func (c *Client) DeleteInstance(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/api/instances/"+seg(id), nil, nil, nil)
}

// Lifecycle starts, stops or restarts an instance (PATCH
// /api/instances/{id}/lifecycle?target=...). Accepted in the answer means
// it goes on in the background; WaitState follows it.
func (c *Client) Lifecycle(ctx context.Context, id, target string) (api.LifecycleResponse, error) {
	var out api.LifecycleResponse
	return out, c.do(ctx, "PATCH", "/api/instances/"+seg(id)+"/lifecycle", url.Values{"target": {target}}, nil, &out)
}

// Execute writes one line to the instance's stdin (POST .../execute).
func (c *Client) Execute(ctx context.Context, id, line string) error {
	return c.do(ctx, "POST", "/api/instances/"+seg(id)+"/execute", nil, api.ExecuteRequest{Command: line}, nil)
}

// Logs returns the last lines of the log (GET .../logs?lines=N; 0: the
// master's default).
func (c *Client) Logs(ctx context.Context, id string, lines int) (api.LogEntries, error) {
	q := url.Values{"format": {"entries"}}
	if lines > 0 {
		q.Set("lines", strconv.Itoa(lines))
	}
	var out api.LogEntries
	return out, c.do(ctx, "GET", "/api/instances/"+seg(id)+"/logs", q, nil, &out)
}

// ReportState reports an instance's state from inside it (PUT
// .../state): state and heartbeat plus any other fields, which the master
// keeps as the instance's properties. Instance keys may call it for their
// own instance.
func (c *Client) ReportState(ctx context.Context, id string, report map[string]any) (api.InstanceInfo, error) {
	var out api.InstanceInfo
	return out, c.do(ctx, "PUT", "/api/instances/"+seg(id)+"/state", nil, report, &out)
}

// WaitState polls the instance until its state is one of states with no
// lifecycle action under way (transition ""), and returns it. progress, when not nil, is called with each poll's answer.
func (c *Client) WaitState(ctx context.Context, id string, progress func(api.InstanceInfo), states ...string) (api.InstanceInfo, error) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		info, err := c.Instance(ctx, id)
		if err != nil {
			return info, err
		}
		if progress != nil {
			progress(info)
		}
		for _, s := range states {
			if info.State == s && info.Transition == "" {
				return info, nil
			}
		}
		select {
		case <-ctx.Done():
			return info, ctx.Err()
		case <-t.C:
		}
	}
}

// Nodes lists the cluster's nodes, the master's own first (GET
// /api/cluster/nodes).
func (c *Client) Nodes(ctx context.Context) ([]api.ClusterNode, error) {
	var out []api.ClusterNode
	return out, c.do(ctx, "GET", "/api/cluster/nodes", nil, nil, &out)
}

// ClusterNode returns one node with its instances' ids (GET
// /api/cluster/nodes/{name}).
func (c *Client) ClusterNode(ctx context.Context, name string) (api.ClusterNode, error) {
	var out api.ClusterNode
	return out, c.do(ctx, "GET", "/api/cluster/nodes/"+seg(name), nil, nil, &out)
}

// CreateNode registers an agent node (POST /api/cluster/nodes); the answer
// holds its credential and join command, shown this once.
func (c *Client) CreateNode(ctx context.Context, req api.NodeCreateRequest) (api.NodeCreated, error) {
	var out api.NodeCreated
	return out, c.do(ctx, "POST", "/api/cluster/nodes", nil, req, &out)
}

// SetNodeDraining drains a node or takes it back (PATCH
// /api/cluster/nodes/{name}).
func (c *Client) SetNodeDraining(ctx context.Context, name string, draining bool) (api.ClusterNode, error) {
	var out api.ClusterNode
	return out, c.do(ctx, "PATCH", "/api/cluster/nodes/"+seg(name), nil, api.NodePatch{Draining: &draining}, &out)
}

// RevokeNode revokes a node (DELETE /api/cluster/nodes/{name}).
func (c *Client) RevokeNode(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/api/cluster/nodes/"+seg(name), nil, nil, nil)
}

// Masters lists the masters of the cluster (GET /api/cluster/masters).
func (c *Client) Masters(ctx context.Context) ([]api.Master, error) {
	var out []api.Master
	err := c.do(ctx, "GET", "/api/cluster/masters", nil, nil, &out)
	return out, err
}

// JoinMaster adds the master at address to the cluster (POST
// /api/cluster/masters).
func (c *Client) JoinMaster(ctx context.Context, address, id string) error {
	return c.do(ctx, "POST", "/api/cluster/masters", nil, api.MasterJoin{Address: address, ID: id}, nil)
}

// LeaveMaster takes master id out of the cluster.
func (c *Client) LeaveMaster(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/api/cluster/masters/"+seg(id), nil, nil, nil)
}

// DeleteNode revokes a node, if it is not yet, and removes it from the
// list (DELETE /api/cluster/nodes/{name}?forget=true).
func (c *Client) DeleteNode(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/api/cluster/nodes/"+seg(name)+"?forget=true", nil, nil, nil)
}

// InstanceFiles lists the files of an instance's directory: the whole tree,
// or with dir only that folder's entries (GET /api/instances/{id}/files).
func (c *Client) InstanceFiles(ctx context.Context, id, dir string) ([]api.TemplateFile, error) {
	q := url.Values{}
	if dir != "" {
		q.Set("path", dir)
		q.Set("recursive", "false")
	}
	var out []api.TemplateFile
	return out, c.do(ctx, "GET", "/api/instances/"+url.PathEscape(id)+"/files", q, nil, &out)
}

// InstanceFile streams one file of an instance to w.
func (c *Client) InstanceFile(ctx context.Context, id, path string, w io.Writer) error {
	return c.download(ctx, "GET", "/api/instances/"+url.PathEscape(id)+"/files/"+filePath(path), w)
}

// WriteInstanceFile creates or overwrites one file of an instance.
func (c *Client) WriteInstanceFile(ctx context.Context, id, path string, content io.Reader) error {
	return c.do(ctx, "PUT", "/api/instances/"+url.PathEscape(id)+"/files/"+filePath(path), nil, content, nil)
}

// DeleteInstanceFile deletes one file or folder (with its content).
func (c *Client) DeleteInstanceFile(ctx context.Context, id, path string) error {
	return c.do(ctx, "DELETE", "/api/instances/"+url.PathEscape(id)+"/files/"+filePath(path), nil, nil, nil)
}

// InstanceFileAction makes the folder path ("mkdir"), moves path to to
// ("rename"), or unpacks the zip archive path into folder to ("unzip")
// (POST /api/instances/{id}/files/{path}).
func (c *Client) InstanceFileAction(ctx context.Context, id, path, action, to string) (api.FileActionResult, error) {
	var out api.FileActionResult
	err := c.do(ctx, "POST", "/api/instances/"+url.PathEscape(id)+"/files/"+filePath(path), nil, api.FileAction{Action: action, To: to}, &out)
	return out, err
}

// InstanceProfile writes Go profile name ("profile", "heap", "allocs",
// "goroutine", "threadcreate", "block", "mutex") of an instance's
// supervisor to w, for `go tool pprof`; seconds is the CPU profile's
// duration (0: the master's default, 30).
func (c *Client) InstanceProfile(ctx context.Context, id, name string, seconds int, w io.Writer) error {
	var q url.Values
	if seconds > 0 {
		q = url.Values{"seconds": {strconv.Itoa(seconds)}}
	}
	resp, err := c.send(ctx, "GET", "/api/instances/"+url.PathEscape(id)+"/debug/pprof/"+url.PathEscape(name), q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// InstanceStats returns the CPU and memory samples of an instance.
func (c *Client) InstanceStats(ctx context.Context, id string) (api.InstanceStats, error) {
	var out api.InstanceStats
	return out, c.do(ctx, "GET", "/api/instances/"+url.PathEscape(id)+"/stats", nil, nil, &out)
}
