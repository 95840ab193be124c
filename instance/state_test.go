package instance_test

import (
	"testing"

	"github.com/universe-orchestrator/universe/instance"
)

func TestStateValid(t *testing.T) {
	for _, tt := range []struct {
		s    instance.State
		want bool
	}{{"CREATING", true}, {"ONLINE", true}, {"OFFLINE", true}, {"STOPPED", true}, {"online", false}, {"", false}, {"RUNNING", false}} {
		if got := tt.s.Valid(); got != tt.want {
			t.Errorf("%q.Valid() = %v", tt.s, got)
		}
	}
}
