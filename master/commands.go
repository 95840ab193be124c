package master

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster"
	"github.com/universe-orchestrator/universe/console"
	"github.com/universe-orchestrator/universe/master/auth"
)

var (
	// ansiRE matches terminal escape sequences (CSI and OSC).
	ansiRE = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])`)
	// tokenRE matches tokens and node credentials we issue, for masking in
	// the audit log.
	tokenRE = regexp.MustCompile(`(` + auth.TokenPrefix + `|` + cluster.CredentialPrefix + `|` + auth.LinkPrefix + `)[A-Za-z0-9_-]+`)
)

// cleanLine strips escape sequences and control characters (but tab) so
// API clients get plain text, and the console EOT frame stays unambiguous.
func cleanLine(s string) string {
	s = ansiRE.ReplaceAllString(s, "")
	return strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// maskTokens replaces every token in s by its prefix and stars.
func maskTokens(s string) string { return tokenRE.ReplaceAllString(s, "${1}****") }

// What an audit entry keeps of a command and its output.
const (
	auditCommandBytes = 1 << 10
	auditOutputLines  = 20
	auditOutputBytes  = 2 << 10
)

// cleanWriter passes clean lines on and keeps a masked excerpt of them for
// the audit: the first lines, up to auditOutputLines and auditOutputBytes,
// and a count of the rest.
type cleanWriter struct {
	next    console.Writer
	masked  []string
	size    int
	omitted int
}

func (w *cleanWriter) WriteLine(line string) {
	line = cleanLine(line)
	if w.omitted == 0 && len(w.masked) < auditOutputLines && w.size+len(line) <= auditOutputBytes {
		masked := maskTokens(line)
		if p, _, ok := strings.Cut(line, passwordShown); ok {
			masked = p + passwordShown + "****" // a generated password never reaches the audit log
		}
		w.masked = append(w.masked, masked)
		w.size += len(line)
	} else {
		w.omitted++
	}
	w.next.WriteLine(line)
}

// truncate cuts s to at most n bytes (on a rune boundary), marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// execute runs one command line for key k from source ("rest",
// "websocket"), streams its output to w and writes the audit entry.
func (m *Master) execute(ctx context.Context, k *auth.Key, source, line string, w console.Writer) error {
	ctx = console.WithCaller(ctx, console.Caller{KeyID: k.ID(), Label: k.Label(), Source: source})
	cw := &cleanWriter{next: w}
	err := m.commands.Execute(ctx, line, cw)
	m.audit(k.ID(), source, line, cw, err)
	return err
}

// audit records one action in the audit log (bbolt) and the master's log:
// a bounded excerpt of it. Tokens in the command and output are masked
// first. out may be nil.
func (m *Master) audit(keyID, source, command string, out *cleanWriter, err error) {
	m.appendAudit(m.auditEntry(keyID, source, command, out, err))
}

// auditOn records an action on instance inst or configuration cfg.
func (m *Master) auditOn(keyID, source, command, inst, cfg string, err error) {
	e := m.auditEntry(keyID, source, command, nil, err)
	e.InstanceID, e.Configuration = inst, cfg
	m.appendAudit(e)
}

func (m *Master) appendAudit(e universe.AuditEntry) {
	if err := m.db.AppendAudit(e); err != nil {
		m.log.Error("write audit entry", "err", err)
	}
}

// auditEntry builds the audit entry of one action and logs it.
func (m *Master) auditEntry(keyID, source, command string, out *cleanWriter, err error) universe.AuditEntry {
	e := m.newAuditEntry(keyID, source, command, out, err)
	m.logAudit(e)
	return e
}

// logAudit logs an audit entry.
func (m *Master) logAudit(e universe.AuditEntry) {
	m.log.Info("audit", "key", e.KeyID, "source", e.Source, "command", e.Command, "result", e.Result)
}

// newAuditEntry is auditEntry without the log line (for an entry written
// only if the action it goes with succeeds).
func (m *Master) newAuditEntry(keyID, source, command string, out *cleanWriter, err error) universe.AuditEntry {
	e := universe.AuditEntry{
		Time: m.cfg.Now().UTC(), KeyID: keyID, Source: source,
		Command: truncate(maskTokens(command), auditCommandBytes), Result: "ok",
	}
	if k, err := m.keys.ByID(keyID); err == nil {
		e.User, e.KeyLabel = k.User(), k.Label()
	}
	if out != nil {
		e.Output, e.OutputOmitted = out.masked, out.omitted
	}
	if err != nil {
		e.Result, e.Error = "error", maskTokens(universe.ErrorMessage(err))
		if universe.ErrorCode(err) == universe.EINTERNAL {
			m.log.Error("command failed", "key", keyID, "command", e.Command, "err", maskTokens(err.Error()))
		}
	}
	return e
}

// handleCommandExecute runs a console command and answers when it has
// finished, with all its output.
func (m *Master) handleCommandExecute(c *gin.Context) {
	var req api.CommandRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if strings.TrimSpace(req.Command) == "" {
		fail(c, universe.Errorf(universe.EINVALID, "command is required"))
		return
	}
	out := console.Lines{}
	if err := m.execute(c.Request.Context(), callerKey(c), "rest", req.Command, &out); err != nil {
		c.Set(ctxOutput, []string(out))
		fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, api.CommandResponse{Command: req.Command, Output: out})
}
