package main

import (
	"context"
	"encoding/json"

	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cliMaster is a master (a child process) and the CLI's view of it.
type cliMaster struct {
	t      *testing.T
	dir    string
	url    string
	admin  string
	public string
	home   string // HOME of the CLI: an empty config folder
}

func newCLIMaster(t *testing.T, extra ...string) (*cliMaster, *childMaster) {
	t.Helper()
	dir := t.TempDir()
	code, out, errOut := cli(t, "key", "create", "admin", "ALL", "--data", dir)
	if code != 0 {
		t.Fatalf("key create: %s", errOut)
	}
	admin := tokenRE.FindString(out)
	_, out, _ = cli(t, "key", "create", "viewer", "PUBLIC", "--data", dir)
	public := tokenRE.FindString(out)
	cm := startChildMaster(t, dir, freePort(t), extra...)
	return &cliMaster{t: t, dir: dir, url: cm.base, admin: admin, public: public, home: t.TempDir()}, cm
}

// env is the CLI's environment: the master's URL and token.
func (m *cliMaster) env(token string, more ...string) func(string) string {
	vars := map[string]string{"UNIVERSE_URL": m.url, "UNIVERSE_TOKEN": token, "HOME": m.home}
	for i := 0; i+1 < len(more); i += 2 {
		vars[more[i]] = more[i+1]
	}
	return func(k string) string { return vars[k] }
}

// run runs the CLI with token and checks that no token it was given shows
// up in its output.
func (m *cliMaster) run(token, stdin string, args ...string) (int, string, string) {
	m.t.Helper()
	var out, errb strings.Builder
	code := run(context.Background(), args, m.env(token), strings.NewReader(stdin), &out, &errb)
	for _, secret := range []string{m.admin, m.public} {
		if secret != "" && strings.Contains(out.String()+errb.String(), secret) {
			m.t.Fatalf("%v: a token appears in the output", args)
		}
	}
	return code, out.String(), errb.String()
}

// Every subcommand against a real master, in both output modes, with the
// exit codes of 401, 429 and 404.
// anyCode: a step whose exit code is not checked.
const anyCode = -1

func TestCLIAgainstMaster(t *testing.T) {
	m, _ := newCLIMaster(t, "--public-rate-limit", "6/1m")
	work := t.TempDir()
	cfgFile := filepath.Join(work, "echo.json")
	if err := os.WriteFile(cfgFile, []byte(`{"command":"echo ready; while read l; do echo \"got $l\"; done","availablePorts":{"min":21700,"max":21710},"stopTimeoutSeconds":5}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tplDir := filepath.Join(work, "tpl")
	_ = os.MkdirAll(filepath.Join(tplDir, "plugins"), 0o755)
	_ = os.WriteFile(filepath.Join(tplDir, "server.properties"), []byte("motd=hi\n"), 0o644)
	_ = os.WriteFile(filepath.Join(tplDir, "plugins", "a.jar"), []byte("jar"), 0o644)

	// The instance the steps below work on, and one that fails.
	var id, badID, bid, sid string
	idOf := func(out string) {
		var in struct{ ID string }
		if err := json.Unmarshal([]byte(out), &in); err != nil || in.ID == "" {
			t.Fatalf("no instance in %q", out)
		}
		id = in.ID
	}
	steps := []struct {
		name  string
		token string
		stdin string
		args  func() []string
		code  int
		want  string              // in stdout+stderr
		after func(stdout string) // more checks
		again bool                // what is wanted may take a moment: retry for up to 10 s
	}{
		{name: "status", args: func() []string { return []string{"status"} }, want: "Node:      node-1"},
		{name: "status json", args: func() []string { return []string{"status", "-o", "json"} }, want: `"nodeId": "node-1"`},
		{name: "auth status admin", args: func() []string { return []string{"auth", "status"} }, want: "never limited"},
		{name: "auth status public", token: "public", args: func() []string { return []string{"auth", "status"} }, want: "calls left"},
		{name: "auth verify json", args: func() []string { return []string{"auth", "verify", "-o", "json"} }, want: `"scope": "ALL"`},
		{name: "key create", args: func() []string { return []string{"key", "create", "bot", "PUBLIC", "--expires", "1h"} }, want: "shown only now"},
		{name: "key list", args: func() []string { return []string{"key", "list"} }, want: "bot"},
		{name: "key list json", args: func() []string { return []string{"key", "list", "-o", "json"} }, want: `"label": "bot"`},
		{name: "key revoke", args: func() []string { return []string{"key", "revoke", "bot"} }, want: "Revoked bot"},
		{name: "config apply", args: func() []string { return []string{"config", "apply", "-f", cfgFile} }, want: "Applied configuration echo"},
		{name: "config apply stdin", stdin: `{"name":"other","command":"sleep 60"}`, args: func() []string { return []string{"config", "apply", "-f", "-"} }, want: "Applied configuration other"},
		{name: "config list", args: func() []string { return []string{"config", "list"} }, want: "21700-21710"},
		{name: "config show", args: func() []string { return []string{"config", "show", "echo"} }, want: `"stopTimeoutSeconds": 5`},
		{name: "config delete", args: func() []string { return []string{"config", "delete", "other"} }, want: "Deleted configuration other"},
		{name: "instance create", args: func() []string { return []string{"instance", "create", "echo", "-o", "json"} }, want: `"state": "ONLINE"`, after: idOf},
		{name: "instance list", args: func() []string { return []string{"instance", "list"} }, want: "ONLINE"},
		{name: "instance list json", args: func() []string { return []string{"instance", "list", "--state", "ONLINE", "-o", "json"} }, want: `"configurationName": "echo"`},
		{name: "instance info", args: func() []string { return []string{"instance", "info", id} }, want: "Configuration:  echo"},
		{name: "instance exec", args: func() []string { return []string{"instance", "exec", id, "hello", "world"} }},
		{name: "instance logs", args: func() []string { return []string{"instance", "logs", id, "--lines", "50"} }, want: "got hello world", again: true},
		{name: "instance logs with timestamps", args: func() []string { return []string{"instance", "logs", id, "--lines", "50", "--timestamps"} }, want: "Z [universe] created from configuration echo"},
		{name: "instance logs json since", args: func() []string { return []string{"instance", "logs", id, "--since", "2", "-o", "json"} }, want: `"line":"ready"`,
			after: func(out string) {
				if strings.Contains(out, `"seq":2,`) || strings.Contains(out, `"seq":1,`) {
					t.Fatalf("--since 2 printed older lines: %s", out)
				}
			}},
		{name: "instance files put", args: func() []string { return []string{"instance", "files", "put", id, "conf/motd.txt", cfgFile} }},
		{name: "instance files ls", args: func() []string { return []string{"instance", "files", "ls", id} }, want: "conf/motd.txt"},
		{name: "instance files ls folder", args: func() []string { return []string{"instance", "files", "ls", id, "conf", "-o", "json"} }, want: `"path": "conf/motd.txt"`},
		{name: "instance files get", args: func() []string { return []string{"instance", "files", "get", id, "conf/motd.txt"} }, want: `"stopTimeoutSeconds":5`},
		{name: "instance files rm: delete", args: func() []string { return []string{"instance", "files", "rm", id, "conf"} }},
		{name: "instance files get gone", args: func() []string { return []string{"instance", "files", "get", id, "conf/motd.txt"} }, code: 1, want: "no file"},
		{name: "instance stats", args: func() []string { return []string{"instance", "stats", id} }, want: "Memory:", again: true},
		{name: "instance pprof", args: func() []string {
			return []string{"instance", "pprof", id, "profile", filepath.Join(work, "cpu.pb.gz"), "--seconds", "1"}
		}, want: "go tool pprof",
			after: func(string) {
				if b, err := os.ReadFile(filepath.Join(work, "cpu.pb.gz")); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
					t.Fatalf("the saved profile is not gzipped: %v", err)
				}
			}},
		{name: "instance pprof unknown", args: func() []string { return []string{"instance", "pprof", id, "cmdline", filepath.Join(work, "x")} }, code: 1, want: "no profile"},
		{name: "instance stop", args: func() []string { return []string{"instance", "stop", id} }, want: "STOPPED"},
		{name: "backup create", args: func() []string { return []string{"backup", "create", id, "--name", "cli one", "-o", "json"} }, want: `"state": "COMPLETED"`,
			after: func(out string) {
				var b struct{ ID string }
				if err := json.Unmarshal([]byte(out), &b); err != nil || b.ID == "" {
					t.Fatalf("no backup in %q", out)
				}
				bid = b.ID
			}},
		{name: "backup list", args: func() []string { return []string{"backup", "list", id} }, want: "cli one"},
		{name: "backup list configuration", args: func() []string { return []string{"backup", "list", "--configuration", "echo"} }, want: "COMPLETED"},
		{name: "backup info", args: func() []string { return []string{"backup", "info", bid} }, want: "SHA-256:"},
		{name: "backup lock", args: func() []string { return []string{"backup", "lock", bid} }, want: "locked"},
		{name: "backup delete locked", args: func() []string { return []string{"backup", "delete", bid} }, code: 1, want: "locked"},
		{name: "backup unlock", args: func() []string { return []string{"backup", "unlock", bid} }, want: "unlocked"},
		{name: "backup download", args: func() []string { return []string{"backup", "download", bid, "-f", filepath.Join(work, "b.tar.zst")} }, want: "SHA-256 checked"},
		{name: "backup restore json", args: func() []string { return []string{"backup", "restore", bid, "--truncate", "-o", "json"} }, want: `"state": "COMPLETED"`}, // once: a second is 409 while the first runs
		{name: "backup restored (instance logs)", args: func() []string { return []string{"instance", "logs", id, "--lines", "20"} }, want: " done: ", again: true},
		{name: "backup delete", args: func() []string { return []string{"backup", "delete", bid} }, want: "Deleted", again: true},
		{name: "instance start", args: func() []string { return []string{"instance", "start", id} }, want: "ONLINE"},
		{name: "schedule create", stdin: "", args: func() []string {
			f := filepath.Join(work, "schedule.json")
			_ = os.WriteFile(f, []byte(`{"name":"hello","instanceId":"`+id+`","cron":"0 4 * * *","timezone":"Europe/Berlin","enabled":true,"tasks":[{"type":"command","payload":"scheduled hello"}]}`), 0o644)
			return []string{"schedule", "create", "-f", f, "-o", "json"}
		}, want: `"nextRun"`, after: func(out string) {
			var s struct{ ID string }
			if err := json.Unmarshal([]byte(out), &s); err != nil || s.ID == "" {
				t.Fatalf("no schedule in %q", out)
			}
			sid = s.ID
		}},
		{name: "schedule list", args: func() []string { return []string{"schedule", "list", "--instance", id} }, want: "0 4 * * *"},
		{name: "schedule run json", args: func() []string { return []string{"schedule", "run", sid, "-o", "json"} }, want: `"manual": true`},
		{name: "schedule ran (instance logs)", args: func() []string { return []string{"instance", "logs", id, "--lines", "20"} }, want: "got scheduled hello", again: true},
		{name: "schedule runs", args: func() []string { return []string{"schedule", "runs", sid} }, want: "OK", again: true},
		{name: "schedule disable", args: func() []string { return []string{"schedule", "disable", sid} }, want: "disabled"},
		{name: "schedule bad", args: func() []string {
			f := filepath.Join(work, "bad.json")
			_ = os.WriteFile(f, []byte(`{"name":"bad","instanceId":"`+id+`","cron":"99 * * * *","tasks":[{"type":"command","payload":"x"}]}`), 0o644)
			return []string{"schedule", "create", "-f", f}
		}, code: 1, want: "cron"},
		{name: "schedule delete", args: func() []string { return []string{"schedule", "delete", sid} }, want: "Deleted schedule"},
		{name: "events", args: func() []string { return []string{"events", "--instance", id} }, want: "instance.started"},
		{name: "webhook create private", args: func() []string {
			return []string{"webhook", "create", "http://127.0.0.1:9/hook", "--events", "instance.crashed"}
		}, code: 1, want: "private"},
		{name: "webhook create", args: func() []string {
			return []string{"webhook", "create", "https://discord.example/api/webhooks/1/secret-token", "--events", "instance.crashed", "--format", "discord"}
		}, want: "shown only now"},
		{name: "webhook list", args: func() []string { return []string{"webhook", "list"} }, want: "discord.example/…",
			after: func(out string) {
				if strings.Contains(out, "secret-token") {
					t.Fatalf("the list shows the URL's token: %s", out)
				}
			}},
		{name: "instance restart json", args: func() []string { return []string{"instance", "restart", id, "-o", "json"} }, want: `"state": "ONLINE"`},
		{name: "template push", args: func() []string { return []string{"template", "push", tplDir, "lobby/base"} }, want: "2 files"},
		{name: "template list", args: func() []string { return []string{"template", "list"} }, want: "lobby/base"},
		{name: "template list json", args: func() []string { return []string{"template", "list", "-o", "json"} }, want: `"group": "lobby"`},
		{name: "template pull", args: func() []string { return []string{"template", "pull", "lobby/base", filepath.Join(work, "pulled")} }, want: "2 files",
			after: func(string) {
				if b, err := os.ReadFile(filepath.Join(work, "pulled", "plugins", "a.jar")); err != nil || string(b) != "jar" {
					t.Fatalf("pulled file: %q %v", b, err)
				}
			}},
		{name: "template export", args: func() []string {
			return []string{"template", "export", "lobby/base", "-f", filepath.Join(work, "base.zip")}
		}, want: "Exported"},
		{name: "template import", args: func() []string {
			return []string{"template", "import", "lobby/copy", filepath.Join(work, "base.zip")}
		}, want: "2 files"},
		{name: "console", stdin: "config list\ninstance list\n", args: func() []string { return []string{"console"} }, want: id},
		{name: "console failing command", stdin: "instance info nope\nconfig list\n", args: func() []string { return []string{"console"} }, code: 1, want: "stopped at line 1 (instance info nope); the lines after it were not run"},
		{name: "completion bash", args: func() []string { return []string{"completion", "bash"} }, want: `"instance logs") words=$(universe __complete instances 2>/dev/null)`},
		{name: "complete instances", args: func() []string { return []string{"__complete", "instances"} }, want: id},
		{name: "complete configurations", args: func() []string { return []string{"__complete", "configurations"} }, want: "echo\n"},
		{name: "complete templates", args: func() []string { return []string{"__complete", "templates"} }, want: "lobby/base\n"},
		{name: "complete keys", args: func() []string { return []string{"__complete", "keys"} }, want: "viewer\n"},
		{name: "complete nodes", args: func() []string { return []string{"__complete", "nodes"} }, want: "node-1\n"},
		{name: "completion knows node, audit and stats", args: func() []string { return []string{"completion", "bash"} }, want: `"instance stats") words=$(universe __complete instances`},
		{name: "completion fish", args: func() []string { return []string{"completion", "fish"} }, want: "__fish_seen_subcommand_from instance"},
		{name: "completion zsh", args: func() []string { return []string{"completion", "zsh"} }, want: "bashcompinit"},

		{name: "404", args: func() []string { return []string{"instance", "info", "nope00"} }, code: 1, want: `no instance "nope00"`},
		{name: "404 json", args: func() []string { return []string{"config", "show", "missing", "-o", "json"} }, code: 1, want: "missing"},
		{name: "401 bad token", token: "bad", args: func() []string { return []string{"status"} }, code: 3, want: "unauthorized"},
		{name: "401 no token", token: "none", args: func() []string { return []string{"instance", "list"} }, code: 3, want: "UNIVERSE_TOKEN"},
		{name: "PUBLIC may not list", token: "public", args: func() []string { return []string{"instance", "list"} }, code: 3, want: "lacks the ALL scope"},
		{name: "config apply failing", stdin: `{"name":"bad","command":"exit 3","availablePorts":{"min":21711,"max":21715}}`, args: func() []string { return []string{"config", "apply", "-f", "-"} }, want: "Applied configuration bad"},
		// Its process exits at once: the answer may find it ONLINE (exit 0)
		// or already OFFLINE (exit 1, as start says), so either code.
		{name: "instance create failing", args: func() []string { return []string{"instance", "create", "bad", "-o", "json"} }, want: `"id"`, code: anyCode,
			after: func(out string) {
				var in struct{ ID string }
				_ = json.Unmarshal([]byte(out), &in)
				badID = in.ID
			}},
		{name: "start that fails", args: func() []string { return []string{"instance", "start", badID} }, code: 1, want: "failed: it is OFFLINE (exited with code 3)", again: true},
		{name: "connection flags before the command", token: "none", args: func() []string {
			return []string{"--url", m.url, "--token", m.admin, "instance", "list", "--state", "online"}
		}, want: id},
		{name: "the NODE column", args: func() []string { return []string{"instance", "list"} }, want: "NODE"},
		{name: "version json", args: func() []string { return []string{"version", "-o", "json"} }, want: `{"version":"`},
		{name: "instance kill", args: func() []string { return []string{"instance", "kill", id} }, want: "STOPPED"},
		{name: "instance start after kill", args: func() []string { return []string{"instance", "start", id} }, want: "ONLINE"},
		{name: "instance create two", args: func() []string { return []string{"instance", "create", "echo", "2"} }, want: "echo"},
		{name: "audit", args: func() []string { return []string{"audit", "--limit", "100"} }, want: "POST /api/instances configuration=echo"},
		{name: "template delete", args: func() []string { return []string{"template", "delete", "lobby/copy"} }, want: "Deleted template lobby/copy"},
		{name: "usage: missing id", args: func() []string { return []string{"instance", "info"} }, code: 2, want: "Usage: universe instance info <id>"},
		{name: "usage: unknown sub", args: func() []string { return []string{"instance", "frob"} }, code: 2, want: "unknown subcommand"},
		{name: "usage: bad output", args: func() []string { return []string{"status", "-o", "yaml"} }, code: 2, want: "table or json"},
		{name: "instance delete", args: func() []string { return []string{"instance", "delete", id} }, want: "Deleted " + id},
	}
	for _, s := range steps {
		token := m.admin
		switch s.token {
		case "public":
			token = m.public
		case "bad":
			token = "unv_" + strings.Repeat("x", 43)
		case "none":
			token = ""
		}
		code, out, errOut := m.run(token, s.stdin, s.args()...)
		for deadline := time.Now().Add(10 * time.Second); s.again && !strings.Contains(out+errOut, s.want) && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			code, out, errOut = m.run(token, s.stdin, s.args()...)
		}
		if (s.code != anyCode && code != s.code) || !strings.Contains(out+errOut, s.want) {
			t.Fatalf("%s: code %d (want %d), stdout %q, stderr %q (want %q)", s.name, code, s.code, out, errOut, s.want)
		}
		if strings.Contains(s.name, "json") && code == 0 && !json.Valid([]byte(strings.SplitN(out, "\n{", 2)[0])) && !strings.Contains(s.name, "logs") {
			t.Fatalf("%s: not JSON: %q", s.name, out)
		}
		if s.after != nil {
			s.after(out)
		}
		// Both output modes: a command that succeeded prints JSON with -o
		// json (a document, or one per line for logs), or nothing.
		if s.code == 0 && !strings.Contains(s.name, "json") && !strings.HasPrefix(s.name, "co") && !strings.HasPrefix(s.name, "key create") &&
			!strings.HasPrefix(s.name, "template import") && !strings.HasPrefix(s.name, "instance create") && !strings.HasSuffix(s.name, "delete") && !strings.HasSuffix(s.name, "revoke") {
			code, out, errOut := m.run(token, s.stdin, append(s.args(), "-o", "json")...)
			if code != 0 {
				t.Fatalf("%s -o json: code %d %s", s.name, code, errOut)
			}
			docs := []string{out}
			if strings.Contains(s.name, "logs") {
				docs = strings.Split(strings.TrimSpace(out), "\n")
			}
			for _, d := range docs {
				if strings.TrimSpace(d) != "" && !json.Valid([]byte(d)) {
					t.Fatalf("%s -o json: not JSON: %q", s.name, d)
				}
			}
		}
	}

	// 429: the PUBLIC key's 6 calls a minute run out (some were used above).
	code := 0
	var errOut string
	for i := 0; i < 10 && code != exitRateLimited; i++ {
		code, _, errOut = m.run(m.public, "", "auth", "status")
	}
	if code != exitRateLimited || !strings.Contains(errOut, "retry in") {
		t.Fatalf("rate limited: code %d, %q", code, errOut)
	}

	// --token works, with a warning; a config file must be 0600.
	var out, errb strings.Builder
	code = run(context.Background(), []string{"auth", "verify", "--token", m.admin}, m.env(""), strings.NewReader(""), &out, &errb)
	if code != 0 || !strings.Contains(errb.String(), "process listings") || strings.Contains(out.String()+errb.String(), m.admin) {
		t.Fatalf("--token: %d %q %q", code, out.String(), errb.String())
	}
	conf := filepath.Join(m.home, ".config", "universe", "config")
	_ = os.MkdirAll(filepath.Dir(conf), 0o700)
	if err := os.WriteFile(conf, []byte("# test\nurl = "+m.url+"\ntoken = "+m.admin+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := m.run("", "", "status"); code != 1 || !strings.Contains(errOut, "must be 0600") {
		t.Fatalf("0644 config file: %d %q", code, errOut)
	}
	_ = os.Chmod(conf, 0o600)
	if code, out, errOut := m.run("", "", "auth", "verify"); code != 0 || !strings.Contains(out, "valid: admin") {
		t.Fatalf("config file token: %d %q %q", code, out, errOut)
	}
}

// cutProxy forwards TCP to a master and can drop every connection at once.
type cutProxy struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, to string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, to: to}
	t.Cleanup(func() { _ = ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", to)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// logs -f resumes with since after a dropped connection and after a
// master restart: every tick once, in order; it ends when the instance is
// deleted.
func TestCLILogsFollowAcrossDropAndRestart(t *testing.T) {
	m, cm := newCLIMaster(t, "--keep-instances")
	proxy := newCutProxy(t, strings.TrimPrefix(m.url, "http://"))
	code, _, errOut := m.run(m.admin, `{"command":"i=0; while :; do i=$((i+1)); echo \"tick $i\"; sleep 0.01; done","availablePorts":{"min":21720,"max":21730}}`,
		"config", "apply", "-f", "-", "ticker")
	if code != 0 {
		t.Fatalf("config apply: %s", errOut)
	}
	code, out, errOut := m.run(m.admin, "", "instance", "create", "ticker", "-o", "json")
	if code != 0 {
		t.Fatalf("create: %s", errOut)
	}
	var in struct{ ID string }
	_ = json.Unmarshal([]byte(out), &in)

	stdout, stderr := &buffer{}, &buffer{}
	done := make(chan int, 1)
	proxied := m.env(m.admin, "UNIVERSE_URL", "http://"+proxy.ln.Addr().String())
	go func() {
		done <- run(context.Background(), []string{"instance", "logs", in.ID, "-f", "--lines", "1000"}, proxied, strings.NewReader(""), stdout, stderr)
	}()
	ticks := func() int { return strings.Count(stdout.String(), "tick ") }
	waitFor(t, "ticks", 10*time.Second, func() bool { return ticks() > 20 })

	proxy.cut() // a dropped connection
	n := ticks()
	waitFor(t, "ticks after the drop", 10*time.Second, func() bool { return ticks() > n+20 })

	cm.signal(syscall.SIGKILL) // the master dies; the instance writes on
	time.Sleep(300 * time.Millisecond)
	startChildMaster(t, m.dir, portOf(t, m.url), "--keep-instances")
	n = ticks()
	waitFor(t, "ticks after the restart", 20*time.Second, func() bool { return ticks() > n+20 })

	if code, _, errOut := m.run(m.admin, "", "instance", "delete", in.ID); code != 0 {
		t.Fatalf("delete: %s", errOut)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("logs -f ended with %d: %s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("logs -f did not end when the instance was deleted")
	}
	if !strings.Contains(stderr.String(), "reconnecting") || !strings.Contains(stderr.String(), "universe: reconnected; resuming after line ") || !strings.Contains(stderr.String(), "was deleted") {
		t.Fatalf("stderr: %s", stderr.String())
	}
	last := 0
	for _, l := range strings.Split(stdout.String(), "\n") {
		s, ok := strings.CutPrefix(l, "tick ")
		if !ok {
			continue
		}
		k, _ := strconv.Atoi(s)
		if last != 0 && k != last+1 {
			t.Fatalf("tick %d follows tick %d: a line was lost or printed twice", k, last)
		}
		last = k
	}
	t.Logf("%d ticks, contiguous, across a dropped connection and a master restart", last)
}

func portOf(t *testing.T, url string) int {
	_, p, err := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}
