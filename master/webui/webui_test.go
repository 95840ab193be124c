package webui

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestANSI(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain", "plain"},
		{"<b>&amp;", "&lt;b&gt;&amp;amp;"},
		{"\x1b[32mgreen\x1b[0m done", `<span class="f2">green</span> done`},
		{"\x1b[1;31mbold red", `<span class="f1 bold">bold red</span>`},
		{"\x1b[92mbright\x1b[39m", `<span class="f10">bright</span>`},
		{"\x1b[38;5;208morange\x1b[0m", "orange"}, // 256 colours: dropped, text kept
		{"\x1b[2Kcleared", "cleared"},
		{"\x1b]0;title\x07after", "after"},
		{"a\x00b\x07c\td", "abc\td"},
		{"cut \x1b[", "cut "},
		{"\x1b", ""},
	} {
		if got := string(ANSI(c.in)); got != c.want {
			t.Errorf("ANSI(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzANSI: whatever an instance prints, the HTML has no escape or control
// character and no markup but the spans ANSI itself writes.
func FuzzANSI(f *testing.F) {
	for _, s := range []string{"\x1b[31mx", "<script>", "\x1b]8;;http://x\x1b\\link", "\x1b[38;2;1;2;3m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := string(ANSI(s))
		for _, r := range out {
			if r < 0x20 && r != '\t' {
				t.Fatalf("control character %q in %q", r, out)
			}
		}
		rest := strings.NewReplacer(`<span class="`, "", `">`, "", "</span>", "").Replace(out)
		if strings.ContainsAny(rest, "<>") {
			t.Fatalf("markup from the input in %q", out)
		}
	})
}

func TestInstanceRowsEscape(t *testing.T) {
	out := string(InstanceRows([]InstanceRow{{ID: `a"><script>`, Configuration: "<c>", State: "ONLINE", Reason: "x & y", Port: 25565, StartedAt: time.Now().UnixMilli()}}, time.Now()))
	if strings.Contains(out, "<script>") || strings.Contains(out, "<c>") || !strings.Contains(out, "x &amp; y") {
		t.Fatalf("not escaped: %s", out)
	}
}

func TestPagesParse(t *testing.T) {
	p, err := Parse()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"signin", "instances", "instance", "configurations", "configuration", "templates", "keys", "audit", "nodes", "message"} {
		if _, ok := p.sets[name]; !ok {
			t.Errorf("no page %s", name)
		}
	}
	if err := p.Render(io.Discard, "nope", nil); err == nil {
		t.Error("an unknown page rendered")
	}
}

// TestAssetsBudget: the embedded assets stay within 150 KB (uncompressed).
func TestAssetsBudget(t *testing.T) {
	total := 0
	walk := func(dir string) {
		entries, err := assetFS.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, _ := assetFS.ReadFile(dir + "/" + e.Name())
			total += len(b)
		}
	}
	walk("assets")
	entries, _ := templateFS.ReadDir("templates")
	for _, e := range entries {
		b, _ := templateFS.ReadFile("templates/" + e.Name())
		total += len(b)
	}
	t.Logf("embedded assets and templates: %d bytes", total)
	if total > 150_000 {
		t.Errorf("embedded assets are %d bytes, over the 150 KB budget", total)
	}
}
