package scaling_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/scaling"
)

// fakeEnv holds instances in memory and counts what the scaler does.
type fakeEnv struct {
	cfgs   []api.Configuration
	insts  []api.InstanceInfo
	starts chan string
}

func (f *fakeEnv) Configurations() ([]api.Configuration, error) { return f.cfgs, nil }
func (f *fakeEnv) Instances() []api.InstanceInfo                { return f.insts }
func (f *fakeEnv) Start(cfg string) error {
	f.starts <- cfg
	return nil
}
func (f *fakeEnv) Stop(string, string) error                            { return nil }
func (f *fakeEnv) Decided(string, api.ScalingDecision, scaling.Numbers) {}

// The loop starts what a configuration lacks and records the decision
// with its numbers; a status lists decisions newest first.
func TestScalerRecordsDecisions(t *testing.T) {
	env := &fakeEnv{cfgs: []api.Configuration{cfg(2, 0, 0)}, starts: make(chan string, 10)}
	s := scaling.New(env, time.Now, nil)
	s.WarmUp = time.Nanosecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	s.Trigger()
	for range 2 {
		select {
		case <-env.starts:
		case <-time.After(10 * time.Second):
			t.Fatal("no start")
		}
	}
	st := s.Status("lobby")
	if len(st.Decisions) < 2 || st.Decisions[0].Action != "start" || st.Desired != 2 {
		t.Fatalf("status: %+v", st)
	}
}

// BenchmarkPass1000: a whole pass (grouping, deciding, recording) over
// 1,000 instances of one configuration whose headroom is met.
func BenchmarkPass1000(b *testing.B) {
	env := &fakeEnv{cfgs: []api.Configuration{cfg(20, 0, 0)}, starts: make(chan string, 1)}
	for i := range 1000 {
		env.insts = append(env.insts, online("i"+strconv.Itoa(i), i%50, 50, t0.Add(-time.Hour), t0))
		env.insts[i].ConfigurationName = "lobby"
	}
	s := scaling.New(env, func() time.Time { return t0 }, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s.Pass(ctx)
	}
}
