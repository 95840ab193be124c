package client

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/universe-orchestrator/universe/api"
)

// TestDecodeFrameMatchesEncodingJSON: every frame, those read by hand and
// those that are not, decodes to what encoding/json gives, errors
// included.
func TestDecodeFrameMatchesEncodingJSON(t *testing.T) {
	texts := []string{"", "y", "plain text with spaces", "ünïcode 😀", "a<b>&c", "quote\"d", "back\\slash", "tab\there", "\x1b[31mred\x1b[0m", "\xff\xfe", "\u2028"}
	var frames []string
	for i := range texts {
		var lines []api.LogLine
		for j := 0; j <= i; j++ {
			lines = append(lines, api.LogLine{Seq: uint64(1000 + j), TS: 1765000000000 + int64(j), Stream: []string{"stdout", "stderr", "system"}[j%3], Line: texts[j]})
		}
		b, _ := json.Marshal(api.LiveLogFrame{Type: api.FrameLines, Lines: lines})
		frames = append(frames, string(b))
	}
	frames = append(frames,
		`{"type":"lines","lines":[{"seq":1,"ts":2,"stream":"stdout","line":"y"}]}`,
		`{"type":"lines","lines":[{"seq":1,"ts":2,"stream":"stdout","line":"y"},{"seq":2,"ts":3,"stream":"stdout","line":"z"}]}`,
		`{"type":"lines","lines":[]}`,
		`{"type":"lines","lines":[{"seq":01,"ts":2,"stream":"stdout","line":"y"}]}`,
		`{"type":"lines","lines":[{"seq":1,"ts":-2,"stream":"stdout","line":"y"}]}`,
		`{"type":"lines","lines":[{"seq":99999999999999999999,"ts":2,"stream":"stdout","line":"y"}]}`,
		`{"type":"lines","lines":[{"seq":1,"ts":2,"stream":"stdout","line":"y"}]} `,
		`{"type":"lines","lines":[{"seq":1,"ts":2,"stream":"stdout","line":"y"}]}x`,
		`{"type":"lines","lines":[{"seq":1,"ts":2,"stream":"stdout","line":"y`,
		`{"type":"lines","lines":[{"seq":1,"ts":2,"line":"y","stream":"stdout"}]}`,
		`{"type":"lines","lines":[{"seq":1,"ts":2,"stream":"stdout","line":"a`+"\x01"+`"}]}`,
		`{"type":"lines","lines":[{"seq":1,"ts":2,"stream":"stdout","line":"y"},]}`,
		`{"type":"gap","from":3,"to":9}`,
		`{"type":"state","state":"ONLINE"}`,
		`{"seq":5,"ts":6,"stream":"stdout","line":"single"}`,
		`not json`,
	)
	for i, frame := range frames {
		var want, got api.LiveLogFrame
		werr := json.Unmarshal([]byte(frame), &want)
		gerr := decodeFrame([]byte(frame), &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("frame %d %q: error %v, encoding/json says %v", i, frame, gerr, werr)
		}
		if werr == nil && !reflect.DeepEqual(normal(got), normal(want)) {
			t.Fatalf("frame %d %q:\n got %+v\nwant %+v", i, frame, got, want)
		}
	}
	// The frames the master writes are read by hand, not handed on.
	if l, ok := readLines([]byte(frames[3])); !ok || len(l) != 4 {
		t.Fatalf("a frame of plain lines was not read by hand: %v %v", l, ok)
	}
}

// normal makes an empty lines list and none the same.
func normal(f api.LiveLogFrame) api.LiveLogFrame {
	if len(f.Lines) == 0 {
		f.Lines = nil
	}
	return f
}

func BenchmarkDecodeFrame(b *testing.B) {
	var lines []api.LogLine
	for j := 0; j < 1000; j++ {
		lines = append(lines, api.LogLine{Seq: uint64(1000 + j), TS: 1765000000000, Stream: "stdout", Line: "y"})
	}
	frame, _ := json.Marshal(api.LiveLogFrame{Type: api.FrameLines, Lines: lines})
	b.Run("hand", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var f api.LiveLogFrame
			if err := decodeFrame(frame, &f); err != nil || len(f.Lines) != 1000 {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var f api.LiveLogFrame
			if err := json.Unmarshal(frame, &f); err != nil || len(f.Lines) != 1000 {
				b.Fatal(err)
			}
		}
	})
}
