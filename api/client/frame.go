package client

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/universe-orchestrator/universe/api"
)

// decodeFrame decodes a live-log frame. A batched lines frame as the master
// writes it (its fields in its order, strings without escapes) is read by
// hand, which is several times encoding/json's speed on a fast log; any
// other frame, or one that does not read exactly so, goes to
// encoding/json, so the result is the same either way
// (TestDecodeFrameMatchesEncodingJSON).
func decodeFrame(b []byte, f *api.LiveLogFrame) error {
	if lines, ok := readLines(b); ok {
		*f = api.LiveLogFrame{Type: api.FrameLines, Lines: lines}
		return nil
	}
	*f = api.LiveLogFrame{}
	return json.Unmarshal(b, f)
}

// readLines reads {"type":"lines","lines":[{"seq":N,"ts":N,"stream":"s",
// "line":"s"},...]}; ok is false for anything else.
func readLines(b []byte) (lines []api.LogLine, ok bool) {
	const head = `{"type":"lines","lines":[`
	if !bytes.HasPrefix(b, []byte(head)) {
		return nil, false
	}
	b = b[len(head):]
	lines = make([]api.LogLine, 0, bytes.Count(b, []byte(`{"seq":`)))
	for {
		var l api.LogLine
		var seq, ts uint64
		if b, ok = expect(b, `{"seq":`); !ok {
			return nil, false
		}
		if seq, b, ok = number(b); !ok {
			return nil, false
		}
		if b, ok = expect(b, `,"ts":`); !ok {
			return nil, false
		}
		if ts, b, ok = number(b); !ok || ts > 1<<62 {
			return nil, false
		}
		if b, ok = expect(b, `,"stream":`); !ok {
			return nil, false
		}
		if l.Stream, b, ok = plainString(b); !ok {
			return nil, false
		}
		if b, ok = expect(b, `,"line":`); !ok {
			return nil, false
		}
		if l.Line, b, ok = plainString(b); !ok {
			return nil, false
		}
		if b, ok = expect(b, `}`); !ok {
			return nil, false
		}
		l.Seq, l.TS = seq, int64(ts)
		lines = append(lines, l)
		if len(b) > 0 && b[0] == ',' {
			b = b[1:]
			continue
		}
		if string(b) != "]}" {
			return nil, false
		}
		return lines, true
	}
}

func expect(b []byte, s string) ([]byte, bool) {
	if !bytes.HasPrefix(b, []byte(s)) {
		return b, false
	}
	return b[len(s):], true
}

// number reads a non-negative integer without a leading zero (but 0) that
// fits 19 digits.
func number(b []byte) (uint64, []byte, bool) {
	var v uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + uint64(b[i]-'0')
	}
	if i == 0 || i > 19 || (i > 1 && b[0] == '0') {
		return 0, b, false
	}
	return v, b[i:], true
}

// plainString reads a JSON string with no escape, no control character
// and valid UTF-8: what encoding/json would read the same.
func plainString(b []byte) (string, []byte, bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", b, false
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			s := b[1:i]
			if !utf8.Valid(s) {
				return "", b, false
			}
			return string(s), b[i+1:], true
		case c == '\\' || c < 0x20:
			return "", b, false
		}
	}
	return "", b, false
}
