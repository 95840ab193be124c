package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestUserCreateOffline: the first admin is made like the first key, on a
// data directory before the master runs, its password read from stdin
// (never a flag); a weak one is refused. The master then signs it in; its
// console's "user create" shows a generated password once, which the
// audit log keeps masked.
func TestUserCreateOffline(t *testing.T) {
	dir := t.TempDir()
	runWith := func(stdin string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, noEnv, strings.NewReader(stdin), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, errOut := runWith("short\n", "user", "create", "root", "--admin", "--data", dir); code != exitUsage || !strings.Contains(errOut, "10 characters") {
		t.Fatalf("a weak password: %d %s", code, errOut)
	}
	if code, out, errOut := runWith("root's long password\n", "user", "create", "root", "--admin", "--data", dir); code != 0 || !strings.Contains(out, "Created user root (admin)") {
		t.Fatalf("user create: %d %s %s", code, out, errOut)
	}
	if code, _, _ := runWith("root's long password\n", "user", "create", "root", "--data", dir); code == 0 {
		t.Fatal("the same name twice")
	}
	m := startChildMaster(t, dir, freePort(t))
	req, _ := http.NewRequest("POST", m.base+"/api/login", strings.NewReader(`{"name":"root","password":"root's long password"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 || len(resp.Cookies()) == 0 {
		t.Fatalf("sign in: %v %v", resp, err)
	}
	ck := resp.Cookies()[0]
	// Signed in as the admin: the console's user create, through the
	// Commands endpoint with the session.
	cmd, _ := http.NewRequest("POST", m.base+"/api/commands/execute", strings.NewReader(`{"command":"user create mod"}`))
	cmd.Header.Set("Content-Type", "application/json")
	cmd.Header.Set("Sec-Fetch-Site", "same-origin")
	cmd.AddCookie(ck)
	cr, err := http.DefaultClient.Do(cmd)
	if err != nil || cr.StatusCode != 200 {
		t.Fatalf("user create through Commands: %v %v", cr, err)
	}
	var got struct{ Output []string }
	_ = json.NewDecoder(cr.Body).Decode(&got)
	cr.Body.Close()
	pw := ""
	for _, l := range got.Output {
		if i := strings.LastIndex(l, "): "); strings.HasPrefix(l, "Password") && i > 0 {
			pw = l[i+3:]
		}
	}
	if len(pw) < 10 {
		t.Fatalf("no generated password shown: %v", got.Output)
	}
	req, _ = http.NewRequest("POST", m.base+"/api/login", strings.NewReader(`{"name":"mod","password":"`+pw+`"}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("sign in with the generated password: %v %v", resp, err)
	}
	audit, _ := http.NewRequest("GET", m.base+"/api/audit", nil)
	audit.AddCookie(ck)
	ar, err := http.DefaultClient.Do(audit)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(ar.Body)
	ar.Body.Close()
	if strings.Contains(buf.String(), pw) || !regexp.MustCompile(`Password[^"]*\*\*\*\*`).MatchString(buf.String()) {
		t.Fatalf("the audit log holds the generated password, or not its masked line:\n%s", buf.String())
	}
}
