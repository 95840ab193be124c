package event

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
)

// Webhooks: every webhook has a goroutine and a bounded queue of its own,
// so a target that hangs or fails delays only itself; each event is tried
// with backoff for up to RetryFor, then recorded failed, and a delivery
// waiting to be tried again does not hold up the events after it. Deliveries are
// signed with HMAC-SHA256 of "<timestamp>.<body>".

// Limits of deliveries.
const (
	RetryFor      = time.Hour
	queueLen      = 1024
	maxRetrying   = 1024
	historyLen    = 100
	deliveryLimit = 10 * time.Second
	maxBody       = 64 << 10
)

// NewSecret makes a webhook's signing secret.
func NewSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "whsec_" + hex.EncodeToString(b)
}

// Sign is the X-Universe-Signature value of body sent at ts (Unix seconds).
func Sign(secret string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.", ts)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// CheckURL refuses a target that is not http(s), carries credentials, or
// (unless allowPrivate) names a loopback, private, link-local or
// unspecified address literally. Names are checked again at each dial.
func CheckURL(raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return universe.Errorf(universe.EINVALID, "url: an http(s) URL is needed")
	}
	if len(raw) > 2048 {
		return universe.Errorf(universe.EINVALID, "url: at most 2048 bytes")
	}
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !allowPrivate && private(ip) {
		return universe.Errorf(universe.EINVALID, "url: %s is a loopback, private or link-local address (the master's --webhooks-allow-private allows it)", ip)
	}
	if h := strings.ToLower(u.Hostname()); !allowPrivate && (h == "localhost" || strings.HasSuffix(h, ".localhost")) {
		return universe.Errorf(universe.EINVALID, "url: localhost (the master's --webhooks-allow-private allows it)")
	}
	return nil
}

func private(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() || ip.IsMulticast() ||
		netip.MustParsePrefix("100.64.0.0/10").Contains(ip) || netip.MustParsePrefix("fc00::/7").Contains(ip)
}

// Dispatcher delivers events to webhooks.
type Dispatcher struct {
	log          *slog.Logger
	client       *http.Client
	allowPrivate bool
	now          func() time.Time
	// Outcome tells the metrics of each delivery's end (ok, failed,
	// dropped).
	Outcome func(outcome string)
	// RetryFor is how long a delivery is tried (default RetryFor).
	RetryFor time.Duration

	mu      sync.Mutex
	targets map[string]*target
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type target struct {
	hook    api.Webhook
	q       chan api.Event
	stop    context.CancelFunc
	mu      sync.Mutex
	history []api.Delivery
}

// NewDispatcher makes a dispatcher; allowPrivate lets deliveries reach
// loopback and private addresses.
func NewDispatcher(log *slog.Logger, allowPrivate bool) *Dispatcher {
	d := &Dispatcher{log: log, allowPrivate: allowPrivate, now: time.Now, targets: map[string]*target{}, RetryFor: RetryFor}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			if err != nil {
				return nil, err
			}
			for _, ip := range ips {
				if !d.allowPrivate && private(ip) {
					return nil, fmt.Errorf("%s resolves to %s, a loopback, private or link-local address", host, ip)
				}
			}
			return dialer.DialContext(ctx, network, net.JoinHostPort(ips[0].String(), port))
		},
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: deliveryLimit,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       60 * time.Second,
	}
	d.client = &http.Client{Transport: tr, Timeout: deliveryLimit,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return d
}

// Set makes the dispatcher deliver to exactly hooks (added, kept, removed).
func (d *Dispatcher) Set(hooks []api.Webhook) {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := map[string]api.Webhook{}
	for _, h := range hooks {
		want[h.ID] = h
	}
	for id, t := range d.targets {
		if h, ok := want[id]; !ok || h.URL != t.hook.URL || h.Secret != t.hook.Secret || h.Format != t.hook.Format || !slices.Equal(h.Events, t.hook.Events) {
			t.stop()
			delete(d.targets, id)
		}
	}
	for id, h := range want {
		if _, ok := d.targets[id]; ok || d.ctx.Err() != nil {
			continue
		}
		ctx, stop := context.WithCancel(d.ctx)
		t := &target{hook: h, q: make(chan api.Event, queueLen), stop: stop}
		d.targets[id] = t
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.run(ctx, t)
		}()
	}
}

// Close stops every delivery.
func (d *Dispatcher) Close() {
	d.cancel()
	d.wg.Wait()
}

// Deliveries are a webhook's latest deliveries, newest first.
func (d *Dispatcher) Deliveries(id string) []api.Delivery {
	d.mu.Lock()
	t := d.targets[id]
	d.mu.Unlock()
	out := []api.Delivery{}
	if t == nil {
		return out
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.history) - 1; i >= 0; i-- {
		out = append(out, t.history[i])
	}
	return out
}

func wants(h api.Webhook, typ string) bool {
	return slices.Contains(h.Events, "*") || slices.Contains(h.Events, typ)
}

// Send queues e for every webhook that wants it; never waits: a full
// queue drops the event, recorded in that webhook's deliveries.
func (d *Dispatcher) Send(e api.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range d.targets {
		if !wants(t.hook, e.Type) {
			continue
		}
		select {
		case t.q <- e:
		default:
			t.record(api.Delivery{ID: deliveryID(), WebhookID: t.hook.ID, EventSeq: e.Seq, EventType: e.Type, Outcome: "dropped",
				Error: "the webhook's queue is full (its target is slow or down)", Time: d.now().UTC()})
			if d.Outcome != nil {
				d.Outcome("dropped")
			}
		}
	}
}

func (t *target) record(del api.Delivery) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.history {
		if t.history[i].ID == del.ID {
			t.history[i] = del
			return
		}
	}
	t.history = append(t.history, del)
	if len(t.history) > historyLen {
		t.history = append(t.history[:0:0], t.history[len(t.history)-historyLen:]...)
	}
}

func deliveryID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// pending is a delivery under way: tried, and due to be tried again.
type pending struct {
	del   api.Delivery
	body  []byte
	start time.Time
	wait  time.Duration
	due   time.Time
}

// run delivers t's events one request at a time. A delivery that fails
// waits for its next try (1 s doubling to 5 min) without holding up the
// events after it; at most maxRetrying wait at once (more are dropped,
// recorded), each for up to RetryFor from its first try.
func (d *Dispatcher) run(ctx context.Context, t *target) {
	var waiting []*pending
	for {
		var next int = -1
		for i, p := range waiting {
			if next < 0 || p.due.Before(waiting[next].due) {
				next = i
			}
		}
		var due <-chan time.Time
		if next >= 0 {
			due = time.After(time.Until(waiting[next].due))
		}
		var p *pending
		select {
		case <-ctx.Done():
			return
		case e := <-t.q:
			del := api.Delivery{ID: deliveryID(), WebhookID: t.hook.ID, EventSeq: e.Seq, EventType: e.Type, Outcome: "retrying", Time: d.now().UTC()}
			p = &pending{del: del, body: d.body(t.hook, del.ID, e), start: time.Now(), wait: time.Second}
		case <-due:
			p = waiting[next]
			waiting = slices.Delete(waiting, next, next+1)
		}
		if d.attempt(ctx, t, p) {
			continue
		}
		if len(waiting) >= maxRetrying {
			p.del.Outcome, p.del.Error = "dropped", "too many deliveries waiting to be tried again ("+strconv.Itoa(maxRetrying)+"); last error: "+p.del.Error
			t.record(p.del)
			d.outcome("dropped")
			continue
		}
		waiting = append(waiting, p)
	}
}

// attempt tries p once; done is true when it ended (taken, or failed for
// good), false when it is to be tried again at p.due.
func (d *Dispatcher) attempt(ctx context.Context, t *target, p *pending) (done bool) {
	p.del.Attempts++
	status, err := d.post(ctx, t.hook, p.del.ID, p.del.EventType, p.body)
	p.del.Status, p.del.Time, p.del.Error = status, d.now().UTC(), ""
	if err == nil && status/100 == 2 {
		p.del.Outcome = "ok"
		t.record(p.del)
		d.outcome("ok")
		return true
	}
	if err != nil {
		p.del.Error = err.Error()
	} else {
		p.del.Error = "the target answered " + strconv.Itoa(status)
	}
	if time.Since(p.start)+p.wait > d.RetryFor {
		p.del.Outcome = "failed"
		t.record(p.del)
		d.outcome("failed")
		return true
	}
	t.record(p.del)
	p.due = time.Now().Add(p.wait)
	p.wait = min(2*p.wait, 5*time.Minute)
	return false
}

func (d *Dispatcher) outcome(o string) {
	if d.Outcome != nil {
		d.Outcome(o)
	}
}

func (d *Dispatcher) body(h api.Webhook, id string, e api.Event) []byte {
	if h.Format == "discord" {
		msg := "**" + e.Type + "**"
		if e.InstanceID != "" {
			msg += " · " + e.InstanceID
		}
		if e.Configuration != "" {
			msg += " (" + e.Configuration + ")"
		}
		msg += ": " + e.Message
		if len(msg) > 1900 {
			msg = msg[:1900] + "…"
		}
		b, _ := json.Marshal(map[string]any{"content": msg, "allowed_mentions": map[string]any{"parse": []string{}}})
		return b
	}
	b, _ := json.Marshal(map[string]any{"id": id, "event": e})
	if len(b) > maxBody {
		e.Data = nil
		b, _ = json.Marshal(map[string]any{"id": id, "event": e})
	}
	return b
}

func (d *Dispatcher) post(ctx context.Context, h api.Webhook, id, typ string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	ts := d.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "universe-webhooks")
	req.Header.Set("X-Universe-Event", typ)
	req.Header.Set("X-Universe-Delivery", id)
	req.Header.Set("X-Universe-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Universe-Signature", Sign(h.Secret, ts, body))
	resp, err := d.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return 0, ue.Err // the URL (it may carry a token) stays out of the history
		}
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}
