package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/runtime/docker"
	"github.com/universe-orchestrator/universe/instance/supervisor"
	"github.com/universe-orchestrator/universe/master/auth"
	"github.com/universe-orchestrator/universe/storage"
)

// buffer is an io.Writer safe to read while the master writes to it.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func noEnv(string) string { return "" }

var tokenRE = regexp.MustCompile(`unv_[A-Za-z0-9_-]{43}`)

// cli runs the binary's run() for a short command.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, noEnv, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func request(t *testing.T, method, url, token, body string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestEndToEnd boots the master the way main does (run with flags), on
// :0 with a temp data dir, and drives it over HTTP, WebSocket and stdin.
func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()

	// Bootstrap the first admin key offline, as a headless install would.
	code, out, errOut := cli(t, "key", "create", "admin", "ALL", "--data", dir)
	if code != 0 {
		t.Fatalf("key create: %d %s", code, errOut)
	}
	admin := tokenRE.FindString(out)
	if admin == "" {
		t.Fatalf("no token in %q", out)
	}

	stdinR, stdinW := io.Pipe()
	stdout, stderr := &buffer{}, &buffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"master", "--addr", "127.0.0.1:0", "--data", dir}, noEnv, stdinR, stdout, stderr)
	}()
	addrRE := regexp.MustCompile(`msg="master listening" addr=(\S+)`)
	waitFor(t, "the master to listen", 10*time.Second, func() bool { return addrRE.MatchString(stderr.String()) })
	base := "http://" + addrRE.FindStringSubmatch(stderr.String())[1]

	// Open endpoints and an authenticated one.
	if resp, body := request(t, "GET", base+"/api/ping", "", ""); resp.StatusCode != 200 || string(body) != `{"status":"ok"}` {
		t.Fatalf("ping: %d %s", resp.StatusCode, body)
	}
	if resp, _ := request(t, "GET", base+"/api/node", "", ""); resp.StatusCode != 401 {
		t.Fatalf("node without token: %d", resp.StatusCode)
	}
	if resp, _ := request(t, "GET", base+"/api/node", admin, ""); resp.StatusCode != 200 {
		t.Fatalf("node: %d", resp.StatusCode)
	}

	// Create a PUBLIC key over REST; its token is shown once.
	resp, body := request(t, "POST", base+"/api/keys", admin, `{"label":"dashboard","scope":"PUBLIC","expiresIn":"30d"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create key: %d %s", resp.StatusCode, body)
	}
	var created api.KeyCreated
	_ = json.Unmarshal(body, &created)
	if created.Token == "" || created.ExpiresAt == 0 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("created: %s", body)
	}
	if resp, _ := request(t, "GET", base+"/api/keys", created.Token, ""); resp.StatusCode != 401 {
		t.Fatalf("public on keys: %d", resp.StatusCode)
	}
	_, body = request(t, "GET", base+"/api/keys", admin, "")
	if strings.Contains(string(body), created.Token) || strings.Contains(string(body), "hash") {
		t.Fatalf("key list leaks: %s", body)
	}

	// The Commands endpoint waits for the command and returns its output.
	resp, body = request(t, "POST", base+"/api/commands/execute", admin, `{"command":"key list"}`)
	var cr api.CommandResponse
	_ = json.Unmarshal(body, &cr)
	if resp.StatusCode != 200 || len(cr.Output) != 3 || !strings.Contains(cr.Output[2], "dashboard") {
		t.Fatalf("commands: %d %s", resp.StatusCode, body)
	}

	// The console WebSocket.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/api/console",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + admin}}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	_ = conn.Write(ctx, websocket.MessageText, []byte("key revoke dashboard"))
	_, frame, err := conn.Read(ctx)
	if err != nil || !strings.Contains(string(frame), "Revoked key") {
		t.Fatalf("ws frame %q %v", frame, err)
	}
	_, frame, _ = conn.Read(ctx)
	if !strings.HasPrefix(string(frame), api.ConsoleEOT) {
		t.Fatalf("no end frame: %q", frame)
	}
	if resp, _ := request(t, "GET", base+"/api/auth", created.Token, ""); resp.StatusCode != 401 {
		t.Fatalf("revoked key works: %d", resp.StatusCode)
	}

	// The terminal console reads stdin; EOF leaves the master running.
	fmt.Fprintln(stdinW, "key create from-terminal PUBLIC")
	waitFor(t, "console output", 5*time.Second, func() bool { return strings.Contains(stdout.String(), `Created key "from-terminal"`) })
	_ = stdinW.Close()
	time.Sleep(50 * time.Millisecond)
	if resp, _ := request(t, "GET", base+"/api/ping", "", ""); resp.StatusCode != 200 {
		t.Fatal("master stopped at console EOF")
	}
	if strings.Contains(stderr.String(), admin) || strings.Contains(stderr.String(), created.Token) {
		t.Fatal("a token reached the master's log")
	}

	// A client that keeps reading sees the close frame.
	wsClosed := make(chan error, 1)
	go func() {
		_, _, err := conn.Read(context.Background())
		wsClosed <- err
	}()

	// stop through the Commands endpoint: answered, then a graceful stop.
	if resp, body := request(t, "POST", base+"/api/commands/execute", admin, `{"command":"stop"}`); resp.StatusCode != 200 {
		t.Fatalf("stop: %d %s", resp.StatusCode, body)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("master exit code %d; log:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("master did not stop")
	}
	// The WebSocket got a normal close.
	if err := <-wsClosed; websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("ws after stop: %v", err)
	}

	// The db is closed and holds everything, last-used times included.
	code, out, errOut = cli(t, "key", "list", "--data", dir)
	if code != 0 || !strings.Contains(out, "from-terminal") || strings.Contains(out, "dashboard") {
		t.Fatalf("key list after stop: %d %q %q", code, out, errOut)
	}
	if strings.Contains(strings.Split(out, "\n")[1], "never  never") {
		t.Fatalf("admin's last use was not persisted: %q", out)
	}
}

func TestOfflineCLIAgainstLockedDB(t *testing.T) {
	dir := t.TempDir()
	db, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	code, _, errOut := cli(t, "key", "list", "--data", dir)
	if code != 1 || !strings.Contains(errOut, "in use by a running master") {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v to say the db is locked", d)
	}
}

func TestCLIUsage(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"version", []string{"--version"}, 0, "universe "},
		{"version word", []string{"version"}, 0, "universe "},
		{"no args", nil, 2, "Usage"},
		{"unknown", []string{"frobnicate"}, 2, "unknown command"},
		{"bad scope", []string{"key", "create", "x", "ROOT", "--data", dir}, 2, "ALL or PUBLIC"},
		{"missing scope", []string{"key", "create", "x", "--data", dir}, 2, "usage: key create"},
		{"bad expiry", []string{"key", "create", "x", "ALL", "--expires", "soon", "--data", dir}, 2, "invalid duration"},
		{"revoke unknown", []string{"key", "revoke", "nobody", "--data", dir}, 1, "no key"},
		{"master bad flag", []string{"master", "--public-rate-limit", "lots"}, 2, "public-rate-limit"},
		{"master bad cidr", []string{"master", "--allow-cidr", "10.0.0.0/99"}, 2, "allow-cidr"},
		{"master bad proxy", []string{"master", "--trusted-proxies", "proxy.local"}, 2, `--trusted-proxies: "proxy.local" is not an address or CIDR`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(t, tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.out) {
				t.Fatalf("code %d, output %q %q", code, out, errOut)
			}
		})
	}
}

func TestMasterBusyPortFailsAtStart(t *testing.T) {
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, errOut := cli(t, "master", "--addr", ln.Addr().String(), "--data", t.TempDir(), "--no-console")
	if code != 1 || !strings.Contains(errOut, "listen") {
		t.Fatalf("code %d, %q", code, errOut)
	}
}

// TestCrashSafety SIGKILLs a process while it creates keys: the db must
// open afterwards and hold every key whose creation was acknowledged.
func TestCrashSafety(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "UNIVERSE_CRASH_HELPER_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if label, ok := strings.CutPrefix(sc.Text(), "created "); ok {
			acked = append(acked, label)
		}
		if len(acked) == 40 {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// Acknowledgements still in the pipe count too.
	for sc.Scan() {
		if label, ok := strings.CutPrefix(sc.Text(), "created "); ok {
			acked = append(acked, label)
		}
	}
	if len(acked) < 40 {
		t.Fatalf("helper acknowledged only %d keys", len(acked))
	}
	db, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatalf("db after SIGKILL: %v", err)
	}
	defer db.Close()
	keys, err := auth.OpenKeyring(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, label := range acked {
		if _, err := keys.Get(label); err != nil {
			t.Fatalf("acknowledged key %s lost: %v", label, err)
		}
	}
	t.Logf("%d acknowledged keys all present; %d keys in db", len(acked), len(keys.List()))
}

// TestMain doubles as TestCrashSafety's child process: with
// UNIVERSE_CRASH_HELPER_DIR set it creates keys until killed, printing each
// one after Create has returned (acknowledged).
func TestMain(m *testing.M) {
	supervisor.RunIfChild(docker.New())
	if filepath.Base(os.Args[0]) == "universe" { // universeOnPath: the CLI, as an operator runs it
		ctx, stop := signalContext()
		code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	if args := os.Getenv(masterHelperEnv); args != "" {
		os.Exit(masterHelper(args))
	}
	if dir := os.Getenv("UNIVERSE_CRASH_HELPER_DIR"); dir != "" {
		os.Exit(crashHelper(dir))
	}
	os.Exit(inTempDir(m))
}

// inTempDir runs the tests in a fresh working directory, so the relative
// defaults (./templates, ./configuration) never land in the source tree.
func inTempDir(m *testing.M) int {
	dir, err := os.MkdirTemp("", "universe-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chdir(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func crashHelper(dir string) int {
	db, err := storage.Open(dir, storage.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	keys, err := auth.OpenKeyring(db, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := 0; ; i++ {
		label := fmt.Sprintf("key-%d", i)
		if _, _, err := keys.Create(label, universe.ScopePublic, 0); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("created " + label)
	}
}
