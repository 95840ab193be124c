package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/universe-orchestrator/universe/api"
)

// Users, grants and `universe login` against a real master: an admin makes
// a member and grants them a configuration; the member signs in with the
// CLI (the key lands in a 0600 config file, the password nowhere in the
// output), sees what the grant allows and is refused the rest; revoking
// the grant and disabling the user take effect at once.
func TestCLIUsersGrantsAndLogin(t *testing.T) {
	m, _ := newCLIMaster(t)
	const pw = "correct horse battery"
	step := func(token, stdin string, code int, want string, args ...string) string {
		t.Helper()
		got, out, errOut := m.run(token, stdin, args...)
		if got != code || !strings.Contains(out+errOut, want) {
			t.Fatalf("%v: exit %d (want %d), %q %q (want %q)", args, got, code, out, errOut, want)
		}
		if strings.Contains(out+errOut, pw) {
			t.Fatalf("%v: the password is in the output", args)
		}
		return out
	}
	step(m.admin, `{"name":"lobby","command":"sleep 60"}`, 0, "Applied", "config", "apply", "-f", "-")
	step(m.admin, pw+"\n", 0, "Created user ann (member)", "user", "create", "ann")
	step(m.admin, "short\n", 1, "10", "user", "create", "bob")
	step(m.admin, "", 0, "ann", "user", "list")
	out := step(m.admin, "", 0, "", "grant", "add", "ann", "--configuration", "lobby", "config.read,instance.read", "-o", "json")
	var g api.Grant
	if err := json.Unmarshal([]byte(out), &g); err != nil || g.ID == "" || g.Configuration != "lobby" {
		t.Fatalf("grant add: %q", out)
	}
	step(m.admin, "", 2, "--instance ID or --configuration NAME", "grant", "add", "ann", "config.read")
	step(m.admin, "", 1, "not a permission", "grant", "add", "ann", "--configuration", "lobby", "fly.away")
	step(m.admin, "", 0, "configuration lobby", "grant", "list", "ann")

	// ann signs in: a wrong password is refused (exit 3), the right one
	// saves a key of hers in the config file.
	step("", "wrong password!\n\n", exitUnauthorized, "sign-in failed", "login", "ann")
	step("", pw+"\n\n", 0, "Signed in to "+m.url+" as ann", "login", "ann", "--label", "ann-laptop")
	conf := filepath.Join(m.home, ".config", "universe", "config")
	st, err := os.Stat(conf)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the config file: %v %v", st, err)
	}
	b, _ := os.ReadFile(conf)
	if !strings.Contains(string(b), "url = "+m.url) || !strings.Contains(string(b), "token = unv_") || strings.Contains(string(b), pw) {
		t.Fatalf("the config file holds: %q", b)
	}
	step("", "", 0, "ann-laptop", "auth", "verify")
	step("", "", 0, "lobby", "config", "list")
	step("", "", exitUnauthorized, "not allowed: this needs an admin", "user", "list")
	step("", "", exitUnauthorized, "not allowed: this needs config.read", "config", "show", "other-config")

	// Revoking the grant narrows her at once; disabling her ends her key.
	step(m.admin, "", 0, "Revoked grant", "grant", "revoke", "ann", g.ID)
	step("", "", exitUnauthorized, "this needs config.read", "config", "list")
	step(m.admin, "", 0, "Disabled ann", "user", "disable", "ann")
	step("", "", exitUnauthorized, "", "auth", "verify")
	step(m.admin, "", 0, "Enabled ann", "user", "enable", "ann")
	step(m.admin, "another long password\n", 0, "Password of ann changed", "user", "passwd", "ann")
	step(m.admin, "", 0, `"admin": false`, "user", "info", "ann", "-o", "json")
	step(m.admin, "", 0, "Deleted user ann", "user", "delete", "ann")
	step(m.admin, "", 1, "", "user", "info", "ann")
}

// The PLAYERS column, `instance drain` and `config scaling` against a
// real master.
func TestCLIScalingCommands(t *testing.T) {
	m, _ := newCLIMaster(t)
	step := func(code int, want string, args ...string) string {
		t.Helper()
		got, out, errOut := m.run(m.admin, "", args...)
		if got != code || !strings.Contains(out+errOut, want) {
			t.Fatalf("%v: exit %d (want %d), %q %q (want %q)", args, got, code, out, errOut, want)
		}
		return out
	}
	if code, _, errOut := m.run(m.admin, `{"name":"lobby","command":"exec sleep 600","availablePorts":{"min":22140,"max":22144},"stopTimeoutSeconds":1,"scaling":{"readyHeadroom":0}}`, "config", "apply", "-f", "-"); code != 0 {
		t.Fatalf("config apply: %s", errOut)
	}
	out := step(0, `"state": "ONLINE"`, "instance", "create", "lobby", "-o", "json")
	var in api.InstanceInfo
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("PUT", m.url+"/api/instances/"+in.ID+"/state", strings.NewReader(`{"state":"ONLINE","players":3,"maxPlayers":10}`))
	req.Header.Set("Authorization", "Bearer "+m.admin)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("report: %v %v", resp, err)
	}
	step(0, "3/10", "instance", "list")
	step(0, "Joinable:", "instance", "info", in.ID)
	step(0, "Draining "+in.ID, "instance", "drain", in.ID, "--deadline", "10m")
	step(0, "3/10 draining", "instance", "list")
	step(2, "--deadline", "instance", "drain", in.ID, "--deadline", "soon")
	step(1, "", "instance", "drain", "nope")
	step(0, "desired", "config", "scaling", "lobby")
	step(1, "", "config", "scaling", "nope")
}
