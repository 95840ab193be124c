package master_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/master"
)

// A follower that falls far behind (its queue holds 64 lines, the ring
// 500) still gets every line, from the log files, in order, with no gap:
// in batched JSON frames, in one-line JSON frames and in text frames. The
// burst comes while the followers are connected and not reading.
func TestLiveLogFollowerBehindReadsTheFiles(t *testing.T) {
	const n = 30000
	e := newEnv(t, func(c *master.Config) {
		c.InstanceLog.LineRate = -1
		c.InstanceLog.SubBuffer = 64
		c.InstanceLog.RingLines = 500
		// The followers are read one after the other: those waiting their
		// turn answer no ping meanwhile, for seconds under the race
		// detector. The keepalive is not what this test is about.
		c.WSPingInterval = 5 * time.Minute
	})
	e.putConfig("burst", map[string]any{
		"command":        "read go; seq 1 " + strconv.Itoa(n) + "; exec sleep 600",
		"availablePorts": map[string]int{"min": 21870, "max": 21879},
	})
	info := e.create("burst")
	e.waitState(info.ID, "ONLINE")
	cases := []struct {
		name, query string
		conn        *websocket.Conn
	}{
		{"batched", "?format=json&batch=1&since=0", nil},
		{"json", "?format=json&since=0", nil},
		{"text", "?since=0", nil},
	}
	for i, tc := range cases {
		conn, resp, err := e.dialWS("/api/instances/"+info.ID+"/live-log"+tc.query, e.admin)
		if err != nil {
			t.Fatalf("dial: %v (%v)", err, resp)
		}
		defer conn.CloseNow()
		conn.SetReadLimit(1 << 20)
		cases[i].conn = conn
	}
	if resp := e.do("POST", "/api/instances/"+info.ID+"/execute", e.admin, `{"command":"go"}`); resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		t.Fatalf("execute: %d %s", resp.StatusCode, readAll(resp))
	}
	// The whole burst is written while nobody reads.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp := e.do("GET", "/api/instances/"+info.ID+"/logs?lines=1", e.admin, "")
		if decode[api.Logs](t, resp).TotalLines >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the burst did not reach the log")
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := tc.conn
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			want := 1 // the next stdout line expected
			var lastSeq uint64
			for want <= n {
				_, data, err := conn.Read(ctx)
				if err != nil {
					t.Fatalf("after line %d: %v", want-1, err)
				}
				var lines []api.LogLine
				if tc.name == "text" {
					if string(data) == strconv.Itoa(want) {
						want++
					}
					continue
				}
				if len(data) > api.LiveLogBatchBytes {
					t.Fatalf("a frame of %d bytes, over %d", len(data), api.LiveLogBatchBytes)
				}
				var f api.LiveLogFrame
				if err := json.Unmarshal(data, &f); err != nil {
					t.Fatalf("frame %q: %v", data, err)
				}
				switch f.Type {
				case api.FrameGap:
					t.Fatalf("gap %d-%d: the files hold those lines", f.From, f.To)
				case api.FrameLines:
					if tc.name != "batched" {
						t.Fatal("a batched frame without batch=1")
					}
					lines = f.Lines
				case "":
					lines = []api.LogLine{{Seq: f.Seq, Stream: f.Stream, Line: f.Line}}
				}
				for _, l := range lines {
					if lastSeq != 0 && l.Seq != lastSeq+1 {
						t.Fatalf("line %d after %d", l.Seq, lastSeq)
					}
					lastSeq = l.Seq
					if l.Stream != api.StreamStdout {
						continue
					}
					if l.Line != strconv.Itoa(want) {
						t.Fatalf("got %q, want %d", l.Line, want)
					}
					want++
				}
			}
		})
	}
}

func TestLiveLogBatchParameter(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("quiet", map[string]any{
		"command":        "exec sleep 600",
		"availablePorts": map[string]int{"min": 21880, "max": 21881},
	})
	info := e.create("quiet")
	for _, q := range []string{"?batch=1", "?format=json&batch=yes"} {
		_, resp, err := e.dialWS("/api/instances/"+info.ID+"/live-log"+q, e.admin)
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %v %v, want 400", q, err, resp)
		}
	}
	conn, _, err := e.dialWS("/api/instances/"+info.ID+"/live-log?format=json&batch=1", e.admin)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(websocket.StatusNormalClosure, "")
}
