package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/universe-orchestrator/universe/api"
)

// dial opens a WebSocket to path.
func (c *Client) dial(ctx context.Context, path string, query url.Values) (*websocket.Conn, error) {
	u := c.endpoint(path, query)
	u = "ws" + strings.TrimPrefix(u, "http") // http→ws, https→wss
	h := http.Header{}
	c.authorize(h)
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h, HTTPClient: c.wsHTTP()})
	if err != nil {
		if resp != nil && resp.StatusCode >= 300 {
			defer resp.Body.Close()
			return nil, errorFrom(resp)
		}
		return nil, transportError(err)
	}
	conn.SetReadLimit(1 << 20)
	return conn, nil
}

// wsHTTP is the HTTP client of WebSocket handshakes: the configured one
// without its overall timeout (a stream lives as long as its context).
func (c *Client) wsHTTP() *http.Client {
	hc := *c.http
	hc.Timeout = 0
	return &hc
}

// LogStream is an open live-log WebSocket in JSON format.
type LogStream struct {
	conn    *websocket.Conn
	ctx     context.Context
	pending []api.LogLine // lines of a batched frame not returned yet
	buf     bytes.Buffer  // the message being read, reused (the frame's strings are copies)
	// Last is the sequence number of the last line received.
	Last uint64
}

// LiveLogOptions says where a live-log starts: after Since (a sequence
// number; HasSince) or with the last Lines lines (0: the master's default).
type LiveLogOptions struct {
	Since    uint64
	HasSince bool
	Lines    int
}

// LiveLog opens WS /api/instances/{id}/live-log?format=json&batch=1. The
// first frame is the instance's state; then the backlog; then lines as they
// come. Next hands out the lines of a batched frame one by one.
func (c *Client) LiveLog(ctx context.Context, id string, opt LiveLogOptions) (*LogStream, error) {
	q := url.Values{"format": {"json"}, "batch": {"1"}}
	if opt.HasSince {
		q.Set("since", strconv.FormatUint(opt.Since, 10))
	} else if opt.Lines > 0 {
		q.Set("lines", strconv.Itoa(opt.Lines))
	}
	conn, err := c.dial(ctx, "/api/instances/"+seg(id)+"/live-log", q)
	if err != nil {
		return nil, err
	}
	s := &LogStream{conn: conn, ctx: ctx}
	if opt.HasSince {
		s.Last = opt.Since
	}
	return s, nil
}

// ErrLogEnded is returned by Next when the instance was deleted.
var ErrLogEnded = errors.New("the instance was deleted")

// Next returns the next frame. With the frame that says the instance was
// deleted it returns ErrLogEnded; when the connection ends (the master
// stopping included), another error.
func (s *LogStream) Next() (api.LiveLogFrame, error) {
	var f api.LiveLogFrame
	for len(s.pending) == 0 {
		_, r, err := s.conn.Reader(s.ctx)
		if err == nil {
			s.buf.Reset()
			_, err = s.buf.ReadFrom(r)
		}
		if err != nil {
			// A normal closure without the deleted frame is the master
			// shutting down: the log goes on elsewhere or later.
			return f, err
		}
		if err := decodeFrame(s.buf.Bytes(), &f); err != nil {
			return f, err
		}
		if f.Type != api.FrameLines {
			break
		}
		s.pending, f = f.Lines, api.LiveLogFrame{}
	}
	if len(s.pending) > 0 {
		l := s.pending[0]
		s.pending = s.pending[1:]
		f = api.LiveLogFrame{Seq: l.Seq, TS: l.TS, Stream: l.Stream, Line: l.Line}
	}
	if f.Type == "" && f.Seq > s.Last {
		s.Last = f.Seq
	}
	if f.Type == api.FrameState && f.Deleted {
		return f, ErrLogEnded
	}
	return f, nil
}

// Close closes the stream.
func (s *LogStream) Close() error { return s.conn.Close(websocket.StatusNormalClosure, "") }

// FollowOptions tune Follow.
type FollowOptions struct {
	LiveLogOptions
	// OnReconnect is called before each reconnection attempt with the
	// error that ended the previous connection.
	OnReconnect func(err error, attempt int)
	// OnReconnected is called when a reconnection succeeded, with the
	// sequence number it resumes after.
	OnReconnected func(since uint64)
	// MaxBackoff caps the wait between attempts (default 5 s).
	MaxBackoff time.Duration
}

// Follow streams the instance's log to fn, frame by frame, until ctx ends,
// the instance is deleted (ErrLogEnded), fn returns an error, or the master
// answers an error that retrying cannot mend (401, 403, 404). A dropped
// connection or a restarting master is retried with backoff, resuming
// after the last line delivered: no line is lost or delivered twice.
func (c *Client) Follow(ctx context.Context, id string, opt FollowOptions, fn func(api.LiveLogFrame) error) error {
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 5 * time.Second
	}
	lo := opt.LiveLogOptions
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		s, err := c.LiveLog(ctx, id, lo)
		if err == nil {
			if attempt > 0 && opt.OnReconnected != nil {
				opt.OnReconnected(lo.Since)
			}
			backoff = 100 * time.Millisecond
			for {
				var f api.LiveLogFrame
				f, err = s.Next()
				if err == nil || errors.Is(err, ErrLogEnded) {
					if f.Type == "" && f.Seq != 0 && lo.HasSince && f.Seq <= lo.Since {
						continue // already delivered before the reconnect
					}
					if ferr := fn(f); ferr != nil {
						_ = s.Close()
						return ferr
					}
					if f.Type == "" && f.Seq != 0 {
						lo = LiveLogOptions{Since: f.Seq, HasSince: true}
					}
				}
				if err != nil {
					break
				}
			}
			_ = s.Close()
			if errors.Is(err, ErrLogEnded) {
				return ErrLogEnded
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch StatusOf(err) {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusBadRequest:
			if StatusOf(err) == http.StatusNotFound && lo.HasSince {
				return ErrLogEnded // it existed: it was deleted while we were away
			}
			return err
		}
		wait := backoff
		var e *Error
		if errors.As(err, &e) && e.RetryAfter > wait {
			wait = e.RetryAfter
		}
		if opt.OnReconnect != nil {
			opt.OnReconnect(err, attempt+1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(backoff*2, opt.MaxBackoff)
	}
}

// Console is an open console WebSocket (WS /api/console?format=json).
type Console struct {
	conn *websocket.Conn
	ctx  context.Context
}

// Console opens the master's console.
func (c *Client) Console(ctx context.Context) (*Console, error) {
	conn, err := c.dial(ctx, "/api/console", url.Values{"format": {"json"}})
	if err != nil {
		return nil, err
	}
	return &Console{conn: conn, ctx: ctx}, nil
}

// Run sends one command line and calls out with each output line until
// the command ends; it returns the command's error, if it failed.
func (k *Console) Run(line string, out func(string)) error {
	if err := k.conn.Write(k.ctx, websocket.MessageText, []byte(line)); err != nil {
		return err
	}
	for {
		_, b, err := k.conn.Read(k.ctx)
		if err != nil {
			return err
		}
		var f api.ConsoleFrame
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		switch f.Type {
		case "end":
			if f.OK != nil && !*f.OK {
				return &Error{Message: f.Error}
			}
			return nil
		default:
			out(f.Line)
		}
	}
}

// Close closes the console.
func (k *Console) Close() error { return k.conn.Close(websocket.StatusNormalClosure, "") }
