package master_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/coder/websocket"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/master"
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out, err := master.ParsePrefixes(ss)
	if err != nil {
		panic(err)
	}
	return out
}

func TestParsePrefixes(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // "" = error
	}{
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"10.0.0.0/99", ""},
		{"example.com", ""},
	} {
		got, err := master.ParsePrefixes([]string{tt.in})
		if tt.want == "" {
			if universe.ErrorCode(err) != universe.EINVALID {
				t.Errorf("%q: %v, want EINVALID", tt.in, err)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0].String() != tt.want {
			t.Errorf("%q: %v %v, want %s", tt.in, got, err, tt.want)
		}
	}
}

func asCloseError(err error, ce *websocket.CloseError) bool { return errors.As(err, ce) }
