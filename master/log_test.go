package master_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// logBuffer collects the master's log for assertions, safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger(l *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// The dashboard's static files served well are not access-logged (they
// filled the console above its prompt); a failed one and every other
// request are.
func TestStaticAssetsAreNotAccessLogged(t *testing.T) {
	e := newEnv(t, nil)
	for _, p := range []string{"/ui/assets/app.css", "/ui/assets/nope.js", "/api/ping"} {
		r := e.do("GET", p, "", "")
		r.Body.Close()
	}
	logs := e.logs.String()
	if strings.Contains(logs, "path=/ui/assets/app.css") {
		t.Errorf("a static file served is in the access log:\n%s", logs)
	}
	if !strings.Contains(logs, "path=/ui/assets/nope.js") || !strings.Contains(logs, "path=/api/ping") {
		t.Errorf("the access log lacks a failed asset or an API call:\n%s", logs)
	}
}
