package instance

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
)

// What scaling asks of the instances: whether each is joinable (a proxy
// may send players there), draining, and its health check's verdict.

// DefaultHeartbeatWindow is how recent an instance's last report must be
// for it to be joinable when its configuration sets no heartbeat timeout.
const DefaultHeartbeatWindow = 30 * time.Second

// joinParams are a configuration's numbers that joinability reads.
type joinParams struct {
	fullAt      float64
	window      time.Duration
	maintenance bool
}

// paramsCache holds joinParams by configuration, loaded on first use after
// each configuration change.
type paramsCache struct {
	mu sync.RWMutex
	m  map[string]joinParams
}

// ParamsOf are the joinability numbers of cfg.
func paramsOf(cfg api.Configuration) joinParams {
	p := joinParams{fullAt: 0.9, window: DefaultHeartbeatWindow, maintenance: cfg.Maintenance}
	if cfg.Scaling != nil && cfg.Scaling.FullAt > 0 {
		p.fullAt = cfg.Scaling.FullAt
	}
	if cfg.HeartbeatTimeoutSeconds > 0 {
		p.window = time.Duration(cfg.HeartbeatTimeoutSeconds) * time.Second
	}
	return p
}

func (m *Manager) joinParams(name string) joinParams {
	m.params.mu.RLock()
	p, ok := m.params.m[name]
	loaded := m.params.m != nil
	m.params.mu.RUnlock()
	if ok || loaded {
		if !ok {
			return joinParams{fullAt: 0.9, window: DefaultHeartbeatWindow}
		}
		return p
	}
	cfgs, err := m.opt.Store.ListConfigurations()
	all := map[string]joinParams{}
	for _, c := range cfgs {
		all[c.Name] = paramsOf(c)
	}
	if err == nil {
		m.params.mu.Lock()
		m.params.m = all
		m.params.mu.Unlock()
	}
	if p, ok := all[name]; ok {
		return p
	}
	return joinParams{fullAt: 0.9, window: DefaultHeartbeatWindow}
}

// forgetParams drops the cache (a configuration changed).
func (m *Manager) forgetParams() {
	m.params.mu.Lock()
	m.params.m = nil
	m.params.mu.Unlock()
}

// joinable says whether a proxy may send players to the instance: ONLINE
// with no action under way, reported to the master within the heartbeat
// window, not full (players < maxPlayers × fullAt; an unknown maxPlayers
// does not make it full), not draining, health not failing, and its
// configuration not in maintenance.
func joinable(info api.InstanceInfo, p joinParams, now time.Time) bool {
	if info.State != string(StateOnline) || info.Transition != "" || info.Draining || info.Health == api.HealthFailing || p.maintenance || info.Lost {
		return false
	}
	if info.ReportedAt.IsZero() || now.Sub(info.ReportedAt) > p.window || info.ReportedAt.UnixMilli() < info.StartedAt {
		return false
	}
	return info.MaxPlayers <= 0 || float64(info.Players) < float64(info.MaxPlayers)*p.fullAt
}

// Drain takes the instance out of the joinable set: the scaler stops it
// once it has no players, or at deadline (zero: none). Draining twice
// keeps the earlier deadline. Errors: ENOTFOUND (deleted).
func (in *Instance) Drain(deadline time.Time) (api.InstanceInfo, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.deleted {
		return api.InstanceInfo{}, universe.Errorf(universe.ENOTFOUND, "no instance %q", in.id)
	}
	d := int64(0)
	if !deadline.IsZero() {
		d = deadline.UnixMilli()
	}
	if !in.info.Draining {
		in.info.Draining, in.info.DrainDeadline = true, d
		in.log.System("draining: no new players; stopped once empty" + map[bool]string{true: " or at " + deadline.UTC().Format(time.RFC3339), false: ""}[d > 0])
	} else if d > 0 && (in.info.DrainDeadline == 0 || d < in.info.DrainDeadline) {
		in.info.DrainDeadline = d
	}
	in.changedLocked()
	return in.copyInfo(), nil
}

// armHealthLocked starts the health check of process p (its
// configuration's; none: nothing). Caller holds in.mu.
func (in *Instance) armHealthLocked(p process) {
	if in.healthStop != nil {
		in.healthStop()
		in.healthStop = nil
	}
	cfg, err := in.m.opt.Store.GetConfiguration(in.info.ConfigurationName)
	if err != nil || cfg.HealthCheck == nil || in.info.AllocatedPort == 0 {
		in.info.Health, in.info.HealthError = "", ""
		return
	}
	h := *Normalize(cfg).HealthCheck
	in.info.Health, in.info.HealthError, in.healthFails = api.HealthUnknown, "", 0
	host := in.info.HostAddress
	if host == "" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, strconv.Itoa(in.info.AllocatedPort))
	ctx, cancel := context.WithCancel(context.Background())
	in.healthStop = cancel
	go in.checkHealth(ctx, p, h, addr)
}

// NodeHealth takes a node's verdict of the health check of instance id's
// process of epoch (its start): passing or not, the error, and the
// failures in a row; past the configuration's threshold the process is
// stopped as failed, as a local check does. A verdict of another start
// does nothing.
func (m *Manager) NodeHealth(id string, epoch int64, passing bool, why string, fails int) {
	in, err := m.Get(id)
	if err != nil {
		return
	}
	cfg, err := m.opt.Store.GetConfiguration(in.configName())
	if err != nil || cfg.HealthCheck == nil {
		return
	}
	h := *Normalize(cfg).HealthCheck
	in.mu.Lock()
	p := in.proc
	if p == nil || in.epoch != epoch {
		in.mu.Unlock()
		return
	}
	was := in.info.Health
	if passing {
		in.info.Health, in.info.HealthError = api.HealthPassing, ""
	} else {
		in.info.Health, in.info.HealthError = api.HealthFailing, why
	}
	changed := was != in.info.Health
	if changed {
		in.changedLocked()
	}
	info := in.copyInfo()
	in.mu.Unlock()
	if changed {
		in.log.System("health check (on its node) " + info.Health + map[bool]string{true: ": " + why, false: ""}[why != ""])
		if hook := m.opt.Hooks.Health; hook != nil {
			hook(info)
		}
	}
	if !passing && fails >= h.Failures {
		in.failHealth(p, "health check failed "+strconv.Itoa(fails)+" times in a row on its node: "+why)
	}
}

// failHealth stops process p as failed (its restart policy decides what
// follows), unless another process runs meanwhile.
func (in *Instance) failHealth(p process, why string) {
	in.m.background(func() {
		in.action.Lock()
		defer in.action.Unlock()
		in.mu.Lock()
		current := in.proc == p
		in.mu.Unlock()
		if current {
			in.log.System(why)
			in.stopAs("health check", why, nil)
		}
	})
}

// stopHealthLocked ends the check loop. Caller holds in.mu.
func (in *Instance) stopHealthLocked() {
	if in.healthStop != nil {
		in.healthStop()
		in.healthStop = nil
	}
}

func (in *Instance) checkHealth(ctx context.Context, p process, h api.HealthCheck, addr string) {
	wait := time.Duration(h.GraceSeconds) * time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = time.Duration(h.IntervalSeconds) * time.Second
		err := Probe(ctx, h, addr)
		if ctx.Err() != nil {
			return
		}
		in.mu.Lock()
		if in.proc != p {
			in.mu.Unlock()
			return
		}
		was := in.info.Health
		if err == nil {
			in.healthFails = 0
			in.info.Health, in.info.HealthError = api.HealthPassing, ""
		} else {
			in.healthFails++
			in.info.Health, in.info.HealthError = api.HealthFailing, err.Error()
		}
		fails := in.healthFails
		changed := was != in.info.Health
		if changed {
			in.changedLocked()
		}
		info := in.copyInfo()
		in.mu.Unlock()
		if changed {
			if err != nil {
				in.log.System("health check failing: " + err.Error())
			} else {
				in.log.System("health check passing")
			}
			if hook := in.m.opt.Hooks.Health; hook != nil {
				hook(info)
			}
		}
		if err != nil && fails >= h.Failures {
			in.failHealth(p, "health check failed "+strconv.Itoa(fails)+" times in a row: "+err.Error())
			return
		}
	}
}

// Probe runs one health check against addr (host:port): a TCP connect,
// or an HTTP GET of h.Path answered 2xx or 3xx (redirects not followed),
// within h.TimeoutSeconds.
func Probe(ctx context.Context, h api.HealthCheck, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(max(h.TimeoutSeconds, 1))*time.Second)
	defer cancel()
	switch h.Type {
	case "http":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+h.Path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "universe-health")
		resp, err := probeClient.Do(req)
		if err != nil {
			var ue interface{ Unwrap() error }
			if errors.As(err, &ue) {
				err = ue.Unwrap()
			}
			return errors.New("GET " + h.Path + ": " + err.Error())
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if resp.StatusCode >= 400 || resp.StatusCode < 200 {
			return errors.New("GET " + h.Path + " answered " + strconv.Itoa(resp.StatusCode))
		}
		return nil
	default:
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return errors.New("connect " + addr + ": " + err.Error())
		}
		return c.Close()
	}
}

var probeClient = &http.Client{
	Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true, MaxResponseHeaderBytes: 16 << 10},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}
