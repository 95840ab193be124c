// Package stats samples the CPU and memory of instances' process trees
// from /proc: CPU as cores used between two samples, memory as the RSS of
// the whole tree. It keeps the last ten minutes per instance; Each gives a
// metrics collector one series per live instance (gone with the instance).
package stats

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// Window is how much history is kept per instance.
const Window = 10 * time.Minute

// Target is one instance to sample: the pid at the root of its tree.
type Target struct {
	ID            string
	Configuration string
	PID           int
}

type series struct {
	config   string
	samples  []api.StatSample // oldest first, at most Window/interval
	cpuTotal float64          // seconds, summed from positive deltas only: a counter
	lastCPU  float64          // tree CPU seconds at the last sample
	lastAt   time.Time
	pid      int
}

// Sampler samples targets every interval. Build it with New, run it with
// Run.
type Sampler struct {
	interval time.Duration
	targets  func() []Target
	proc     string // /proc
	tick     float64

	mu     sync.Mutex
	series map[string]*series

	sampling sync.Mutex // one sample at a time (the ticker's and GetNow's)
	lastNow  time.Time  // GetNow's last sample
}

// New makes a sampler of the instances targets returns.
func New(interval time.Duration, targets func() []Target) *Sampler {
	return &Sampler{
		interval: interval, targets: targets, proc: "/proc", tick: 100, // USER_HZ is 100 on every Linux ABI Go supports
		series: map[string]*series{},
	}
}

// Run samples until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	s.Sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.Sample(now)
		}
	}
}

type procStat struct {
	ppid     int
	cpu      float64 // seconds
	rssBytes int64
}

// scan reads every process's parent, CPU time and RSS in one pass.
func (s *Sampler) scan() map[int]procStat {
	d, err := os.Open(s.proc)
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	_ = d.Close()
	page := int64(os.Getpagesize())
	out := make(map[int]procStat, len(names))
	buf := make([]byte, 1024)
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		f, err := os.Open(s.proc + "/" + n + "/stat")
		if err != nil {
			continue
		}
		k, _ := f.Read(buf)
		_ = f.Close()
		b := buf[:k]
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			continue
		}
		fields := bytes.Fields(b[i+2:]) // from field 3 (state)
		if len(fields) < 22 {
			continue
		}
		ppid, _ := strconv.Atoi(string(fields[1]))
		ut, _ := strconv.ParseFloat(string(fields[11]), 64)
		st, _ := strconv.ParseFloat(string(fields[12]), 64)
		rss, _ := strconv.ParseInt(string(fields[21]), 10, 64)
		out[pid] = procStat{ppid: ppid, cpu: (ut + st) / s.tick, rssBytes: rss * page}
	}
	return out
}

// Sample takes one sample of every target, and forgets instances that
// are no longer targets.
func (s *Sampler) Sample(now time.Time) {
	s.sampling.Lock()
	defer s.sampling.Unlock()
	s.sample(now)
}

func (s *Sampler) sample(now time.Time) {
	targets := s.targets()
	var procs map[int]procStat
	children := map[int][]int{}
	if len(targets) > 0 {
		procs = s.scan()
		for pid, p := range procs {
			children[p.ppid] = append(children[p.ppid], pid)
		}
	}
	keep := make(map[string]bool, len(targets))
	max := int(Window / s.interval)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range targets {
		keep[t.ID] = true
		var cpu float64
		var rss int64
		if _, ok := procs[t.PID]; ok && t.PID > 0 {
			stack := []int{t.PID}
			seen := map[int]bool{}
			for len(stack) > 0 {
				pid := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if seen[pid] {
					continue
				}
				seen[pid] = true
				p := procs[pid]
				cpu += p.cpu
				rss += p.rssBytes
				stack = append(stack, children[pid]...)
			}
		}
		se := s.series[t.ID]
		if se == nil || se.pid != t.PID {
			if se == nil {
				se = &series{config: t.Configuration}
				s.series[t.ID] = se
			}
			se.pid, se.lastCPU, se.lastAt = t.PID, cpu, now // a new process: no rate yet
			se.samples = append(se.samples, api.StatSample{Time: now.UnixMilli(), MemoryBytes: rss})
		} else {
			d := cpu - se.lastCPU
			if d < 0 {
				d = 0 // a child exited with its time: not a negative rate
			}
			se.cpuTotal += d
			cores := 0.0
			if el := now.Sub(se.lastAt).Seconds(); el > 0 {
				cores = d / el
			}
			se.lastCPU, se.lastAt = cpu, now
			se.samples = append(se.samples, api.StatSample{Time: now.UnixMilli(), CPU: cores, MemoryBytes: rss})
		}
		if len(se.samples) > max {
			se.samples = append(se.samples[:0], se.samples[len(se.samples)-max:]...)
		}
	}
	for id := range s.series {
		if !keep[id] {
			delete(s.series, id)
		}
	}
}

// GetNow is Get, sampling at once when id has no sample yet (an instance
// started since the last tick): its stats are there from its first
// second, not its first interval. Such samples are taken at most once a
// second, whatever asks.
func (s *Sampler) GetNow(id string) (api.InstanceStats, bool) {
	if st, ok := s.Get(id); ok && st.Current != nil {
		return st, ok
	}
	s.sampling.Lock()
	if now := time.Now(); now.Sub(s.lastNow) >= time.Second {
		s.lastNow = now
		s.sample(now)
	}
	s.sampling.Unlock()
	return s.Get(id)
}

// Get returns the stats of instance id: the last sample and the window.
func (s *Sampler) Get(id string) (api.InstanceStats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.series[id]
	if !ok {
		return api.InstanceStats{InstanceID: id, IntervalMs: s.interval.Milliseconds(), Samples: []api.StatSample{}}, false
	}
	out := api.InstanceStats{InstanceID: id, IntervalMs: s.interval.Milliseconds(), CPUSecondsTotal: se.cpuTotal,
		Samples: append([]api.StatSample(nil), se.samples...)}
	if n := len(se.samples); n > 0 {
		cur := se.samples[n-1]
		out.Current = &cur
	}
	return out, true
}

// Each calls f for every sampled instance (for a metrics collector): its
// configuration, CPU seconds in all and last memory sample.
func (s *Sampler) Each(f func(id, configuration string, cpuSeconds float64, memoryBytes int64)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, se := range s.series {
		var mem int64
		if n := len(se.samples); n > 0 {
			mem = se.samples[n-1].MemoryBytes
		}
		f(id, se.config, se.cpuTotal, mem)
	}
}
