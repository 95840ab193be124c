package master

import (
	"encoding/json"
	"testing"

	"github.com/universe-orchestrator/universe/api"
)

// FuzzLineFrame: the hand-written line frame is what encoding/json writes.
func FuzzLineFrame(f *testing.F) {
	for _, s := range []string{"", "plain", `"quoted" \ back`, "tab\tnl\ncr\r", "\x00\x1f\x7f", "<a>&", "\u2028\u2029", "\xff\xfe bad", "日本語 ☃"} {
		f.Add(uint64(7), int64(1700000000000), "stdout", s)
	}
	f.Fuzz(func(t *testing.T, seq uint64, ts int64, stream, line string) {
		if seq == 0 || ts == 0 || stream == "" || line == "" {
			return // omitempty fields: the hand-written frame always has them
		}
		l := api.LogLine{Seq: seq, TS: ts, Stream: stream, Line: line}
		want, err := json.Marshal(api.LiveLogFrame{Seq: seq, TS: ts, Stream: stream, Line: line})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendLineFrame(nil, l); string(got) != string(want) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	})
}
