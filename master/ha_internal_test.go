package master

import "testing"

// A follower's reads of the replicated state wait for the writes it
// answered; its health check, metrics and static files do not.
func TestReadsStateWaits(t *testing.T) {
	for path, want := range map[string]bool{
		"/api/ping": false, "/api/metrics": false, "/ui/assets/app.js": false,
		"/api/keys": true, "/api/configurations/lobby": true, "/api/audit": true,
		"/api/cluster/masters": true, "/api/templates/lobby/base/files/a": true,
	} {
		if got := readsState(path); got != want {
			t.Errorf("%s: readsState %v, want %v", path, got, want)
		}
	}
}
