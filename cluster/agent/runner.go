package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/backup"
	"github.com/universe-orchestrator/universe/cluster"
	"github.com/universe-orchestrator/universe/instance"
	"github.com/universe-orchestrator/universe/instance/cgroup"
	"github.com/universe-orchestrator/universe/instance/logs"
	"github.com/universe-orchestrator/universe/instance/runtime"
	"github.com/universe-orchestrator/universe/instance/stats"
	"github.com/universe-orchestrator/universe/instance/supervisor"
	"github.com/universe-orchestrator/universe/instance/template"
)

// runner runs the node's instances, each under its own supervisor (as on
// the master), with a log of its own here that the master reads through
// inst.log batches. Its supervisors outlive the agent: a new agent adopts
// them (same pids) from <data>/instances/<id>.
type runner struct {
	backups    backupSessions
	targets    map[string]backup.Target // S3 targets this node uploads to itself
	nc         *nats.Conn
	node, dir  string
	log        *slog.Logger
	supervisor []string // for the built-in runtimes
	full       []string // for the others (docker)

	mu     sync.Mutex
	runs   map[string]*run
	ctx    context.Context
	stats  *stats.Sampler // CPU and memory of this node's instances
	limits *cgroup.Limits // ramMB and cpu of its instances (cgroup v2, where it can)

	termMu sync.Mutex
	term   uint64 // the highest term of a master's order seen (kept in <data>/term)
}

const termFile = "term"

// fenced says whether an order comes under a term lower than one seen
// before (from a master deposed since): it is then refused, unanswered
// but for the refusal. A higher term is remembered, on disk too, so that
// an agent that restarts still refuses the old leader.
func (r *runner) fenced(m *nats.Msg) bool {
	var t uint64
	if m.Header != nil {
		if v := m.Header.Get(cluster.TermHeader); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return true
			}
			t = n
		}
	}
	r.termMu.Lock()
	defer r.termMu.Unlock()
	if t < r.term {
		r.log.Warn("refused an order of a deposed master", "subject", m.Subject, "term", t, "current", r.term)
		return true
	}
	if t > r.term {
		r.term = t
		tmp := filepath.Join(r.dir, termFile+".tmp")
		if os.WriteFile(tmp, []byte(strconv.FormatUint(t, 10)), 0o600) == nil {
			_ = os.Rename(tmp, filepath.Join(r.dir, termFile))
		}
	}
	return false
}

// loadTerm reads the highest term seen before this start.
func (r *runner) loadTerm() {
	if b, err := os.ReadFile(filepath.Join(r.dir, termFile)); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			r.term = n
		}
	}
}

// run is one instance of this node.
type run struct {
	id    string
	epoch int64
	log   *logs.Log
	cl    *supervisor.Client

	mu      sync.Mutex
	fwdStop context.CancelFunc
	fwdDone chan struct{}
	exit    *cluster.ExitReport // set once the process ended
}

var idRE = regexp.MustCompile(`^[a-z0-9]{1,32}$`)

const epochFile = "epoch"

func newRunner(ctx context.Context, nc *nats.Conn, node, dir string, log *slog.Logger, sup, full []string, cgroups string) (*runner, error) {
	if len(sup) == 0 {
		// The supervisor-only binary where there is one (next to this
		// one, or built from source under go run): the agent's own
		// binary carries the NATS client and more into each supervisor.
		small, self := instance.SupervisorCommands(dir, log)
		sup = small
		if len(full) == 0 {
			full = self
		}
	}
	if len(full) == 0 {
		full = []string{Self()}
	}
	r := &runner{nc: nc, node: node, dir: dir, log: log, supervisor: sup, full: full, runs: map[string]*run{}, ctx: ctx}
	r.stats = stats.New(5*time.Second, r.statTargets)
	r.loadTerm()
	r.limits = cgroup.New(cgroups, log)
	for what, h := range map[string]nats.MsgHandler{
		"inst.start": r.handleStart, "inst.attach": r.handleAttach, "inst.stdin": r.handleStdin,
		"inst.signal": r.handleSignal, "inst.system": r.handleSystem, "inst.expect": r.handleExpect,
		"inst.files": r.handleFiles, "inst.stats": r.handleStats, "inst.pprof": r.handlePprof,
		"inst.backup": r.handleBackup,
	} {
		h := h
		fenced := func(m *nats.Msg) {
			if r.fenced(m) {
				respond(m, cluster.Reply{Error: "an order of a master that no longer leads its cluster (a stale term)", Code: universe.ECONFLICT})
				return
			}
			h(m)
		}
		if _, err := nc.Subscribe(cluster.To(node, what), fenced); err != nil {
			return nil, err
		}
	}
	r.adoptAll()
	go r.stats.Run(ctx)
	go r.publishUsage(ctx)
	return r, nil
}

// publishUsage sends the master what the stats sampler saw of this node's
// instances, every sampling interval, for its Prometheus series.
func (r *runner) publishUsage(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var u cluster.Usage
		r.stats.Each(func(id, _ string, cpu float64, mem int64) {
			if len(u.Instances) < cluster.MaxUsage {
				u.Instances = append(u.Instances, cluster.InstanceUsage{ID: id, CPUSeconds: cpu, MemoryBytes: mem})
			}
		})
		b, _ := json.Marshal(u)
		_ = r.nc.Publish(cluster.From(r.node, "usage"), b)
	}
}

func (r *runner) stateDir(id string) string { return filepath.Join(r.dir, "instances", id) }
func (r *runner) workDir(id string) string  { return filepath.Join(r.dir, "running", id) }

// adoptAll attaches to the supervisors a previous agent left running.
func (r *runner) adoptAll() {
	ents, _ := os.ReadDir(filepath.Join(r.dir, "instances"))
	for _, e := range ents {
		id := e.Name()
		b, err := os.ReadFile(filepath.Join(r.stateDir(id), epochFile))
		if err != nil || !idRE.MatchString(id) {
			continue
		}
		epoch, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		lg, err := logs.Open(r.stateDir(id), logs.Options{LineRate: -1})
		if err != nil {
			continue
		}
		if _, err := lg.Handoff(); err != nil {
			r.log.Warn("hand off a log", "instance", id, "err", err)
		}
		cl, ok := supervisor.Adopt(r.stateDir(id), supervisor.Options{Sink: lg})
		ru := &run{id: id, epoch: epoch, log: lg, cl: cl}
		if !ok {
			// Its supervisor died with no exit recorded: the process is gone
			// (it dies with its supervisor). The run is known as ended
			// before anything can see it: a run without a client is never
			// taken for a running one (the stats sampler, stdin, signals).
			_ = lg.Takeback(0)
			rep := cluster.ExitReport{Instance: id, Epoch: epoch, Code: -1, Reason: "supervisor lost", Next: lg.Total() + 1, Lost: true}
			ru.exit = &rep
			r.mu.Lock()
			r.runs[id] = ru
			r.mu.Unlock()
			go r.report(ru, rep)
			continue
		}
		r.mu.Lock()
		r.runs[id] = ru
		r.mu.Unlock()
		cl.Begin()
		go r.watch(ru)
		r.log.Info("instance adopted", "instance", id, "pid", cl.Pid())
	}
}

func respond(m *nats.Msg, rep cluster.Reply) {
	b, _ := json.Marshal(rep)
	_ = m.Respond(b)
}

func errReply(err error) cluster.Reply {
	return cluster.Reply{Error: universe.ErrorMessage(err), Code: universe.ErrorCode(err)}
}

// current returns the run of id if it is of epoch.
func (r *runner) current(id string, epoch int64) *run {
	r.mu.Lock()
	defer r.mu.Unlock()
	ru := r.runs[id]
	if ru == nil || ru.epoch != epoch {
		return nil
	}
	return ru
}

func (r *runner) handleStart(m *nats.Msg) {
	var req cluster.StartRequest
	if json.Unmarshal(m.Data, &req) != nil || !idRE.MatchString(req.Instance) || req.Spec.InstanceID != req.Instance {
		respond(m, cluster.Reply{Error: "bad start request", Code: universe.EINVALID})
		return
	}
	r.mu.Lock()
	old := r.runs[req.Instance]
	r.mu.Unlock()
	if old != nil {
		if old.epoch == req.Epoch && old.cl != nil {
			respond(m, cluster.Reply{Pid: old.cl.Pid(), Running: !old.ended()}) // a repeated request
			return
		}
		if old.epoch > req.Epoch {
			respond(m, cluster.Reply{Error: "a newer start of this instance runs here", Code: universe.ECONFLICT})
			return
		}
		// A stale start of it: it goes first.
		if !old.ended() && old.cl != nil {
			_ = old.cl.Signal(syscall.SIGKILL)
			<-old.cl.Done()
		}
	}
	id := req.Instance
	_, statErr := os.Stat(r.workDir(id))
	fresh := os.IsNotExist(statErr)
	if err := os.MkdirAll(r.workDir(id), 0o700); err != nil {
		respond(m, errReply(err))
		return
	}
	lg, err := logs.Open(r.stateDir(id), logs.Options{LineRate: -1, MinNext: req.Spec.NextSeq})
	if err != nil {
		respond(m, errReply(err))
		return
	}
	if fresh && req.Install != nil {
		if err := r.install(r.workDir(id), lg, req.Install); err != nil {
			_ = lg.Close(nil)
			_ = os.RemoveAll(r.workDir(id)) // the next start installs again
			respond(m, errReply(err))
			return
		}
	}
	next, err := lg.Handoff()
	if err != nil {
		r.log.Warn("hand off a log", "instance", id, "err", err)
	}
	spec := req.Spec
	spec.Dir = r.workDir(id)
	if spec.Container == nil {
		// This node's PATH, HOME and locale under what the master sent:
		// never the agent's whole environment (its credential).
		spec.Env = runtime.MergeEnv(runtime.BaseEnv(), spec.Env)
	}
	spec.NextSeq = max(spec.NextSeq, next)
	// Limits: the container's own under docker, else this node's cgroups.
	limits := &api.Limits{Enforced: true, Reason: "enforced by Docker: the container's memory limit and CPU quota"}
	spec.Cgroup = ""
	if spec.Container == nil {
		var ram, cpu int
		if req.Install != nil {
			ram, cpu = req.Install.RAMMB, req.Install.CPU
		}
		limits, spec.Cgroup = r.limits.Prepare(id, ram, cpu)
		if !limits.Enforced {
			limits.Reason = "node " + r.node + ": " + limits.Reason
		}
	}
	if err := os.WriteFile(filepath.Join(r.stateDir(id), epochFile), []byte(strconv.FormatInt(req.Epoch, 10)), 0o600); err != nil {
		respond(m, errReply(err))
		return
	}
	cmd := r.full
	for _, b := range runtime.Builtin() {
		if b.Name() == spec.Runtime {
			cmd = r.supervisor
		}
	}
	cl, err := supervisor.Start(cmd, r.stateDir(id), spec, supervisor.Options{Sink: lg})
	if err != nil {
		_ = lg.Takeback(0)
		_ = lg.Close(nil)
		r.limits.Release(id)
		respond(m, errReply(err))
		return
	}
	ru := &run{id: id, epoch: req.Epoch, log: lg, cl: cl}
	r.mu.Lock()
	r.runs[id] = ru
	r.mu.Unlock()
	cl.Begin()
	go r.watch(ru)
	if req.Install != nil && req.Install.Health != nil && req.Install.Port > 0 {
		go r.checkHealth(ru, *req.Install.Health, req.Install.Port)
	}
	respond(m, cluster.Reply{Pid: cl.Pid(), Running: true, Limits: limits})
}

// checkHealth runs an instance's health check here, on its node, against
// its port, and reports to the master each verdict that differs from the
// last and every failure (the master counts them and restarts it), until
// the process ends.
func (r *runner) checkHealth(ru *run, h api.HealthCheck, port int) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	wait := time.Duration(h.GraceSeconds) * time.Second
	fails, last := 0, ""
	for {
		select {
		case <-ru.cl.Done():
			return
		case <-r.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = time.Duration(max(h.IntervalSeconds, 1)) * time.Second
		err := instance.Probe(r.ctx, h, addr)
		rep := cluster.HealthReport{Instance: ru.id, Epoch: ru.epoch, Passing: err == nil}
		verdict := "passing"
		if err != nil {
			fails++
			rep.Error, verdict = err.Error(), "failing"
		} else {
			fails = 0
		}
		rep.Fails = fails
		if verdict == last && err == nil {
			continue
		}
		last = verdict
		b, _ := json.Marshal(rep)
		if err := r.nc.Publish(cluster.From(r.node, "inst.health"), b); err != nil {
			r.log.Warn("report health", "instance", ru.id, "err", err)
		}
	}
}

func (ru *run) ended() bool {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	return ru.exit != nil
}

// watch reports the exit to the master, again until it answers, once the
// lines are in the node's log file.
func (r *runner) watch(ru *run) {
	<-ru.cl.Done()
	if ru.cl.Detached() {
		return
	}
	if err := ru.log.Takeback(ru.cl.NextSeq()); err != nil {
		r.log.Warn("take back a log", "instance", ru.id, "err", err)
	}
	for _, l := range ru.cl.Unsent() {
		ru.log.System(l)
	}
	ru.log.Flush()
	ru.cl.Collected()
	r.limits.Release(ru.id)
	r.report(ru, cluster.ExitReport{Instance: ru.id, Epoch: ru.epoch, Code: ru.cl.ExitCode(), Reason: ru.cl.ExitReason(), Next: ru.log.Total() + 1, Lost: ru.cl.Lost()})
}

// report records the exit and sends it to the master until it answers.
func (r *runner) report(ru *run, rep cluster.ExitReport) {
	ru.mu.Lock()
	ru.exit = &rep
	ru.mu.Unlock()
	b, _ := json.Marshal(rep)
	for backoff := 200 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		if _, err := r.nc.Request(cluster.From(r.node, "inst.exit"), b, 5*time.Second); err == nil {
			break
		}
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
	r.mu.Lock()
	if r.runs[ru.id] == ru {
		delete(r.runs, ru.id)
		_ = os.Remove(filepath.Join(r.stateDir(ru.id), epochFile))
	}
	r.mu.Unlock()
	ru.stopForward()
	_ = ru.log.Close(nil)
}

func (r *runner) handleAttach(m *nats.Msg) {
	var req cluster.InstanceRequest
	_ = json.Unmarshal(m.Data, &req)
	ru := r.current(req.Instance, req.Epoch)
	if ru == nil {
		respond(m, cluster.Reply{Error: "this node does not run " + req.Instance + " under that epoch", Code: universe.ENOTFOUND})
		return
	}
	r.forward(ru, req.Since)
	rep := cluster.Reply{Running: !ru.ended()}
	if ru.cl != nil {
		rep.Pid = ru.cl.Pid()
	}
	respond(m, rep)
}

// forward (re)starts sending the lines of ru after since to the master.
func (r *runner) forward(ru *run, since uint64) {
	ru.stopForward()
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan struct{})
	ru.mu.Lock()
	ru.fwdStop, ru.fwdDone = cancel, done
	ru.mu.Unlock()
	sub, backlog := ru.log.Subscribe(logs.Position{Since: since, HasSince: true})
	go func() {
		defer close(done)
		defer sub.Close()
		b := &batcher{r: r, ru: ru}
		b.events(backlog)
		for {
			evs, ok := sub.Next(ctx)
			if !ok {
				b.flush()
				return
			}
			b.events(evs)
		}
	}()
}

func (ru *run) stopForward() {
	ru.mu.Lock()
	stop, done := ru.fwdStop, ru.fwdDone
	ru.fwdStop, ru.fwdDone = nil, nil
	ru.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// batcher publishes lines in batches of at most MaxBatchBytes; a gap (the
// master read too slowly, or since is older than the ring) is filled from
// the log files.
type batcher struct {
	r     *runner
	ru    *run
	lines []api.LogLine
	size  int
}

func (b *batcher) events(evs []logs.Event) {
	for _, e := range evs {
		switch e.Kind {
		case logs.KindLine:
			b.add(e.Line)
		case logs.KindGap:
			for from := e.From; from <= e.To; {
				lines := b.ru.log.Read(from, e.To+1, cluster.MaxBatchBytes)
				if len(lines) == 0 {
					break // not in the files either: the master sees the hole
				}
				for _, l := range lines {
					b.add(l)
				}
				from = lines[len(lines)-1].Seq + 1
			}
		}
	}
	b.flush()
}

func (b *batcher) add(l api.LogLine) {
	if b.size+len(l.Line)+64 > cluster.MaxBatchBytes {
		b.flush()
	}
	b.lines = append(b.lines, l)
	b.size += len(l.Line) + 64
}

func (b *batcher) flush() {
	if len(b.lines) == 0 {
		return
	}
	data, _ := json.Marshal(cluster.LogBatch{Instance: b.ru.id, Epoch: b.ru.epoch, Lines: b.lines})
	_ = b.r.nc.Publish(cluster.From(b.r.node, "inst.log"), data)
	b.lines, b.size = b.lines[:0], 0
}

func (r *runner) handleStdin(m *nats.Msg) {
	var req cluster.InstanceRequest
	_ = json.Unmarshal(m.Data, &req)
	ru := r.current(req.Instance, req.Epoch)
	if ru == nil || ru.ended() {
		respond(m, cluster.Reply{Error: "the instance does not run here", Code: universe.ECONFLICT})
		return
	}
	if err := ru.cl.WriteLine(req.Line); err != nil {
		respond(m, errReply(err))
		return
	}
	respond(m, cluster.Reply{})
}

func (r *runner) handleSignal(m *nats.Msg) {
	var req cluster.InstanceRequest
	_ = json.Unmarshal(m.Data, &req)
	ru := r.current(req.Instance, req.Epoch)
	if ru == nil || ru.ended() {
		respond(m, cluster.Reply{}) // nothing runs under that epoch: nothing to signal
		return
	}
	if err := ru.cl.Signal(syscall.Signal(req.Signal)); err != nil {
		respond(m, errReply(err))
		return
	}
	respond(m, cluster.Reply{})
}

// handlePprof answers with a Go profile of an instance's supervisor. A
// CPU profile takes seconds: it is taken apart from the subscription's
// goroutine, so that other requests of the kind are not held up.
func (r *runner) handlePprof(m *nats.Msg) {
	var req cluster.InstanceRequest
	_ = json.Unmarshal(m.Data, &req)
	ru := r.current(req.Instance, req.Epoch)
	if ru == nil || ru.ended() {
		respond(m, errReply(universe.Errorf(universe.ECONFLICT, "the instance is not running")))
		return
	}
	go func() {
		b, err := ru.cl.Profile(req.Profile, req.Seconds)
		if err != nil {
			respond(m, errReply(err))
			return
		}
		respond(m, cluster.Reply{Data: b})
	}()
}

func (r *runner) handleSystem(m *nats.Msg) {
	var req cluster.InstanceRequest
	_ = json.Unmarshal(m.Data, &req)
	if ru := r.current(req.Instance, req.Epoch); ru != nil && !ru.ended() && req.Line != "" && len(req.Line) <= 4096 {
		ru.log.System(req.Line)
	}
}

// all returns the runs of this node.
func (r *runner) all() []*run {
	r.mu.Lock()
	defer r.mu.Unlock()
	runs := make([]*run, 0, len(r.runs))
	for _, ru := range r.runs {
		runs = append(runs, ru)
	}
	return runs
}

// detachAll leaves the supervisors running for the next agent.
func (r *runner) detachAll() {
	for _, ru := range r.all() {
		ru.stopForward()
		if !ru.ended() && ru.cl != nil {
			ru.cl.Detach()
		}
	}
}

// killAll kills every instance of this node (it was revoked: the master
// treats them as lost and may run them elsewhere).
func (r *runner) killAll() {
	for _, ru := range r.all() {
		ru.stopForward()
		if !ru.ended() && ru.cl != nil {
			_ = ru.cl.Signal(syscall.SIGKILL)
			select {
			case <-ru.cl.Done():
			case <-time.After(5 * time.Second):
			}
		}
	}
}

// handleExpect kills what runs here that the master does not expect under
// the same epoch: an instance it replaced elsewhere while this node was
// out of reach. No instance id runs on two nodes.
func (r *runner) handleExpect(m *nats.Msg) {
	var exp cluster.Expected
	if json.Unmarshal(m.Data, &exp) != nil {
		respond(m, cluster.Reply{Error: "bad request", Code: universe.EINVALID})
		return
	}
	r.mu.Lock()
	var stale []*run
	for id, ru := range r.runs {
		if e, ok := exp.Instances[id]; !ok || e != ru.epoch {
			stale = append(stale, ru)
		}
	}
	r.mu.Unlock()
	for _, ru := range stale {
		if !ru.ended() && ru.cl != nil {
			r.log.Warn("killing a stale instance: the master no longer has it here", "instance", ru.id)
			_ = ru.cl.Signal(syscall.SIGKILL)
		}
	}
	respond(m, cluster.Reply{})
}

// install fills a new working folder: the plan's templates from this
// node's synced copy (synced first when one is missing), then the
// placeholders in the listed files.
func (r *runner) install(dir string, lg *logs.Log, in *cluster.Install) error {
	root := filepath.Join(r.dir, "templates")
	missing := func() string {
		for _, t := range in.Plan {
			if _, err := os.Stat(filepath.Join(root, t.Group, t.Name)); err != nil {
				return t.Group + "/" + t.Name
			}
		}
		return ""
	}
	// The master's templates are the truth: the plan's templates are
	// synced before installing (only what changed travels), so a file
	// written just before the start is there. Without the master, the
	// node's own copy serves, if it has one.
	if len(in.Plan) > 0 {
		if err := syncPlan(r.ctx, r.nc, r.node, r.dir, in.Plan); err != nil {
			if t := missing(); t != "" {
				return universe.Errorf(universe.EUNAVAILABLE, "sync the templates: %v", err)
			}
			lg.System("templates could not be synced (" + err.Error() + "): installing node " + r.node + "'s copy")
		}
		if t := missing(); t != "" {
			return universe.Errorf(universe.EUNAVAILABLE, "template %s is not on node %s", t, r.node)
		}
	}
	if len(in.Plan) > 0 {
		templatesMu.RLock() // no sync rewrites the copies while they are read
		store, err := template.Open(root)
		if err != nil {
			templatesMu.RUnlock()
			return err
		}
		n, err := store.Install(dir, in.Plan, in.Override)
		_ = store.Close()
		templatesMu.RUnlock()
		if err != nil {
			return err
		}
		names := make([]string, len(in.Plan))
		for i, t := range in.Plan {
			names[i] = t.Group + "/" + t.Name
		}
		lg.System("installed " + strconv.Itoa(n) + " files from " + strings.Join(names, ", ") + " on node " + r.node)
	}
	return instance.ApplyFileModifications(dir, in.Files, instance.NewReplacer(in.Placeholders), lg.System)
}
