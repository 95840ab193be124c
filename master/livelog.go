package master

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/logs"
)

// liveLogWriteTimeout bounds one write to a live-log client; a client that
// reads slower than its instance writes falls behind in its bounded buffer.
const liveLogWriteTimeout = 10 * time.Second

// handleLiveLog streams an instance's log over a WebSocket: the last
// ?lines= lines (or everything after ?since=), then every new line as it is
// written, across restarts of the instance, until the client leaves or the
// instance is deleted (a final state frame, then a normal close). Text
// frames carry one line each; ?format=json frames are api.LiveLogFrame, and
// with ?batch=1 consecutive lines share one "lines" frame.
func (m *Master) handleLiveLog(c *gin.Context) {
	in := m.instanceOf(c)
	if in == nil {
		return
	}
	pos := logs.Position{}
	if s, ok := c.GetQuery("since"); ok {
		seq, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			fail(c, universe.Errorf(universe.EINVALID, "since must be a sequence number"))
			return
		}
		pos.Since, pos.HasSince = seq, true
	} else {
		n, err := linesParam(c)
		if err != nil {
			fail(c, err)
			return
		}
		pos.Lines = n
	}
	var asJSON, batch bool
	switch c.Query("format") {
	case "", "text":
	case "json":
		asJSON = true
	default:
		fail(c, universe.Errorf(universe.EINVALID, "format must be text or json"))
		return
	}
	switch c.Query("batch") {
	case "", "0", "false":
	case "1", "true":
		if !asJSON {
			fail(c, universe.Errorf(universe.EINVALID, "batch=1 needs format=json"))
			return
		}
		batch = true
	default:
		fail(c, universe.Errorf(universe.EINVALID, "batch must be 0 or 1"))
		return
	}
	m.serveWS(c, "live-log", 1024, func(ctx context.Context, conn *websocket.Conn) error {
		ctx = conn.CloseRead(ctx) // nothing is read from the client but control frames
		sub, backlog := in.Log().Subscribe(pos)
		defer sub.Close()
		m.metrics.liveLogSubs.Inc()
		defer m.metrics.liveLogSubs.Dec()
		s := &liveLogSession{conn: conn, log: in.Log(), json: asJSON, batch: batch}
		if asJSON {
			info := in.Info()
			if err := s.send(ctx, logs.Event{Kind: logs.KindState, Info: &info}, false); err != nil {
				return err
			}
		}
		if err := s.sendAll(ctx, backlog, false); err != nil {
			return err
		}
		for {
			evs, ok := sub.Next(ctx)
			if !ok {
				return ctx.Err() // nil when the log ended: the instance was deleted
			}
			if err := s.sendAll(ctx, evs, true); err != nil {
				return err
			}
		}
	})
}

type liveLogSession struct {
	conn  *websocket.Conn
	log   *logs.Log
	json  bool
	batch bool   // lines go out together in "lines" frames
	buf   []byte // the frame being built
	n     int    // lines in buf (batch mode)
}

// liveLogFillBytes bounds one read from the log when a gap is filled.
const liveLogFillBytes = 256 << 10

// errSlowClient ends a text-mode session that fell behind further than the
// log files go back: its text frames have no way to say that lines are
// missing.
var errSlowClient = &websocket.CloseError{Code: websocket.StatusPolicyViolation, Reason: "client too slow: lines were dropped; reconnect with ?since= or use ?format=json"}

// sendAll writes a batch of events under one write deadline (a timer per
// frame costs more than the frame); live is false for the backlog. A gap
// (the client fell behind, or ?since= is older than the ring) is filled
// from the log files where they still hold the lines; only what they lack
// goes out as a gap.
func (s *liveLogSession) sendAll(ctx context.Context, evs []logs.Event, live bool) error {
	if len(evs) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, liveLogWriteTimeout)
	defer cancel()
	for _, e := range evs {
		var err error
		switch e.Kind {
		case logs.KindLine:
			err = s.line(wctx, e.Line)
		case logs.KindGap:
			if err = s.flush(wctx); err == nil {
				err = s.fill(ctx, e, live)
			}
		default:
			if err = s.flush(wctx); err == nil {
				err = s.send(wctx, e, live)
			}
		}
		if err != nil {
			return err
		}
	}
	return s.flush(wctx)
}

// fill sends the lines of gap e that the log still has, in chunks with a
// write deadline each, and a gap event for those it lacks.
func (s *liveLogSession) fill(ctx context.Context, e logs.Event, live bool) error {
	from := e.From
	for from <= e.To {
		lines := s.log.Read(from, e.To+1, liveLogFillBytes)
		if len(lines) == 0 {
			break
		}
		wctx, cancel := context.WithTimeout(ctx, liveLogWriteTimeout)
		for _, ln := range lines {
			var err error
			if ln.Seq > from {
				if err = s.flush(wctx); err == nil {
					err = s.send(wctx, logs.Event{Kind: logs.KindGap, From: from, To: ln.Seq - 1}, live)
				}
			}
			if err == nil {
				err = s.line(wctx, ln)
			}
			if err != nil {
				cancel()
				return err
			}
			from = ln.Seq + 1
		}
		err := s.flush(wctx)
		cancel()
		if err != nil {
			return err
		}
	}
	if from > e.To {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, liveLogWriteTimeout)
	defer cancel()
	return s.send(wctx, logs.Event{Kind: logs.KindGap, From: from, To: e.To}, live)
}

// line sends one line, or adds it to the batch frame being built:
// consecutive lines share a frame of at most api.LiveLogBatchBytes.
func (s *liveLogSession) line(ctx context.Context, ln api.LogLine) error {
	if !s.batch {
		return s.send(ctx, logs.Event{Kind: logs.KindLine, Line: ln}, true)
	}
	const head = `{"type":"lines","lines":[`
	if s.n == 0 {
		s.buf = append(s.buf[:0], head...)
	} else {
		s.buf = append(s.buf, ',')
	}
	mark := len(s.buf)
	s.buf = appendLineFrame(s.buf, ln)
	s.n++
	if len(s.buf)+2 <= api.LiveLogBatchBytes || s.n == 1 {
		return nil
	}
	// Over the bound: this line opens the next frame.
	rest := append([]byte(nil), s.buf[mark:]...)
	s.buf = s.buf[:mark-1]
	s.n--
	if err := s.flush(ctx); err != nil {
		return err
	}
	s.buf = append(append(s.buf[:0], head...), rest...)
	s.n = 1
	return nil
}

// flush writes the batch frame being built, if any.
func (s *liveLogSession) flush(ctx context.Context) error {
	if s.n == 0 {
		return nil
	}
	s.buf = append(s.buf, ']', '}')
	s.n = 0
	return s.conn.Write(ctx, websocket.MessageText, s.buf)
}

// send writes one event as its own frame; live is false for the backlog.
func (s *liveLogSession) send(ctx context.Context, e logs.Event, live bool) error {
	var data []byte
	if s.json {
		var f api.LiveLogFrame
		switch e.Kind {
		case logs.KindLine:
			// The hot path: appended by hand, no reflection.
			s.buf = appendLineFrame(s.buf[:0], e.Line)
			data = s.buf
		case logs.KindGap:
			f = api.LiveLogFrame{Type: api.FrameGap, From: e.From, To: e.To}
		case logs.KindState:
			f = api.LiveLogFrame{Type: api.FrameState, State: e.Info.State, Deleted: e.Final, Instance: e.Info}
		}
		if data == nil {
			b, err := json.Marshal(f)
			if err != nil {
				return err
			}
			data = b
		}
	} else {
		switch e.Kind {
		case logs.KindLine:
			data = append(s.buf[:0], e.Line.Line...)
			s.buf = data
		case logs.KindGap:
			if !live {
				// ?since= older than the files: say so in-band, then go on.
				data = []byte("[universe] lines " + strconv.FormatUint(e.From, 10) + " to " + strconv.FormatUint(e.To, 10) + " are no longer kept")
				break
			}
			_ = s.conn.Close(errSlowClient.Code, errSlowClient.Reason)
			return errSlowClient
		case logs.KindState:
			return nil // text clients read lines only
		}
	}
	return s.conn.Write(ctx, websocket.MessageText, data)
}

// appendLineFrame appends {"seq":..,"ts":..,"stream":"..","line":".."}, as
// encoding/json would write api.LiveLogFrame for a line.
func appendLineFrame(b []byte, l api.LogLine) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, l.Seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, l.TS, 10)
	b = append(b, `,"stream":`...)
	b = api.AppendJSONString(b, l.Stream)
	b = append(b, `,"line":`...)
	b = api.AppendJSONString(b, l.Line)
	return append(b, '}')
}
