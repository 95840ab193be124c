package master_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/event"
	"github.com/universe-orchestrator/universe/master"
)

type received struct {
	mu   sync.Mutex
	reqs []*http.Request
	body [][]byte
}

func (r *received) add(req *http.Request, b []byte) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.body = append(r.body, b)
	r.mu.Unlock()
}

func (r *received) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// A crash is an event, listed, followed over the WebSocket and delivered to
// a webhook, signed; a target that hangs and one that fails at first
// delay nobody else, the failing one retried; a Discord target gets a
// message; private targets are refused without the flag.
func TestEventsAndWebhooks(t *testing.T) {
	good, slow, flaky, discord := &received{}, &received{}, &received{}, &received{}
	var flakyCalls atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/good":
			good.add(r, b)
		case "/slow":
			slow.add(r, b)
			select { // hangs past the delivery's limit
			case <-release:
			case <-time.After(30 * time.Second):
			}
		case "/flaky":
			flaky.add(r, b)
			if flakyCalls.Add(1) == 1 {
				w.WriteHeader(500)
				return
			}
		case "/discord":
			discord.add(r, b)
		}
		w.WriteHeader(204)
	}))
	defer srv.Close()
	defer close(release)
	e := newEnv(t, func(c *master.Config) { c.WebhooksAllowPrivate = true })
	mk := func(path, events, format string) api.Webhook {
		r := e.do("POST", "/api/webhooks", e.admin, `{"url":"`+srv.URL+path+`","events":`+events+`,"format":"`+format+`"}`)
		if r.StatusCode != 201 {
			t.Fatalf("webhook %s: %d %s", path, r.StatusCode, readAll(r))
		}
		return decode[api.Webhook](t, r)
	}
	slowHook := mk("/slow", `["*"]`, "json")
	goodHook := mk("/good", `["instance.crashed"]`, "json")
	mk("/flaky", `["instance.crashed"]`, "json")
	mk("/discord", `["instance.crashed"]`, "discord")
	if goodHook.Secret == "" || !strings.HasPrefix(goodHook.Secret, "whsec_") {
		t.Fatalf("no secret: %+v", goodHook)
	}
	if list := readAll(e.do("GET", "/api/webhooks", e.admin, "")); strings.Contains(list, goodHook.Secret) {
		t.Error("the list shows a secret")
	}
	for body, want := range map[string]string{
		`{"url":"ftp://example.com/x","events":["*"]}`:                  "url",
		`{"url":"https://example.com/x","events":["nope"]}`:             "events",
		`{"url":"https://example.com/x","events":["*"],"format":"xml"}`: "format",
	} {
		if r := e.do("POST", "/api/webhooks", e.admin, body); r.StatusCode != 400 || !strings.Contains(errorBody(t, r), want) {
			t.Errorf("%s: %d", body, r.StatusCode)
		}
	}

	ws, _, err := e.dialWS("/api/events/live?since=0", e.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()

	e.putConfig("crash", map[string]any{"command": "exit 3", "availablePorts": map[string]int{"min": 22060, "max": 22069}})
	in := e.create("crash")
	var crashed api.Event
	deadline := time.Now().Add(15 * time.Second)
	for {
		evs := decode[[]api.Event](t, e.do("GET", "/api/events?type=instance.crashed&instanceId="+in.ID, e.admin, ""))
		if len(evs) == 1 {
			crashed = evs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no crash event: %v", evs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if crashed.Configuration != "crash" || crashed.Data["exitCode"] != float64(3) || crashed.Data["state"] != "OFFLINE" || crashed.Data["stateReason"] == nil {
		t.Errorf("the crash event: %+v", crashed)
	}
	// The WebSocket follower sees the started and crashed events in order.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var types []string
	for len(types) < 2 || types[len(types)-1] != api.EventInstanceCrashed {
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("events socket: %v (got %v)", err, types)
		}
		for _, line := range bytes.Split(data, []byte("\n")) { // a frame a line
			var f api.EventFrame
			if err := json.Unmarshal(line, &f); err != nil {
				t.Fatalf("a frame: %v: %q", err, line)
			}
			if f.Event != nil && f.Event.InstanceID == in.ID {
				types = append(types, f.Event.Type)
			}
		}
	}
	if types[0] != api.EventInstanceStarted {
		t.Errorf("events followed: %v", types)
	}

	// Delivered while /slow hangs, signed; /flaky once more after its 500.
	waitFor := func(what string, f func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !f(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s", what)
			}
		}
	}
	waitFor("the good delivery", func() bool { return good.count() == 1 })
	waitFor("the flaky target's retry", func() bool { return flaky.count() == 2 })
	waitFor("the discord message", func() bool { return discord.count() == 1 })
	req, body := good.reqs[0], good.body[0]
	ts, _ := strconv.ParseInt(req.Header.Get("X-Universe-Timestamp"), 10, 64)
	if req.Header.Get("X-Universe-Signature") != event.Sign(goodHook.Secret, ts, body) || req.Header.Get("X-Universe-Event") != api.EventInstanceCrashed || req.Header.Get("X-Universe-Delivery") == "" {
		t.Errorf("headers: %v", req.Header)
	}
	var payload struct {
		ID    string    `json:"id"`
		Event api.Event `json:"event"`
	}
	if json.Unmarshal(body, &payload) != nil || payload.Event.Seq != crashed.Seq || payload.ID != req.Header.Get("X-Universe-Delivery") {
		t.Errorf("body: %s", body)
	}
	if !strings.Contains(string(discord.body[0]), `"content":"**instance.crashed**`) {
		t.Errorf("discord: %s", discord.body[0])
	}
	dels := decode[[]api.Delivery](t, e.do("GET", "/api/webhooks/"+goodHook.ID+"/deliveries", e.admin, ""))
	if len(dels) != 1 || dels[0].Outcome != "ok" || dels[0].Status != 204 {
		t.Errorf("deliveries: %+v", dels)
	}
	if slow.count() == 0 {
		t.Error("the slow target got nothing")
	}
	if r := e.do("DELETE", "/api/webhooks/"+slowHook.ID, e.admin, ""); r.StatusCode != 204 {
		t.Errorf("delete: %d", r.StatusCode)
	}

	// Without the flag, private targets are refused.
	e2 := newEnv(t, nil)
	for _, u := range []string{srv.URL + "/good", "http://localhost:1/x", "http://169.254.169.254/latest", "http://[::1]:80/"} {
		if r := e2.do("POST", "/api/webhooks", e2.admin, `{"url":"`+u+`","events":["*"]}`); r.StatusCode != 400 {
			t.Errorf("a private target %s: %d", u, r.StatusCode)
		}
	}
}
