package instance

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/universe-orchestrator/universe/instance/runtime"
)

func TestParseMount(t *testing.T) {
	b := t.TempDir() // the host paths exist: a mount is checked as the path it resolves to
	for _, d := range []string{"srv/games/maps", "opt/shared/x", "srv/gamesX"} {
		if err := os.MkdirAll(filepath.Join(b, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc", filepath.Join(b, "srv/games/out")); err != nil {
		t.Fatal(err)
	}
	roots := []string{b + "/srv/games", b + "/opt/shared"}
	for _, tc := range []struct {
		in   string
		want runtime.Mount
		ok   bool
	}{
		{b + "/srv/games/maps:/data/maps", runtime.Mount{Host: b + "/srv/games/maps", Container: "/data/maps"}, true},
		{b + "/srv/games:/games:ro", runtime.Mount{Host: b + "/srv/games", Container: "/games", ReadOnly: true}, true},
		{b + "/opt/shared/x:/x:rw", runtime.Mount{Host: b + "/opt/shared/x", Container: "/x"}, true},
		{b + "/srv/gamesX:/x", runtime.Mount{}, false},            // a sibling, not inside
		{b + "/srv/games/out:/x", runtime.Mount{}, false},         // a link inside, pointing out
		{b + "/srv/games/nope:/x", runtime.Mount{}, false},        // does not exist
		{b + "/srv/games/../../etc:/etc", runtime.Mount{}, false}, // escapes
		{"/etc:/etc", runtime.Mount{}, false},
		{"relative:/x", runtime.Mount{}, false},
		{b + "/srv/games:relative", runtime.Mount{}, false},
		{b + "/srv/games:/x:rx", runtime.Mount{}, false},
		{b + "/srv/games", runtime.Mount{}, false},
	} {
		got, err := ParseMount(tc.in, roots)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseMount(%q) = %+v, %v; want %+v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if _, err := ParseMount(b+"/srv/games:/x", nil); err == nil {
		t.Error("a mount with no roots configured was accepted")
	}
}

func TestContainerURL(t *testing.T) {
	for _, tc := range []struct {
		in      string
		bridged bool
		want    string
	}{
		{"http://127.0.0.1:7000", true, "http://host.docker.internal:7000"},
		{"https://localhost:7000/", true, "https://host.docker.internal:7000/"},
		{"http://[::1]:7000", true, "http://host.docker.internal:7000"},
		{"http://10.0.0.5:7000", true, "http://10.0.0.5:7000"},
		{"http://127.0.0.1:7000", false, "http://127.0.0.1:7000"},
	} {
		if got := containerURL(tc.in, tc.bridged); got != tc.want {
			t.Errorf("containerURL(%q, %v) = %q, want %q", tc.in, tc.bridged, got, tc.want)
		}
	}
}
