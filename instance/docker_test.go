package instance

import (
	"testing"

	"github.com/universe-orchestrator/universe/instance/runtime"
)

func TestParseMount(t *testing.T) {
	roots := []string{"/srv/games", "/opt/shared"}
	for _, tc := range []struct {
		in   string
		want runtime.Mount
		ok   bool
	}{
		{"/srv/games/maps:/data/maps", runtime.Mount{Host: "/srv/games/maps", Container: "/data/maps"}, true},
		{"/srv/games:/games:ro", runtime.Mount{Host: "/srv/games", Container: "/games", ReadOnly: true}, true},
		{"/opt/shared/x:/x:rw", runtime.Mount{Host: "/opt/shared/x", Container: "/x"}, true},
		{"/srv/gamesX:/x", runtime.Mount{}, false},            // a sibling, not inside
		{"/srv/games/../../etc:/etc", runtime.Mount{}, false}, // escapes
		{"/etc:/etc", runtime.Mount{}, false},
		{"relative:/x", runtime.Mount{}, false},
		{"/srv/games:relative", runtime.Mount{}, false},
		{"/srv/games:/x:rx", runtime.Mount{}, false},
		{"/srv/games", runtime.Mount{}, false},
	} {
		got, err := ParseMount(tc.in, roots)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseMount(%q) = %+v, %v; want %+v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if _, err := ParseMount("/srv/games:/x", nil); err == nil {
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
