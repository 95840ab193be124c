package master

import (
	"context"
	"sync"
)

// leaderLoop runs one of the leader-only loops (the schedules' runner, the
// scaler): started when this master gains the leadership (alone: at Open),
// stopped, and waited for, when it loses it (or closes).
type leaderLoop struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs run under a context of parent's until stop; a second start
// while it runs does nothing.
func (l *leaderLoop) start(parent context.Context, run func(context.Context)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(parent)
	l.cancel, l.done = cancel, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		run(ctx)
	}(l.done)
}

// stop ends the loop and waits for it.
func (l *leaderLoop) stop() {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.cancel, l.done = nil, nil
	l.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}
