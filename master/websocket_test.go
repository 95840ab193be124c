package master_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/master"
)

// readUntilEnd reads console frames up to and including the end frame.
func readUntilEnd(t *testing.T, conn *websocket.Conn) (lines []string, end api.ConsoleEnd) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if typ != websocket.MessageText {
			t.Fatalf("frame type %v", typ)
		}
		s := string(data)
		if rest, ok := strings.CutPrefix(s, api.ConsoleEOT); ok {
			if err := json.Unmarshal([]byte(rest), &end); err != nil {
				t.Fatal(err)
			}
			return lines, end
		}
		lines = append(lines, s)
	}
}

func TestConsoleWebSocket(t *testing.T) {
	e := newEnv(t, nil)
	conn, _, err := e.dialWS("/api/console", e.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	ctx := context.Background()

	send := func(line string) {
		if err := conn.Write(ctx, websocket.MessageText, []byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	send("key create from-ws PUBLIC")
	lines, end := readUntilEnd(t, conn)
	if !end.OK || end.Command != "key create from-ws PUBLIC" || len(lines) != 2 || !strings.Contains(lines[1], "unv_") {
		t.Fatalf("create: %q %+v", lines, end)
	}
	send("key list")
	lines, end = readUntilEnd(t, conn)
	if !end.OK || !strings.Contains(strings.Join(lines, "\n"), "from-ws") {
		t.Fatalf("list: %q %+v", lines, end)
	}
	for _, l := range lines {
		if strings.Contains(l, "unv_") {
			t.Fatal("key list shows a token")
		}
	}
	send("key frobnicate")
	_, end = readUntilEnd(t, conn)
	if end.OK || !strings.Contains(end.Error, "unknown subcommand") {
		t.Fatalf("bad command: %+v", end)
	}

	// The audit log has the commands, with the token masked.
	entries := decode[[]universe.AuditEntry](t, e.do("GET", "/api/audit", e.admin, ""))
	if len(entries) != 3 || entries[2].Source != "websocket" || entries[2].Command != "key create from-ws PUBLIC" {
		t.Fatalf("audit: %+v", entries)
	}
	for _, a := range entries {
		for _, l := range a.Output {
			if strings.Contains(l, "unv_") && !strings.Contains(l, "unv_****") {
				t.Fatalf("unmasked token in audit: %q", l)
			}
		}
	}
}

func TestConsoleWebSocketJSON(t *testing.T) {
	e := newEnv(t, nil)
	conn, _, err := e.dialWS("/api/console?format=json", e.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, []byte("help")); err != nil {
		t.Fatal(err)
	}
	var frames []api.ConsoleFrame
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var f api.ConsoleFrame
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatalf("frame %q: %v", data, err)
		}
		frames = append(frames, f)
		if f.Type == "end" {
			break
		}
	}
	if len(frames) < 3 || frames[0].Type != "output" || frames[0].Line != "Commands:" || frames[len(frames)-1].OK == nil || !*frames[len(frames)-1].OK {
		t.Fatalf("frames: %+v", frames)
	}
}

func TestWebSocketRefusedBeforeUpgrade(t *testing.T) {
	e := newEnv(t, nil)
	for name, token := range map[string]string{"no token": "", "bad token": "unv_" + strings.Repeat("x", 43), "public key": e.public} {
		t.Run(name, func(t *testing.T) {
			_, resp, err := e.dialWS("/api/console", token)
			if err == nil {
				t.Fatal("upgraded")
			}
			if resp == nil || resp.StatusCode != 401 {
				t.Fatalf("response %v", resp)
			}
		})
	}
}

// closeStatus waits for the server to close conn and returns how.
func closeStatus(t *testing.T, conn *websocket.Conn, within time.Duration) (websocket.StatusCode, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		_, _, err := conn.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if ctx.Err() != nil {
			t.Fatalf("not closed within %v", within)
		}
		if !asCloseError(err, &ce) {
			t.Fatalf("read ended without a close frame: %v", err)
		}
		return ce.Code, ce.Reason
	}
}

func TestRevocationClosesLiveWebSocket(t *testing.T) {
	e := newEnv(t, nil)
	_, token, _ := e.m.Keyring().Create("ops", universe.ScopeAll, 0)
	conn, _, err := e.dialWS("/api/console", token)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	// Revoke over REST with another key.
	if resp := e.do("DELETE", "/api/keys/ops", e.admin, ""); resp.StatusCode != 204 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	revokedAt := time.Now()
	code, reason := closeStatus(t, conn, time.Second)
	if code != websocket.StatusPolicyViolation || reason != "token revoked" {
		t.Fatalf("closed with %v %q", code, reason)
	}
	t.Logf("closed %v after revocation", time.Since(revokedAt))
	if resp := e.do("GET", "/api/node", token, ""); resp.StatusCode != 401 {
		t.Fatalf("revoked token still works: %d", resp.StatusCode)
	}
}

func TestExpiryClosesLiveWebSocket(t *testing.T) {
	e := newEnv(t, nil)
	_, token, _ := e.m.Keyring().Create("brief", universe.ScopeAll, 1500*time.Millisecond)
	conn, _, err := e.dialWS("/api/console", token)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	code, reason := closeStatus(t, conn, 10*time.Second)
	if code != websocket.StatusPolicyViolation || reason != "token expired" {
		t.Fatalf("closed with %v %q", code, reason)
	}
}

func TestShutdownClosesWebSocketsNormally(t *testing.T) {
	e := newEnv(t, nil)
	conn, _, err := e.dialWS("/api/console", e.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	closed := make(chan error, 1)
	go func() { closed <- e.m.Close() }()
	code, reason := closeStatus(t, conn, 5*time.Second)
	if code != websocket.StatusNormalClosure || reason != "master shutting down" {
		t.Fatalf("closed with %v %q", code, reason)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// A console text frame that is not UTF-8 fails the connection with 1007
// (RFC 6455 8.1), and runs nothing.
func TestConsoleWebSocketInvalidUTF8(t *testing.T) {
	e := newEnv(t, nil)
	conn, _, err := e.dialWS("/api/console", e.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, []byte("key create \xff\xfe PUBLIC")); err != nil {
		t.Fatal(err)
	}
	_, _, err = conn.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("read after an invalid frame: %v, want close 1007", err)
	}
	if body := readAll(e.do("GET", "/api/keys", e.admin, "")); strings.Contains(body, "\\ufffd") {
		t.Fatalf("the command ran: %s", body)
	}
}

// A client that answers no ping is dropped after the keepalive interval;
// one that reads (and so answers pings) stays for as long as it likes.
// The silent client speaks WebSocket by hand, so that it can watch the
// pings come and the connection end without answering any.
func TestWebSocketKeepalive(t *testing.T) {
	const interval = 300 * time.Millisecond
	e := newEnv(t, func(c *master.Config) { c.WSPingInterval = interval })
	sessions := func() string {
		r := e.do("GET", "/api/metrics", "", "")
		for _, l := range strings.Split(readAll(r), "\n") {
			if strings.HasPrefix(l, `universe_websocket_sessions{endpoint="console"}`) {
				return strings.Fields(l)[1]
			}
		}
		return "none"
	}
	reader, _, err := e.dialWS("/api/console", e.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.CloseNow()
	rctx := reader.CloseRead(context.Background()) // answers pings
	silent, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	_ = silent.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(silent, "GET /api/console HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n", e.admin)
	br := bufio.NewReader(silent)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// Frames from the server until it ends the connection (unmasked:
	// opcode in the first byte, a length of up to 7+64 bits after it).
	pings, closed := 0, false
	var (
		end     error
		payload []byte
	)
	for end == nil {
		var h [2]byte
		if _, end = io.ReadFull(br, h[:]); end != nil {
			break
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			_, end = io.ReadFull(br, l[:])
			n = uint64(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			_, end = io.ReadFull(br, l[:])
			n = binary.BigEndian.Uint64(l[:])
		}
		if end == nil {
			payload = payload[:0]
			if n <= 125 {
				payload = make([]byte, n)
				_, end = io.ReadFull(br, payload)
			} else {
				_, end = io.CopyN(io.Discard, br, int64(n))
			}
		}
		if h[0]&0x0f == 0x9 {
			pings++
		}
		if h[0]&0x0f == 0x8 { // the close frame: its code is what was read last
			closed = true
			break
		}
	}
	_ = silent.Close() // no close frame back: the server's handshake ends at EOF
	if !closed || pings == 0 {
		t.Fatalf("the silent client was not dropped after a ping: %d pings, then %v", pings, end)
	}
	if len(payload) < 2 || websocket.StatusCode(binary.BigEndian.Uint16(payload)) != websocket.StatusGoingAway {
		t.Fatalf("closed with %q, want 1001 keepalive timeout", payload)
	}
	waitUntil(t, "one session left", 10*time.Second, func() bool { return sessions() == "1" })
	time.Sleep(5 * interval)
	if got := sessions(); got != "1" || rctx.Err() != nil {
		t.Fatalf("the client that answers pings was dropped too: sessions %s, %v", got, rctx.Err())
	}
}

// A revoked key's WebSocket is cut at once, even when its client does not
// answer the close frame (the close handshake would wait 5 s for it).
func TestRevokedKeysSilentSocketIsCut(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.WSPingInterval = time.Minute })
	_, tok, err := e.m.Keyring().Create("silent", universe.ScopeAll, 0)
	if err != nil {
		t.Fatal(err)
	}
	silent, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	_ = silent.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(silent, "GET /api/console HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	br := bufio.NewReader(silent)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	start := time.Now()
	if _, err := e.m.Keyring().Revoke("silent"); err != nil {
		t.Fatal(err)
	}
	// Read (never answer) until the server ends the connection.
	_, err = io.Copy(io.Discard, br)
	took := time.Since(start)
	t.Logf("revocation → connection cut in %v (%v)", took, err)
	if took > 2*time.Second {
		t.Fatalf("a revoked key's silent connection stayed open %v", took)
	}
}
