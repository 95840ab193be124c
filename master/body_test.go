package master_test

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/master"
)

// rawRequest opens a connection and sends the request's head; the body is
// left to the caller.
func rawRequest(t *testing.T, e *env, method, path, token string, contentLength int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", method, path, contentLength)
	if token != "" {
		head += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readAnswer reads one response from conn within d, and then whether the
// server closed the connection (EOF within d).
func readAnswer(t *testing.T, conn net.Conn, d time.Duration) (status int, closed bool) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", d, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = br.ReadByte()
	return resp.StatusCode, connClosed(err)
}

// connClosed says whether a read error means the peer closed the
// connection: EOF, or a reset when it closed with our bytes unread.
func connClosed(err error) bool {
	return err == io.EOF || errors.Is(err, syscall.ECONNRESET)
}

// trickle writes one byte every gap until stop is closed or a write fails.
func trickle(conn net.Conn, gap time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(gap)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if _, err := conn.Write([]byte(" ")); err != nil {
				return
			}
		}
	}
}

// A request that fails authentication is answered at once, without the
// master waiting for its body, and its connection is closed: a slow body
// cannot hold it open.
func TestUnauthenticatedSlowBodyAnsweredAndClosed(t *testing.T) {
	e := newEnv(t, nil)
	for _, token := range []string{"", "unv_wrong"} {
		conn := rawRequest(t, e, "POST", "/api/keys", token, 1000)
		stop := make(chan struct{})
		go trickle(conn, 100*time.Millisecond, stop)
		status, closed := readAnswer(t, conn, 3*time.Second)
		close(stop)
		if status != http.StatusUnauthorized || !closed {
			t.Errorf("token %q: status %d closed %v, want 401 and a closed connection", token, status, closed)
		}
	}
}

// A body that does not arrive within the body timeout gets 408 and the
// connection closes, for JSON routes and uploads alike; an upload that keeps
// the minimum rate may take longer than the timeout.
func TestSlowBodyTimesOut(t *testing.T) {
	e := newEnv(t, func(c *master.Config) {
		c.BodyTimeout = 700 * time.Millisecond
		c.UploadMinRate = 1024
	})
	if r := e.do("POST", "/api/templates/g/t", e.admin, ""); r.StatusCode != http.StatusCreated {
		t.Fatalf("create template: %d", r.StatusCode)
	}
	for _, path := range []string{"/api/keys", "/api/templates/g/t/files/a.txt"} {
		conn := rawRequest(t, e, "PUT", path, e.admin, 1000)
		if path == "/api/keys" {
			conn.Close()
			conn = rawRequest(t, e, "POST", path, e.admin, 1000)
		}
		stop := make(chan struct{})
		go trickle(conn, 50*time.Millisecond, stop)
		status, closed := readAnswer(t, conn, 5*time.Second)
		close(stop)
		if status != http.StatusRequestTimeout || !closed {
			t.Errorf("%s: status %d closed %v, want 408 and a closed connection", path, status, closed)
		}
	}

	// 6 KiB at about 4 KiB/s: 1.5 s, past the timeout, but above the rate.
	conn := rawRequest(t, e, "PUT", "/api/templates/g/t/files/b.txt", e.admin, 6<<10)
	go func() {
		chunk := []byte(strings.Repeat("x", 256))
		for i := 0; i < 24; i++ {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
			time.Sleep(60 * time.Millisecond)
		}
	}()
	if status, _ := readAnswer(t, conn, 10*time.Second); status != http.StatusNoContent {
		t.Errorf("upload at the minimum rate: status %d, want 204", status)
	}
}

// Many clients trickling bodies hold nothing once the timeout has passed.
func TestManySlowBodiesAllClosed(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.BodyTimeout = 500 * time.Millisecond })
	const n = 100
	var wg sync.WaitGroup
	stop := make(chan struct{})
	defer close(stop)
	open := make(chan string, n)
	for i := 0; i < n; i++ {
		token := e.admin
		if i%2 == 1 {
			token = ""
		}
		conn := rawRequest(t, e, "POST", "/api/keys", token, 100)
		wg.Add(1)
		go func() {
			defer wg.Done()
			go trickle(conn, 100*time.Millisecond, stop)
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				open <- err.Error()
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			if _, err := br.ReadByte(); !connClosed(err) {
				open <- fmt.Sprintf("status %d, then %v instead of EOF", resp.StatusCode, err)
			}
		}()
	}
	wg.Wait()
	close(open)
	for msg := range open {
		t.Error(msg)
	}
}

func TestProtocolEdges(t *testing.T) {
	e := newEnv(t, nil)
	// HEAD /api/ping is open like GET.
	if r := e.do("HEAD", "/api/ping", "", ""); r.StatusCode != http.StatusOK {
		t.Errorf("HEAD /api/ping: %d", r.StatusCode)
	}
	// A trailing slash is no redirect around the middleware.
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {e.admin, 404}} {
		r := e.do("GET", "/api/keys/", tc.token, "")
		if r.StatusCode != tc.want || r.Header.Get("X-Request-Id") == "" {
			t.Errorf("GET /api/keys/ token %q: %d (request id %q), want %d", tc.token, r.StatusCode, r.Header.Get("X-Request-Id"), tc.want)
		}
	}
	// Two Authorization headers are refused, not resolved to one.
	req, _ := http.NewRequest("GET", e.url+"/api/keys", nil)
	req.Header.Add("Authorization", "Bearer "+e.admin)
	req.Header.Add("Authorization", "Bearer "+e.public)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("two Authorization headers: %d, want 400", resp.StatusCode)
	}
	resp.Body.Close()
	// A WebSocket route without an upgrade answers in the one error shape.
	r := e.do("GET", "/api/console", e.admin, "")
	if r.StatusCode != http.StatusUpgradeRequired || r.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Errorf("console without upgrade: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	} else if msg := errorBody(t, r); !strings.Contains(msg, "WebSocket") {
		t.Errorf("console without upgrade: %q", msg)
	}
}

// A slow upload to one template holds no other template write up: the body
// is read before the store is locked.
func TestSlowUploadBlocksNoOtherWrite(t *testing.T) {
	e := newEnv(t, nil)
	for _, tpl := range []string{"a", "b"} {
		if r := e.do("POST", "/api/templates/g/"+tpl, e.admin, ""); r.StatusCode != http.StatusCreated {
			t.Fatalf("create template: %d", r.StatusCode)
		}
	}
	slow := rawRequest(t, e, "PUT", "/api/templates/g/a/files/big.bin", e.admin, 100)
	if _, err := slow.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	// The slow upload is in its handler, reading; this write must finish
	// while it is still unfinished.
	time.Sleep(100 * time.Millisecond)
	req, _ := http.NewRequest("PUT", e.url+"/api/templates/g/b/files/x.txt", strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer "+e.admin)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("write beside a slow upload: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("write beside a slow upload: %d", resp.StatusCode)
	}
	if _, err := slow.Write([]byte(strings.Repeat("y", 96))); err != nil {
		t.Fatal(err)
	}
	if status, _ := readAnswer(t, slow, 10*time.Second); status != http.StatusNoContent {
		t.Fatalf("slow upload: %d", status)
	}
	r := e.do("GET", "/api/templates/g/a/files/big.bin", e.admin, "")
	if b, _ := io.ReadAll(r.Body); string(b) != "half"+strings.Repeat("y", 96) {
		t.Errorf("uploaded file holds %q", b)
	}
	if r := e.do("GET", "/api/templates/g/a/files", e.admin, ""); r.StatusCode != 200 {
		t.Fatalf("files: %d", r.StatusCode)
	} else if files := decode[[]map[string]any](t, r); len(files) != 1 {
		t.Errorf("template a lists %v, want only big.bin", files)
	}
}

// A client that breaks its upload off is its own fault: a 400 in the access
// log, no ERROR line, and nothing half-written left behind.
func TestAbortedUploadIsNoServerError(t *testing.T) {
	e := newEnv(t, nil)
	if r := e.do("POST", "/api/templates/g/a", e.admin, ""); r.StatusCode != http.StatusCreated {
		t.Fatalf("create template: %d", r.StatusCode)
	}
	for _, path := range []string{"/api/templates/g/a/files/f.bin", "/api/templates/g/a/import", "/api/keys"} {
		conn := rawRequest(t, e, map[bool]string{true: "POST", false: "PUT"}[path != "/api/templates/g/a/files/f.bin"], path, e.admin, 1000)
		_, _ = conn.Write([]byte("{\"partial"))
		conn.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(e.logs.String(), "status=400") < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	logs := e.logs.String()
	if n := strings.Count(logs, "status=400"); n != 3 || strings.Contains(logs, "level=ERROR") {
		t.Errorf("aborted uploads logged %d 400s, want 3, and no ERROR:\n%s", n, logs)
	}
	r := e.do("GET", "/api/templates/g/a/files", e.admin, "")
	if files := decode[[]map[string]any](t, r); len(files) != 0 {
		t.Errorf("template lists %v after aborted uploads", files)
	}
}

// A master started without any ALL key says how to make the first one.
func TestFirstKeyHint(t *testing.T) {
	e := newEnv(t, nil) // its keys are made after the start
	if !strings.Contains(e.logs.String(), `no ALL key exists yet: make the first with \"key create admin ALL\"`) {
		t.Fatalf("no hint in the log:\n%s", e.logs.String())
	}
}

// Profiles of the master, for ALL keys only; the command line is not
// served.
func TestPprofForAdminsOnly(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/api/debug/pprof/heap", e.admin, 200},
		{"/api/debug/pprof/", e.admin, 200},
		{"/api/debug/pprof/goroutine?debug=1", e.admin, 200},
		{"/api/debug/pprof/cmdline", e.admin, 404},
		{"/api/debug/pprof/heap", e.public, 401},
		{"/api/debug/pprof/heap", "", 401},
	} {
		r := e.do("GET", tc.path, tc.token, "")
		if r.StatusCode != tc.want {
			t.Errorf("%s (token %v): %d, want %d", tc.path, tc.token != "", r.StatusCode, tc.want)
		}
	}
	// A dashboard session's cookie alone gets none: a same-site page could
	// make the browser fetch them.
	ck := e.signIn(e.admin)
	for _, p := range []string{"/api/debug/pprof/heap", "/api/instances/x/debug/pprof/heap"} {
		if r := e.withCookie("GET", p, ck, "", "Sec-Fetch-Site: same-origin"); r.StatusCode != http.StatusForbidden {
			t.Errorf("%s with the session cookie only: %d, want 403", p, r.StatusCode)
		}
	}
	// One CPU profile at a time: of two that overlap, one is a conflict.
	codes := make(chan int, 2)
	for range 2 {
		go func() {
			r := e.do("GET", "/api/debug/pprof/profile?seconds=3", e.admin, "")
			r.Body.Close()
			codes <- r.StatusCode
		}()
		time.Sleep(300 * time.Millisecond)
	}
	if a, b := <-codes, <-codes; a+b != http.StatusOK+http.StatusConflict {
		t.Fatalf("two overlapping CPU profiles: %d and %d, want 200 and 409", a, b)
	}
	if r := e.do("GET", "/api/debug/pprof/profile?seconds=x", e.admin, ""); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("a bad seconds: %d", r.StatusCode)
	}
}

// Profiles of an instance's supervisor come from that supervisor, not
// from the master: its goroutines are the supervisor's.
func TestInstancePprof(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("prof", map[string]any{"command": "echo hi; exec sleep 60", "availablePorts": map[string]int{"min": 21440, "max": 21450}})
	in := e.create("prof")
	e.waitState(in.ID, "ONLINE")
	base := "/api/instances/" + in.ID + "/debug/pprof/"
	profile := func(path string) string {
		t.Helper()
		r := e.do("GET", path, e.admin, "")
		body := readAll(r)
		if r.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, r.StatusCode, body)
		}
		zr, err := gzip.NewReader(strings.NewReader(body))
		if err != nil {
			t.Fatalf("GET %s: not a gzipped profile: %v", path, err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return string(b) // protobuf: its string table holds the names
	}
	g := profile(base + "goroutine")
	if !strings.Contains(g, "instance/supervisor.(*server).serve") || strings.Contains(g, "master.(*Master)") {
		t.Errorf("the goroutine profile is not the supervisor's alone")
	}
	if cpu := profile(base + "profile?seconds=1"); !strings.Contains(cpu, "nanoseconds") {
		t.Errorf("the CPU profile has no CPU time in it")
	}
	profile(base + "heap")
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{base + "cmdline", e.admin, 404},
		{base + "profile?seconds=0", e.admin, 400},
		{base + "profile?seconds=61", e.admin, 400},
		{base + "profile?seconds=x", e.admin, 400},
		{"/api/instances/nope/debug/pprof/heap", e.admin, 404},
		{base + "heap", e.public, 401},
		{base + "heap", "", 401},
	} {
		r := e.do("GET", tc.path, tc.token, "")
		if body := readAll(r); r.StatusCode != tc.want {
			t.Errorf("%s (token %v): %d, want %d (%s)", tc.path, tc.token != "", r.StatusCode, tc.want, body)
		}
	}
	if r := e.do("PATCH", "/api/instances/"+in.ID+"/lifecycle?target=stop", e.admin, ""); r.StatusCode/100 != 2 {
		t.Fatalf("stop: %d %s", r.StatusCode, readAll(r))
	}
	e.waitState(in.ID, "STOPPED")
	if r := e.do("GET", base+"heap", e.admin, ""); r.StatusCode != 409 {
		t.Errorf("a stopped instance's profile: %d, want 409 (%s)", r.StatusCode, readAll(r))
	}
}
