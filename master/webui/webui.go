// Package webui holds the dashboard's templates and assets, embedded in
// the binary: pages are rendered on the server (usable before any script
// runs) and small plain JavaScript modules add the live parts. Nothing is
// loaded from elsewhere: masters run air-gapped.
package webui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed templates/*.html templates/parts/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Assets is the folder of static files served under /ui/assets/.
func Assets() fs.FS {
	sub, err := fs.Sub(assetFS, "assets")
	if err != nil {
		panic(err) // the embedded tree always has it
	}
	return sub
}

var funcs = template.FuncMap{
	"ansi": ANSI,
	"ms": func(v any) string {
		t := asTime(v)
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"ago": func(v any) string {
		t := asTime(v)
		if t.IsZero() {
			return "—"
		}
		return Ago(time.Since(t))
	},
	"bytes": HumanBytes,
	"lower": strings.ToLower,
	"join":  strings.Join,
	"has":   slices.Contains[[]string],
	"deref": func(p *int64) string {
		if p == nil {
			return "—"
		}
		return fmt.Sprint(*p)
	},
	"derefInt": func(p *int) string {
		if p == nil {
			return "—"
		}
		return fmt.Sprint(*p)
	},
}

// Pages renders the dashboard's pages. Each page is its own template set:
// the layout plus the page's "content".
type Pages struct {
	sets    map[string]*template.Template
	bufPool sync.Pool
}

// Parse builds every page once; a broken template is a programming error.
func Parse() (*Pages, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &Pages{sets: map[string]*template.Template{}}
	p.bufPool.New = func() any { return new(bytes.Buffer) }
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts/*.html", n)
		if err != nil {
			return nil, fmt.Errorf("page %s: %w", base, err)
		}
		p.sets[base] = t
	}
	return p, nil
}

// Render writes page name with data to w. The page is rendered into a
// buffer first: a template error never leaves half a page.
func (p *Pages) Render(w io.Writer, name string, data any) error {
	t, ok := p.sets[name]
	if !ok {
		return fmt.Errorf("no page %q", name)
	}
	buf := p.bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			p.bufPool.Put(buf)
		}
	}()
	if err := t.ExecuteTemplate(buf, "layout.html", data); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// asTime reads epoch milliseconds or a time.Time; zero stays zero.
func asTime(v any) time.Time {
	switch x := v.(type) {
	case int64:
		if x != 0 {
			return time.UnixMilli(x)
		}
	case time.Time:
		return x
	}
	return time.Time{}
}

// Ago says how long ago d was, coarsely.
func Ago(d time.Duration) string {
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// HumanBytes prints n bytes in binary units.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for x := n / unit; x >= unit; x /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// InstanceRow is one row of the instances table.
type InstanceRow struct {
	ID, Configuration, State, Transition, Node, Reason string
	Port, Players, MaxPlayers                          int
	StartedAt                                          int64 // epoch ms
	Draining, Full                                     bool
}

// InstanceRows renders the rows of the instances table. It is the one
// part of a page that grows with the fleet, so it is written out here
// rather than through html/template's reflection: a thousand rows render
// in a fraction of the time (BenchmarkDashboardRender). Every value is
// escaped.
func InstanceRows(rows []InstanceRow, now time.Time) template.HTML {
	var b strings.Builder
	b.Grow(len(rows) * 700)
	esc := template.HTMLEscapeString
	for _, r := range rows {
		id := esc(r.ID)
		state := esc(r.State)
		b.WriteString(`<tr data-id="`)
		b.WriteString(id)
		b.WriteString(`"><td class="check"><input type="checkbox" name="id" value="`)
		b.WriteString(id)
		b.WriteString(`" aria-label="Select `)
		b.WriteString(id)
		b.WriteString(`"></td><td><a href="/ui/instances/`)
		b.WriteString(esc(url.PathEscape(r.ID)))
		b.WriteString(`" class="mono">`)
		b.WriteString(id)
		b.WriteString(`</a></td><td>`)
		b.WriteString(esc(r.Configuration))
		b.WriteString(`</td><td><span class="badge" data-state="`)
		b.WriteString(state)
		b.WriteString(`" data-cell="state">`)
		b.WriteString(state)
		if r.Transition != "" {
			b.WriteString(" · ")
			b.WriteString(esc(r.Transition))
		}
		b.WriteString(`</span></td><td class="hide-sm" data-cell="node">`)
		b.WriteString(esc(r.Node))
		b.WriteString(`</td><td class="hide-sm">`)
		if r.Port > 0 {
			b.WriteString(strconv.Itoa(r.Port))
		} else {
			b.WriteString("—")
		}
		b.WriteString(`</td><td class="hide-sm" data-cell="players">`)
		b.WriteString(strconv.Itoa(r.Players))
		if r.MaxPlayers > 0 {
			b.WriteString(" / ")
			b.WriteString(strconv.Itoa(r.MaxPlayers))
		}
		switch {
		case r.Draining:
			b.WriteString(" · draining")
		case r.Full:
			b.WriteString(" · full")
		}
		b.WriteString(`</td><td class="hide-sm" data-cell="started">`)
		if r.StartedAt > 0 {
			b.WriteString(Ago(now.Sub(time.UnixMilli(r.StartedAt))))
		} else {
			b.WriteString("—")
		}
		b.WriteString(`</td><td class="hide-sm wrap hint" data-cell="reason">`)
		b.WriteString(esc(r.Reason))
		b.WriteString("</td></tr>\n")
	}
	return template.HTML(b.String())
}
