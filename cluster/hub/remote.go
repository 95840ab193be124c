package hub

import (
	"encoding/json"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster"
	"github.com/universe-orchestrator/universe/instance/supervisor"
)

// Instances on nodes, the master's side: a Proc stands for the process of
// one instance on one node, as a supervisor.Client does for a local one.

// requestTimeout bounds a request to a node.
const requestTimeout = 5 * time.Second

// Proc is an instance's process on an agent node.
type Proc struct {
	h         *Hub
	node, id  string
	epoch     int64
	sink      supervisor.Sink
	startedAt time.Time
	limits    *api.Limits // what the node said at the start

	mu        sync.Mutex
	pid       int
	begun     bool
	last      uint64 // the last line handed to the sink
	resending bool   // an attach for the missing lines is under way
	attaching bool   // attach runs; a call meanwhile sets again instead
	again     bool   // attach once more when the running one is answered
	exit      *cluster.ExitReport
	exitAck   []*nats.Msg // exit reports to answer once every line is in
	done      chan struct{}
	detached  bool
	lost      bool
	lostWhy   string
	unsent    []string
}

func procKey(node, id string) string { return node + "/" + id }

// register makes p the current process of its instance.
func (h *Hub) register(p *Proc) {
	h.mu.Lock()
	h.procs[procKey(p.node, p.id)] = p
	h.mu.Unlock()
}

func (h *Hub) unregister(p *Proc) {
	h.mu.Lock()
	if h.procs[procKey(p.node, p.id)] == p {
		delete(h.procs, procKey(p.node, p.id))
	}
	h.mu.Unlock()
}

func (h *Hub) conn() *nats.Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nc
}

// Start starts an instance on node under epoch and returns its process;
// lines go to sink once Begin is called. Errors: EUNAVAILABLE (the node
// does not answer), or the node's own.
func (h *Hub) Start(node string, epoch int64, spec supervisor.Spec, install *cluster.Install, sink supervisor.Sink) (*Proc, error) {
	nc := h.conn()
	if nc == nil {
		return nil, universe.Errorf(universe.EUNAVAILABLE, "node %s is not connected", node)
	}
	p := &Proc{h: h, node: node, id: spec.InstanceID, epoch: epoch, sink: sink, done: make(chan struct{}), last: sink.Total(), startedAt: time.Now()}
	h.register(p)
	var rep cluster.Reply
	if err := h.request(nc, cluster.To(node, "inst.start"), cluster.StartRequest{Instance: spec.InstanceID, Epoch: epoch, Spec: spec, Install: install}, &rep, 30*time.Second); err != nil {
		h.unregister(p)
		return nil, err
	}
	p.pid = rep.Pid
	p.limits = rep.Limits
	sink.Forward(p.system)
	return p, nil
}

// Adopt is the process of an instance a previous master started on node:
// it goes on once the node answers (Begin attaches; a node that does not
// know it makes it lost).
func (h *Hub) Adopt(node, id string, epoch int64, pid int, sink supervisor.Sink) *Proc {
	p := &Proc{h: h, node: node, id: id, epoch: epoch, sink: sink, done: make(chan struct{}), last: sink.Total(), pid: pid, startedAt: time.Now()}
	h.register(p)
	sink.Forward(p.system)
	return p
}

func (h *Hub) request(nc *nats.Conn, subject string, req any, rep *cluster.Reply, timeout time.Duration) error {
	if nc == nil {
		return universe.Errorf(universe.EUNAVAILABLE, "no node is connected (the node port is not open)")
	}
	b, _ := json.Marshal(req)
	m, err := nc.RequestMsg(h.order(subject, b), timeout)
	if err != nil {
		return universe.Errorf(universe.EUNAVAILABLE, "the node does not answer (%v)", err)
	}
	if err := json.Unmarshal(m.Data, rep); err != nil {
		return universe.Errorf(universe.EUNAVAILABLE, "the node answered nonsense")
	}
	if rep.Error != "" {
		code := rep.Code
		if code == "" {
			code = universe.EINTERNAL
		}
		return universe.Errorf(code, "%s", rep.Error)
	}
	return nil
}

// Begin attaches to the node's log of the instance from the sink's last
// line, until the node answers.
func (p *Proc) Begin() {
	p.mu.Lock()
	if p.begun {
		p.mu.Unlock()
		return
	}
	p.begun = true
	p.mu.Unlock()
	go p.attach()
}

// attach asks the node for the lines after the last one the sink has, and
// to go on sending; it retries while the node does not answer.
func (p *Proc) attach() {
	// One attach loop per process at a time, whatever asks for it (a
	// hole, a node's reconnection): a call meanwhile makes the running loop
	// ask once more, so a node cannot make the master run more of them.
	p.mu.Lock()
	if p.attaching {
		p.again = true
		p.mu.Unlock()
		return
	}
	p.attaching = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.attaching, p.again = false, false
		p.mu.Unlock()
	}()
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		select {
		case <-p.done:
			return
		default:
		}
		p.mu.Lock()
		since := p.last
		p.mu.Unlock()
		p.h.count(p.node, func(st *RelayStat) { st.Resends++ })
		var rep cluster.Reply
		err := p.h.request(p.h.conn(), cluster.To(p.node, "inst.attach"), cluster.InstanceRequest{Instance: p.id, Epoch: p.epoch, Since: since}, &rep, requestTimeout)
		if err == nil {
			p.mu.Lock()
			p.resending = false
			if rep.Pid > 0 {
				p.pid = rep.Pid
			}
			again := p.again
			p.again = false
			p.mu.Unlock()
			if again {
				backoff = 50 * time.Millisecond // doubled to the first one's
				continue
			}
			return
		}
		if universe.ErrorCode(err) == universe.ENOTFOUND {
			// The node does not run it (any more, or never did under this
			// epoch): the process is gone.
			p.finish(nil, true)
			return
		}
		time.Sleep(backoff)
	}
}

// RelayStat counts what the master took from one node.
type RelayStat struct {
	Lines   uint64 // log lines taken
	Batches uint64 // inst.log batches received
	Resends uint64 // times it asked the node again (a hole, a reconnect)
}

// Relay returns the relay counters, by node.
func (h *Hub) Relay() map[string]RelayStat {
	h.statMu.Lock()
	defer h.statMu.Unlock()
	out := make(map[string]RelayStat, len(h.relay))
	for k, v := range h.relay {
		out[k] = *v
	}
	return out
}

func (h *Hub) count(node string, f func(*RelayStat)) {
	h.statMu.Lock()
	defer h.statMu.Unlock()
	st := h.relay[node]
	if st == nil {
		if h.relay == nil {
			h.relay = map[string]*RelayStat{}
		}
		st = &RelayStat{}
		h.relay[node] = st
	}
	f(st)
}

// lines takes a batch from the node: in order, each line once; a hole
// asks the node for the lines again from the last one taken.
func (p *Proc) lines(lines []api.LogLine) {
	p.mu.Lock()
	if !p.begun {
		p.mu.Unlock()
		return
	}
	var take []api.LogLine
	for _, l := range lines {
		if l.Seq <= p.last {
			continue
		}
		if l.Seq != p.last+1 {
			if !p.resending {
				p.resending = true
				go p.attach()
			}
			break
		}
		take = append(take, l)
		p.last = l.Seq
	}
	complete := p.exit != nil && p.last+1 >= p.exit.Next
	p.mu.Unlock()
	n := uint64(len(take))
	p.h.count(p.node, func(st *RelayStat) { st.Batches++; st.Lines += n })
	if len(take) > 0 {
		p.sink.Append(take)
	}
	if complete {
		p.finish(nil, false)
	}
}

// exited takes the node's exit report; the process is done once every
// line before the report's Next is in.
func (p *Proc) exited(rep cluster.ExitReport, m *nats.Msg) {
	p.mu.Lock()
	p.exit = &rep
	p.exitAck = append(p.exitAck, m)
	complete := p.last+1 >= rep.Next
	p.mu.Unlock()
	if complete {
		p.finish(nil, false)
		return
	}
	go func() {
		// Lines still on their way, or lost on the wire: ask again, and
		// give up waiting after a while (the hole shows as a gap).
		p.mu.Lock()
		if !p.resending {
			p.resending = true
			go p.attach()
		}
		p.mu.Unlock()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.finish(nil, false)
		}
	}()
}

// finish ends the process once: lost, or with its exit report.
func (p *Proc) finish(_ error, lost bool) {
	p.mu.Lock()
	select {
	case <-p.done:
		p.mu.Unlock()
		return
	default:
	}
	p.lost = lost
	if lost && p.lostWhy == "" && p.exit == nil {
		p.lostWhy = "lost: its node " + p.node + " no longer runs it"
	}
	acks := p.exitAck
	p.exitAck = nil
	close(p.done)
	p.mu.Unlock()
	p.h.unregister(p)
	ok, _ := json.Marshal(cluster.Reply{})
	for _, m := range acks {
		_ = m.Respond(ok)
	}
}

// system sends a system line to the node's log of the instance.
func (p *Proc) system(line string) {
	nc := p.h.conn()
	if nc == nil {
		p.mu.Lock()
		p.unsent = append(p.unsent, line)
		p.mu.Unlock()
		return
	}
	b, _ := json.Marshal(cluster.InstanceRequest{Instance: p.id, Epoch: p.epoch, Line: line})
	if nc.PublishMsg(p.h.order(cluster.To(p.node, "inst.system"), b)) != nil {
		p.mu.Lock()
		p.unsent = append(p.unsent, line)
		p.mu.Unlock()
	}
}

// Pid is the process's pid on its node.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Limits says whether the node enforces the instance's limits (nil for an
// adopted process: its record keeps what was said at its start).
func (p *Proc) Limits() *api.Limits { return p.limits }

// Node is the node the process runs on.
func (p *Proc) Node() string { return p.node }

// WriteLine writes a line to the process's stdin on its node.
func (p *Proc) WriteLine(line string) error {
	select {
	case <-p.done:
		return universe.Errorf(universe.ECONFLICT, "the process has exited")
	default:
	}
	var rep cluster.Reply
	return p.h.request(p.h.conn(), cluster.To(p.node, "inst.stdin"), cluster.InstanceRequest{Instance: p.id, Epoch: p.epoch, Line: line}, &rep, requestTimeout)
}

// Signal signals the process's group on its node.
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	var rep cluster.Reply
	return p.h.request(p.h.conn(), cluster.To(p.node, "inst.signal"), cluster.InstanceRequest{Instance: p.id, Epoch: p.epoch, Signal: int(sig)}, &rep, requestTimeout)
}

// Profile asks the node for a Go profile of the instance's supervisor.
func (p *Proc) Profile(name string, seconds int) ([]byte, error) {
	if err := supervisor.ValidProfile(name, seconds); err != nil {
		return nil, err
	}
	select {
	case <-p.done:
		return nil, universe.Errorf(universe.ECONFLICT, "the process has exited")
	default:
	}
	var rep cluster.Reply
	err := p.h.request(p.h.conn(), cluster.To(p.node, "inst.pprof"), cluster.InstanceRequest{Instance: p.id, Epoch: p.epoch, Profile: name, Seconds: seconds},
		&rep, requestTimeout+time.Duration(seconds)*time.Second)
	return rep.Data, err
}

// Done is closed once the process has exited (every line in), was lost,
// or the master detached.
func (p *Proc) Done() <-chan struct{} { return p.done }

// ExitCode is the exit code after Done (-1: lost).
func (p *Proc) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exit == nil || p.lost {
		return -1
	}
	return p.exit.Code
}

// ExitReason says why beyond the code, when the node knew (or why the
// master gave it up).
func (p *Proc) ExitReason() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lostWhy != "" {
		return p.lostWhy
	}
	if p.exit == nil {
		return ""
	}
	return p.exit.Reason
}

// Lose gives the process up: the master no longer counts on it (its node
// was unreachable too long); the node kills it when it comes back.
func (p *Proc) Lose(reason string) {
	p.mu.Lock()
	p.lostWhy = reason
	p.mu.Unlock()
	p.finish(nil, true)
}

// Lost says the process is gone without an exit report of its node.
func (p *Proc) Lost() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lost || (p.exit != nil && p.exit.Lost)
}

// NextSeq is the sequence number after the log's last line, after Done.
func (p *Proc) NextSeq() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exit == nil {
		return 0
	}
	return p.exit.Next
}

// Detach leaves the process running (the master stops with
// --keep-instances): the next master adopts it.
func (p *Proc) Detach() {
	p.mu.Lock()
	p.detached = true
	p.mu.Unlock()
	p.finish(nil, false)
}

// Detached says whether Detach ended it.
func (p *Proc) Detached() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.detached
}

// Collected: the node keeps no exit record the master must clear.
func (p *Proc) Collected() {}

// Unsent returns the system lines that could not be sent to the node.
func (p *Proc) Unsent() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.unsent
	p.unsent = nil
	return u
}

// serveInstances takes the nodes' log batches and exit reports. The node
// is the subject's; a report about an instance the master did not place
// on that node, or of another epoch, does nothing.
func (h *Hub) serveInstances(nc *nats.Conn) error {
	if _, err := nc.Subscribe(cluster.FromAll("inst.log"), func(m *nats.Msg) {
		var b cluster.LogBatch
		if json.Unmarshal(m.Data, &b) != nil {
			return
		}
		if p := h.proc(cluster.NodeOf(m.Subject), b.Instance, b.Epoch); p != nil {
			sort.Slice(b.Lines, func(i, j int) bool { return b.Lines[i].Seq < b.Lines[j].Seq })
			p.lines(sane(b.Lines))
		}
	}); err != nil {
		return err
	}
	if _, err := nc.Subscribe(cluster.FromAll("inst.health"), func(m *nats.Msg) {
		var rep cluster.HealthReport
		if json.Unmarshal(m.Data, &rep) != nil || h.opt.OnHealth == nil {
			return
		}
		if len(rep.Error) > maxReason {
			rep.Error = rep.Error[:maxReason]
		}
		if p := h.proc(cluster.NodeOf(m.Subject), rep.Instance, rep.Epoch); p != nil {
			h.opt.OnHealth(rep)
		}
	}); err != nil {
		return err
	}
	_, err := nc.Subscribe(cluster.FromAll("inst.exit"), func(m *nats.Msg) {
		var rep cluster.ExitReport
		if json.Unmarshal(m.Data, &rep) != nil {
			return
		}
		if len(rep.Reason) > maxReason {
			rep.Reason = rep.Reason[:maxReason]
		}
		p := h.proc(cluster.NodeOf(m.Subject), rep.Instance, rep.Epoch)
		if p == nil {
			ok, _ := json.Marshal(cluster.Reply{}) // nothing of ours: the node may forget it
			_ = m.Respond(ok)
			return
		}
		p.exited(rep, m)
	})
	return err
}

// What a node may put in the master's records and logs.
const (
	maxReason = 512
	maxLine   = 64<<10 + 64 // a line is split at 64 KiB, plus the split marker
)

// sane keeps what a node sends within what a local supervisor could have
// written: a known stream, a line no longer than a split line.
func sane(lines []api.LogLine) []api.LogLine {
	for i := range lines {
		switch lines[i].Stream {
		case api.StreamStdout, api.StreamStderr, api.StreamSystem:
		default:
			lines[i].Stream = api.StreamStdout
		}
		if len(lines[i].Line) > maxLine {
			lines[i].Line = lines[i].Line[:maxLine]
		}
	}
	return lines
}

func (h *Hub) proc(node, id string, epoch int64) *Proc {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.procs[procKey(node, id)]
	if p == nil || p.epoch != epoch {
		return nil
	}
	return p
}

// loseNode ends the processes on a revoked node: they are lost.
func (h *Hub) loseNode(node, reason string) {
	h.mu.Lock()
	var lost []*Proc
	for _, p := range h.procs {
		if p.node == node {
			lost = append(lost, p)
		}
	}
	h.mu.Unlock()
	for _, p := range lost {
		p.Lose(reason)
	}
}
