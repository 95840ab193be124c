package master_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/master"
	"github.com/universe-orchestrator/universe/master/auth"
)

func TestPublicRateLimitExactUnderConcurrency(t *testing.T) {
	e := newEnv(t, nil)
	tr := &http.Transport{MaxIdleConnsPerHost: 200, MaxConnsPerHost: 200}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", e.url+"/api/node", nil)
			req.Header.Set("Authorization", "Bearer "+e.public)
			<-start
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			counts[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	if counts[200] != 100 || counts[429] != 900 {
		t.Fatalf("statuses %v, want exactly 100 x 200 and 900 x 429", counts)
	}
	// ALL keys are never limited.
	for i := 0; i < 150; i++ {
		if resp := e.do("GET", "/api/node", e.admin, ""); resp.StatusCode != 200 {
			t.Fatalf("admin call %d: %d", i, resp.StatusCode)
		}
	}
}

func TestRateLimitResponses(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.PublicRate = auth.Rate{Limit: 3, Window: time.Minute} })
	for i := 0; i < 3; i++ {
		resp := e.do("GET", "/api/node", e.public, "")
		if resp.StatusCode != 200 {
			t.Fatalf("call %d: %d", i, resp.StatusCode)
		}
		if got := resp.Header.Get("RateLimit-Remaining"); got != strconv.Itoa(2-i) {
			t.Fatalf("call %d: RateLimit-Remaining %q", i, got)
		}
		if resp.Header.Get("RateLimit-Limit") != "3" || resp.Header.Get("RateLimit-Reset") == "" {
			t.Fatalf("call %d: headers %v", i, resp.Header)
		}
	}
	// A PUBLIC key's calls to ALL-only routes count too.
	resp := e.do("GET", "/api/keys", e.public, "")
	if resp.StatusCode != 429 {
		t.Fatalf("4th call: %d, want 429", resp.StatusCode)
	}
	body := decode[map[string]any](t, resp)
	ms := int64(body["retryAfterMs"].(float64))
	if ms <= 55000 || ms > 60000 {
		t.Fatalf("retryAfterMs %d, want the real remaining delay (just under 60000)", ms)
	}
	if want := fmt.Sprintf("Rate limit exceeded. Retry after %dms.", ms); body["error"] != want {
		t.Fatalf("error %q, want %q", body["error"], want)
	}
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); int64(ra) != (ms+999)/1000 {
		t.Fatalf("Retry-After %q for %dms", resp.Header.Get("Retry-After"), ms)
	}
	if resp.Header.Get("RateLimit-Remaining") != "0" {
		t.Fatal("RateLimit-Remaining on 429")
	}
}

func TestWebSocketUpgradeCountsAsOneCall(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.PublicRate = auth.Rate{Limit: 2, Window: time.Minute} })
	// PUBLIC keys cannot open the console: the refusal is a counted call.
	_, resp, err := e.dialWS("/api/console", e.public)
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("public console upgrade: %v %v", err, resp)
	}
	if got := e.do("GET", "/api/auth", e.public, "").Header.Get("RateLimit-Remaining"); got != "0" {
		t.Fatalf("remaining after one upgrade and one call: %q, want 0", got)
	}
}

func TestFailedAuthThrottlePerClient(t *testing.T) {
	e := newEnv(t, func(c *master.Config) {
		c.TrustedProxies = mustPrefixes("127.0.0.1/32")
		c.AuthFailureRate = auth.Rate{Limit: 20, Window: time.Minute} // slow refill: no timing in the test
	})
	bad := "Bearer unv_" + regexp.MustCompile(".").ReplaceAllString(e.admin[4:], "x")
	attacker := "X-Forwarded-For: 198.51.100.1"
	var statuses []int
	for i := 0; i < 25; i++ {
		statuses = append(statuses, e.do("GET", "/api/node", "", "", attacker, "Authorization: "+bad).StatusCode)
	}
	for i, s := range statuses {
		want := 401
		if i >= 20 {
			want = 429
		}
		if s != want {
			t.Fatalf("attempt %d: %d, want %d (all: %v)", i, s, want, statuses)
		}
	}
	// Throttled: even a valid token from that client waits (no oracle).
	resp := e.do("GET", "/api/node", e.admin, "", attacker)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("throttled client with valid key: %d", resp.StatusCode)
	}
	// Another client behind the same proxy is not affected.
	if resp := e.do("GET", "/api/node", e.admin, "", "X-Forwarded-For: 198.51.100.2"); resp.StatusCode != 200 {
		t.Fatalf("other client: %d", resp.StatusCode)
	}
	if resp := e.do("GET", "/api/ping", "", "", attacker); resp.StatusCode != 200 {
		t.Fatalf("ping from throttled client: %d", resp.StatusCode)
	}
}
