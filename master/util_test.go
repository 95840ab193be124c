package master_test

import (
	"errors"
	"net/netip"

	"github.com/coder/websocket"
)

func mustPrefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func asCloseError(err error, ce *websocket.CloseError) bool { return errors.As(err, ce) }
