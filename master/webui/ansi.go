package webui

import (
	"html/template"
	"strconv"
	"strings"
)

// ANSI renders a log line as HTML: SGR colours and bold become spans with
// classes (the stylesheet has the palette), every other escape sequence is
// dropped, and the text is escaped. A line never shows raw escapes.
func ANSI(line string) template.HTML {
	var b strings.Builder
	b.Grow(len(line) + 16)
	open := false
	var fg, bg string
	bold := false
	flush := func() {
		if open {
			b.WriteString("</span>")
			open = false
		}
		var cls []string
		if fg != "" {
			cls = append(cls, "f"+fg)
		}
		if bg != "" {
			cls = append(cls, "b"+bg)
		}
		if bold {
			cls = append(cls, "bold")
		}
		if len(cls) > 0 {
			b.WriteString(`<span class="`)
			b.WriteString(strings.Join(cls, " "))
			b.WriteString(`">`)
			open = true
		}
	}
	text := 0
	for i := 0; i < len(line); {
		c := line[i]
		if c != 0x1b {
			if c < 0x20 && c != '\t' {
				i++ // other control characters are dropped
				continue
			}
			j := i
			for j < len(line) && line[j] != 0x1b && (line[j] >= 0x20 || line[j] == '\t') {
				j++
			}
			template.HTMLEscape(&b, []byte(line[i:j]))
			text += j - i
			i = j
			continue
		}
		// ESC: CSI "ESC [ params final", OSC "ESC ] ... BEL|ST", or ESC + one char.
		if i+1 >= len(line) {
			break
		}
		switch line[i+1] {
		case '[':
			j := i + 2
			for j < len(line) && (line[j] < 0x40 || line[j] > 0x7e) {
				j++
			}
			if j >= len(line) {
				i = len(line)
				continue
			}
			if line[j] == 'm' {
				sgr(line[i+2:j], &fg, &bg, &bold)
				flush()
			}
			i = j + 1
		case ']':
			j := i + 2
			for j < len(line) && line[j] != 0x07 && !(line[j] == 0x1b && j+1 < len(line) && line[j+1] == '\\') {
				j++
			}
			if j < len(line) && line[j] == 0x1b {
				j++
			}
			i = j + 1
		default:
			i += 2
		}
	}
	if open {
		b.WriteString("</span>")
	}
	return template.HTML(b.String())
}

// sgr applies the parameters of one "ESC [ ... m" sequence.
func sgr(params string, fg, bg *string, bold *bool) {
	if params == "" {
		params = "0"
	}
	ps := strings.Split(params, ";")
	for i := 0; i < len(ps); i++ {
		n, err := strconv.Atoi(ps[i])
		if err != nil {
			continue
		}
		switch {
		case n == 0:
			*fg, *bg, *bold = "", "", false
		case n == 1:
			*bold = true
		case n == 22:
			*bold = false
		case n >= 30 && n <= 37:
			*fg = strconv.Itoa(n - 30)
		case n >= 90 && n <= 97:
			*fg = strconv.Itoa(n - 90 + 8)
		case n == 39:
			*fg = ""
		case n >= 40 && n <= 47:
			*bg = strconv.Itoa(n - 40)
		case n >= 100 && n <= 107:
			*bg = strconv.Itoa(n - 100 + 8)
		case n == 49:
			*bg = ""
		case n == 38 || n == 48: // 256 colours / true colour: skip the arguments
			if i+1 < len(ps) && ps[i+1] == "5" {
				i += 2
			} else if i+1 < len(ps) && ps[i+1] == "2" {
				i += 4
			}
		}
	}
}
