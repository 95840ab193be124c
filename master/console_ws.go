package master

import (
	"context"
	"encoding/json"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
)

// handleConsoleWS serves WS /api/console: each text frame from the client
// is one command line; the output comes back as one text frame per line,
// then an end-of-command frame (see api.ConsoleEOT and the README). With
// ?format=json every frame is an api.ConsoleFrame.
func (m *Master) handleConsoleWS(c *gin.Context) {
	format := c.DefaultQuery("format", "text")
	if format != "text" && format != "json" {
		fail(c, universe.Errorf(universe.EINVALID, "format must be text or json"))
		return
	}
	k := callerKey(c)
	m.serveWS(c, "console", 64<<10, func(ctx context.Context, conn *websocket.Conn) error {
		for {
			typ, data, err := conn.Read(ctx)
			if err != nil {
				return err
			}
			if typ != websocket.MessageText {
				return conn.Close(websocket.StatusUnsupportedData, "send commands as text frames")
			}
			if !utf8.Valid(data) {
				// RFC 6455 8.1: text frames are UTF-8; anything else fails the connection with 1007.
				return conn.Close(websocket.StatusInvalidFramePayloadData, "text frames must be UTF-8")
			}
			w := &frameWriter{ctx: ctx, conn: conn, json: format == "json"}
			line := string(data)
			cmdErr := m.execute(ctx, k, "websocket", line, w)
			if w.err != nil {
				return w.err
			}
			end := api.ConsoleEnd{Type: "end", Command: line, OK: cmdErr == nil, Error: universe.ErrorMessage(cmdErr)}
			b, _ := json.Marshal(end)
			if format == "text" {
				b = append([]byte(api.ConsoleEOT), b...)
			}
			if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
				return err
			}
		}
	})
}

// frameWriter sends each output line as a frame as soon as it is written.
type frameWriter struct {
	ctx  context.Context
	conn *websocket.Conn
	json bool
	err  error
}

func (w *frameWriter) WriteLine(line string) {
	if w.err != nil {
		return
	}
	b := []byte(line)
	if w.json {
		b, _ = json.Marshal(api.ConsoleFrame{Type: "output", Line: line})
	}
	w.err = w.conn.Write(w.ctx, websocket.MessageText, b)
}
