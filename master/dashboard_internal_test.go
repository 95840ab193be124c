package master

import (
	"errors"
	"testing"

	universe "github.com/universe-orchestrator/universe"
)

func TestFieldErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want map[string]string
	}{
		{universe.Errorf(universe.EINVALID, "invalid configuration: availablePorts: need 1 <= min; command: must not be empty"),
			map[string]string{"portMin": "need 1 <= min", "command": "must not be empty"}},
		{universe.Errorf(universe.EINVALID, "invalid configuration: properties: bad; ramMB: must not be negative; ramMB: again"),
			map[string]string{"other": "properties: bad", "ramMB": "must not be negative; again"}},
		{errors.New("disk full"), map[string]string{"other": "internal error"}},
		{universe.Errorf(universe.ECONFLICT, "busy"), map[string]string{"other": "busy"}},
	} {
		got := map[string]string{}
		fieldErrors(c.err, got)
		if len(got) != len(c.want) {
			t.Errorf("%v: %v, want %v", c.err, got, c.want)
			continue
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%v: %s = %q, want %q", c.err, k, got[k], v)
			}
		}
	}
}
