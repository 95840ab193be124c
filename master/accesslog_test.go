package master

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestAccessLogFormat: the hand-written line is what slog's text handler
// writes for the same record (the time aside).
func TestAccessLogFormat(t *testing.T) {
	for _, c := range []struct{ method, path, key, client, id string }{
		{"GET", "/api/node", "kabc123", "127.0.0.1", "0123456789abcdef"},
		{"POST", "/api/templates/a b/c", "-", "::1", "x"},
		{"GET", `/api/x="y"`, "-", "", "id"},
		{"GET", "/api/\u00e9t\u00e9\x7f", "-", "10.0.0.1", "r"},
		{"GET", "/api/a\u00a0b\x01\xff", "-", "10.0.0.1", "r"},
		{"GET", `/api/back\slash`, "", "10.0.0.1", ""},
		{"GET", "/api/node", "k", "fe80::1%eth0", "r"},
		{"GET", "/api/node", "k", "::ffff:10.0.0.1", "r"},
	} {
		var fast, std bytes.Buffer
		now := time.Date(2026, 11, 26, 17, 0, 0, 123e6, time.UTC)
		d := 40511 * time.Nanosecond
		client, _ := netip.ParseAddr(c.client) // "": the zero Addr
		newAccessLog(&fast).write(now, c.method, c.path, 200, d, c.key, client, c.id)
		h := slog.NewTextHandler(&std, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Time(slog.TimeKey, now)
			}
			return a
		}})
		slog.New(h).LogAttrs(context.Background(), slog.LevelInfo, "request", slog.String("method", c.method),
			slog.String("path", c.path), slog.Int("status", 200), slog.Duration("duration", d), slog.String("key", c.key),
			slog.String("client", client.String()), slog.String("requestId", c.id))
		if fast.String() != std.String() {
			t.Errorf("\nfast %q\nslog %q", fast.String(), std.String())
		}
		if strings.Count(fast.String(), "\n") != 1 {
			t.Error("not one line")
		}
	}
}

// The cached second and the hand-formatted milliseconds read as
// AppendFormat writes them, in UTC and elsewhere, also across seconds.
func TestAccessLogTime(t *testing.T) {
	a := newAccessLog(io.Discard)
	east := time.FixedZone("east", 5*3600+30*60)
	west := time.FixedZone("west", -7*3600)
	base := time.Date(2026, 11, 26, 23, 59, 59, 0, time.UTC)
	for _, loc := range []*time.Location{time.UTC, east, west, time.FixedZone("zero", 0)} {
		for _, ns := range []int{0, 1e6 - 1, 1e6, 9e6, 10e6, 99e6, 100e6, 998e6, 999e6, 999999999, 1e9, 1e9 + 5e6, 61e9} {
			now := base.Add(time.Duration(ns)).In(loc)
			want := now.AppendFormat(nil, "2006-01-02T15:04:05.000Z07:00")
			if got := a.appendTime(nil, now); string(got) != string(want) {
				t.Errorf("%v: %s, want %s", now, got, want)
			}
		}
	}
}
