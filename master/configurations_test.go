package master_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/master"
	"github.com/universe-orchestrator/universe/storage"
)

// A runtime whose program is missing is refused when the configuration is
// saved, naming the program (tmux and screen are found through PATH).
func TestConfigurationRuntimeProgramMissing(t *testing.T) {
	e := newEnv(t, nil)
	t.Setenv("PATH", t.TempDir())
	for _, rt := range []string{"tmux", "screen"} {
		resp := e.do("PUT", "/api/configurations/a", e.admin, `{"command":"true","runtime":"`+rt+`"}`)
		if resp.StatusCode != 400 {
			t.Fatalf("%s: status %d: %s", rt, resp.StatusCode, readAll(resp))
		}
		if msg, want := errorBody(t, resp), "runtime "+rt+" needs the program "+rt+", which is not installed"; !strings.Contains(msg, want) {
			t.Fatalf("%s: error %q, want %q", rt, msg, want)
		}
	}
}

func TestConfigurationValidation(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		name, path, body string
		status           int
		want             string // in the error
	}{
		{"bad name", "/api/configurations/Bad_Name", `{"command":"true"}`, 400, "name:"},
		{"name too long", "/api/configurations/" + strings.Repeat("a", 64), `{"command":"true"}`, 400, "name:"},
		{"name mismatch", "/api/configurations/a", `{"name":"b","command":"true"}`, 400, "name:"},
		{"unknown runtime", "/api/configurations/a", `{"command":"true","runtime":"kube"}`, 400, "runtime: unknown runtime \"kube\""},
		{"docker without an image", "/api/configurations/a", `{"runtime":"docker"}`, 400, "image: the docker runtime needs an image"},
		{"image without docker", "/api/configurations/a", `{"command":"true","image":"x"}`, 400, "image: image and dockerOptions are for the docker runtime only"},
		{"docker mount outside the roots", "/api/configurations/a", `{"runtime":"docker","image":"x","dockerOptions":{"mounts":["/etc:/etc"]}}`, 400, "no extra mounts are allowed"},
		{"docker pull policy", "/api/configurations/a", `{"runtime":"docker","image":"x","dockerOptions":{"imagePullPolicy":"sometimes"}}`, 400, "must be never, missing or always"},
		{"no command", "/api/configurations/a", `{}`, 400, "command: must not be empty"},
		{"min above max", "/api/configurations/a", `{"command":"true","availablePorts":{"min":30000,"max":20000}}`, 400, "availablePorts"},
		{"port zero", "/api/configurations/a", `{"command":"true","availablePorts":{"min":0,"max":10}}`, 400, "availablePorts"},
		{"port too high", "/api/configurations/a", `{"command":"true","availablePorts":{"min":1,"max":70000}}`, 400, "availablePorts"},
		{"escaping file", "/api/configurations/a", `{"command":"true","fileModifications":["../x"]}`, 400, "fileModifications"},
		{"absolute file", "/api/configurations/a", `{"command":"true","fileModifications":["/etc/passwd"]}`, 400, "fileModifications"},
		{"missing template", "/api/configurations/a", `{"command":"true","templateInstallationConfig":{"allOf":[{"group":"lobby","name":"base"}]}}`, 400, "template lobby/base does not exist"},
		{"bad policy", "/api/configurations/a", `{"command":"true","restartPolicy":"sometimes"}`, 400, "restartPolicy"},
		{"reserved env", "/api/configurations/a", `{"command":"true","environmentVariables":{"UNIVERSE_API_KEY":"x"}}`, 400, "environmentVariables"},
		{"two bad fields", "/api/configurations/a", `{"runtime":"nope"}`, 400, "command: must not be empty"},
		{"malformed", "/api/configurations/a", `{"command":`, 400, "malformed JSON"},
		{"wrong type", "/api/configurations/a", `{"command":1}`, 400, `field "command" must be a string`},
		{"huge minimum", "/api/configurations/a", `{"command":"true","minimumServiceCount":2000000000}`, 400, "minimumServiceCount: must be 0 to 10000"},
		{"minimum above the ports", "/api/configurations/a", `{"command":"true","minimumServiceCount":7,"availablePorts":{"min":30000,"max":30005}}`, 400, "more than the 6 ports"},
		{"huge maximum", "/api/configurations/a", `{"command":"true","maximumServiceCount":2000000000}`, 400, "maximumServiceCount"},
		{"the master's env, otherwise", "/api/configurations/a", `{"command":"true","environmentVariables":{"UNIVERSE_INSTANCE_ID":"x"}}`, 400, "UNIVERSE_INSTANCE_ID is set by the master (to %INSTANCE_ID%)"},
		{"the master's env, as the master sets it", "/api/configurations/b", `{"command":"true","environmentVariables":{"UNIVERSE_INSTANCE_ID":"%INSTANCE_ID%"}}`, 204, ""},
		{"unknown fields", "/api/configurations/a", `{"command":"true","privileged":true,"Foo":1}`, 400, `unknown field "Foo", "privileged"`},
		{"unknown nested field", "/api/configurations/a", `{"runtime":"docker","image":"x","dockerOptions":{"privileged":true}}`, 400, `unknown field "privileged"`},
		{"capability beyond Docker's default set", "/api/configurations/a", `{"runtime":"docker","image":"x","dockerOptions":{"capAdd":["ALL"]}}`, 400, "ALL is not in Docker's default set"},
		{"bad node label", "/api/configurations/a", `{"command":"true","nodeLabels":{"":"x"}}`, 400, "nodeLabels"},
		{"ok", "/api/configurations/a", `{"command":"true"}`, 204, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.do("PUT", tc.path, e.admin, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, readAll(resp))
			}
			if tc.want != "" {
				if msg := errorBody(t, resp); !strings.Contains(msg, tc.want) {
					t.Fatalf("error %q, want it to contain %q", msg, tc.want)
				}
			}
		})
	}
	// Defaults are filled and every field is present.
	got := decode[map[string]any](t, e.do("GET", "/api/configurations/a", e.admin, ""))
	for field, want := range map[string]any{"runtime": "process", "ramMB": 2048.0, "cpu": 100.0, "hostAddress": "127.0.0.1",
		"minimumServiceCount": 0.0, "stopTimeoutSeconds": 30.0, "restartPolicy": "never", "static": false, "stopCommand": ""} {
		if got[field] != want {
			t.Errorf("%s = %v, want %v", field, got[field], want)
		}
	}
	ports := got["availablePorts"].(map[string]any)
	if ports["min"] != 25565.0 || ports["max"] != 25570.0 {
		t.Errorf("ports %v", ports)
	}
	for _, f := range []string{"instanceGroups", "nodes", "environmentVariables", "templateInstallationConfig", "fileModifications", "properties", "additionalPorts"} {
		if _, ok := got[f]; !ok {
			t.Errorf("field %s missing", f)
		}
	}
}

func TestConfigurationDeleteAndPersistence(t *testing.T) {
	dir, tpl := t.TempDir(), t.TempDir()
	mut := func(c *master.Config) { c.DataDir, c.TemplatesDir = dir, tpl }
	e := newEnv(t, mut)
	e.putConfig("web", map[string]any{"command": "exec sleep 600", "stopTimeoutSeconds": 2,
		"availablePorts": map[string]int{"min": 21300, "max": 21309}})
	e.putConfig("idle", map[string]any{"command": "true"})
	info := e.create("web")

	if resp := e.do("DELETE", "/api/configurations/nope", e.admin, ""); resp.StatusCode != 404 {
		t.Fatalf("delete unknown: %d", resp.StatusCode)
	}
	list := decode[[]api.Configuration](t, e.do("GET", "/api/configurations", e.admin, ""))
	if len(list) != 2 || list[0].Name != "idle" || list[1].Name != "web" {
		t.Fatalf("list %+v", list)
	}

	// Restart the master: configurations and records survive; the instance
	// the graceful stop stopped starts again.
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := newEnv(t, mut)
	if resp := e2.do("GET", "/api/configurations/web", e2.admin, ""); resp.StatusCode != 200 {
		t.Fatalf("configuration lost: %d", resp.StatusCode)
	}
	e2.waitState(info.ID, "ONLINE")
	stopped := e2.create("web")
	e2.do("PATCH", "/api/instances/"+stopped.ID+"/lifecycle?target=stop", e2.admin, "")
	e2.waitState(stopped.ID, "STOPPED")

	// Without force (as the original's clients send it): 204; the live
	// instance runs on until it stops, then it is gone; a stopped one,
	// which can never start again, is gone at once.
	if resp := e2.do("DELETE", "/api/configurations/web", e2.admin, ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete with a live instance: %d, want 204", resp.StatusCode)
	}
	if resp := e2.do("GET", "/api/instances/"+stopped.ID, e2.admin, ""); resp.StatusCode != 404 {
		t.Fatalf("the stopped instance of a deleted configuration: %d, want 404", resp.StatusCode)
	}
	if got := e2.info(info.ID); got.State != "ONLINE" {
		t.Fatalf("the live instance: %s", got.State)
	}
	e2.do("PATCH", "/api/instances/"+info.ID+"/lifecycle?target=stop", e2.admin, "")
	waitUntil(t, "the stopped instance to go", 10*time.Second, func() bool {
		return e2.do("GET", "/api/instances/"+info.ID, e2.admin, "").StatusCode == 404
	})

	// With force: stopped and gone at once.
	e2.putConfig("web", map[string]any{"command": "exec sleep 600", "stopTimeoutSeconds": 2,
		"availablePorts": map[string]int{"min": 21300, "max": 21309}})
	again := e2.create("web")
	if resp := e2.do("DELETE", "/api/configurations/web?force=true", e2.admin, ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("forced delete: %d", resp.StatusCode)
	}
	if resp := e2.do("GET", "/api/instances/"+again.ID, e2.admin, ""); resp.StatusCode != 404 {
		t.Fatalf("forced delete left the instance: %d", resp.StatusCode)
	}
	if again.ProcessPid != nil && alive(int(*again.ProcessPid)) {
		t.Fatal("forced delete left the process running")
	}
}

func TestConfigReloadAndConsole(t *testing.T) {
	cfgDir := t.TempDir()
	e := newEnv(t, func(c *master.Config) { c.ConfigDir = cfgDir })
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(cfgDir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("lobby.json", `{"command":"echo hi","runtime":"process","availablePorts":{"min":21400,"max":21401}}`)
	write("broken.json", `{"command":`)
	write("bad.json", `{"name":"bad","command":""}`)
	run := func(cmd string) (int, api.CommandResponse, string) {
		resp := e.do("POST", "/api/commands/execute", e.admin, `{"command":"`+cmd+`"}`)
		if resp.StatusCode == 200 {
			return 200, decode[api.CommandResponse](t, resp), ""
		}
		b := decode[api.Error](t, resp)
		return resp.StatusCode, api.CommandResponse{Output: b.Output}, b.Error
	}
	code, out, msg := run("config reload")
	if code != 400 || !strings.Contains(msg, "2 configuration files") || !strings.Contains(strings.Join(out.Output, "\n"), "lobby.json: imported as lobby") {
		t.Fatalf("reload: %d %q %v", code, msg, out.Output)
	}
	if code, out, _ = run("config list"); code != 200 || !strings.Contains(strings.Join(out.Output, "\n"), "lobby") {
		t.Fatalf("config list: %v", out.Output)
	}
	if code, _, msg = run("config create api process sleep 600"); code != 200 {
		t.Fatalf("config create: %d %s", code, msg)
	}
	if code, _, _ = run("config create api process sleep 600"); code != 409 {
		t.Fatalf("second config create: %d, want 409", code)
	}
	if code, out, msg = run("instance create lobby 2"); code != 200 || len(out.Output) != 2 {
		t.Fatalf("instance create: %d %s %v", code, msg, out.Output)
	}
	if code, out, _ = run("instance list"); code != 200 || len(out.Output) != 3 {
		t.Fatalf("instance list: %v", out.Output)
	}
	if code, _, msg = run("instance create lobby"); code != 503 {
		t.Fatalf("third instance on two ports: %d %s", code, msg)
	}
	if code, _, _ = run("template create lobby/base"); code != 200 {
		t.Fatalf("template create: %d", code)
	}
	if code, out, _ = run("template list"); code != 200 || !strings.Contains(strings.Join(out.Output, "\n"), "lobby/base") {
		t.Fatalf("template list: %v", out.Output)
	}
	// Lifecycle commands wait for the action and say where it left the instance.
	e.putConfig("api", map[string]any{"command": "exec sleep 600", "stopTimeoutSeconds": 2,
		"availablePorts": map[string]int{"min": 21410, "max": 21411}})
	id := e.create("api").ID
	for _, step := range []struct{ cmd, want string }{
		{"instance stop " + id, "is STOPPED"},
		{"instance start " + id, "is ONLINE"},
		{"instance restart " + id, "is ONLINE"},
		{"instance info " + id, `"restarts": 1`},
	} {
		code, out, msg := run(step.cmd)
		if code != 200 || !strings.Contains(strings.Join(out.Output, "\n"), step.want) {
			t.Fatalf("%s: %d %s %v, want %q", step.cmd, code, msg, out.Output, step.want)
		}
	}
	if code, _, _ = run("instance stop " + id + " extra"); code != 400 {
		t.Fatalf("usage error: %d", code)
	}
	if code, _, _ = run("instance info nope00"); code != 404 {
		t.Fatalf("info of an unknown instance: %d", code)
	}
}

// A record left ONLINE by a master that died, whose supervisor is gone too,
// is OFFLINE ("supervisor lost ...") on the next start, with its log and
// port kept.
func TestRecordsAfterMasterCrash(t *testing.T) {
	dir, tpl := t.TempDir(), t.TempDir()
	db, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pid := int64(999999)
	if err := db.PutConfiguration(api.Configuration{Name: "web", Command: "true"}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutInstance(api.InstanceInfo{ID: "abc123", ConfigurationName: "web", State: "ONLINE", ProcessPid: &pid, AllocatedPort: 25565}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	e := newEnv(t, func(c *master.Config) { c.DataDir, c.TemplatesDir = dir, tpl })
	got := e.info("abc123")
	if got.State != "OFFLINE" || got.Reason != "supervisor lost while the master was down" || got.ProcessPid != nil {
		t.Fatalf("after a crash %+v", got)
	}
	logs := decode[api.Logs](t, e.do("GET", "/api/instances/abc123/logs", e.admin, ""))
	if len(logs.Lines) != 1 || !strings.Contains(logs.Lines[0], "supervisor lost") {
		t.Fatalf("log %+v", logs.Lines)
	}
	node := decode[api.Node](t, e.do("GET", "/api/node", e.public, ""))
	if node.Instances.Total != 1 || node.Instances.ByState["OFFLINE"] != 1 || node.NodeID != "node-1" {
		t.Fatalf("node %+v", node)
	}
}

// With no engine, a docker configuration is refused saying why, as tmux
// and screen are where their programs are missing; GET /api/node says so.
func TestDockerUnavailable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/docker.sock")
	e := newEnv(t, nil)
	resp := e.do("PUT", "/api/configurations/box", e.admin, `{"runtime":"docker","image":"alpine"}`)
	body := readAll(resp)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "docker is unavailable") || !strings.Contains(body, "docker.sock") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	node := decode[api.Node](t, e.do("GET", "/api/node", e.admin, ""))
	names := []string{}
	for _, r := range node.Runtimes {
		names = append(names, r.Name)
		if r.Name == "docker" && (r.Available || !strings.Contains(r.Reason, "docker is unavailable")) {
			t.Errorf("docker runtime: %+v", r)
		}
		if r.Name == "process" && !r.Available {
			t.Errorf("process runtime: %+v", r)
		}
	}
	if strings.Join(names, ",") != "docker,process,screen,tmux" {
		t.Errorf("runtimes %v", names)
	}
}

// A mount root is compared with the path a mount resolves to, not its
// text: a symbolic link inside the root that points out is refused.
func TestDockerMountRootResolvesLinks(t *testing.T) {
	root := t.TempDir()
	if err := os.Symlink("/etc", filepath.Join(root, "etc-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "maps"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *master.Config) { c.DockerMountRoots = []string{root} })
	resp := e.do("PUT", "/api/configurations/a", e.admin, `{"runtime":"docker","image":"x","dockerOptions":{"mounts":["`+root+`/etc-link:/data/etc"]}}`)
	if body := readAll(resp); resp.StatusCode != 400 || !strings.Contains(body, "outside the allowed roots") {
		t.Fatalf("a link out of the root: %d %s", resp.StatusCode, body)
	}
	resp = e.do("PUT", "/api/configurations/a", e.admin, `{"runtime":"docker","image":"x","dockerOptions":{"mounts":["`+root+`/maps:/data/maps:ro"]}}`)
	if body := readAll(resp); strings.Contains(body, "mounts") {
		t.Fatalf("a folder inside the root: %d %s", resp.StatusCode, body)
	}
}

// An instance whose configuration was deleted cannot be restarted: its
// stop would delete it and its start find nothing. The restart is refused
// saying why, and the instance runs on.
func TestRestartOfAnOrphanIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("gone", map[string]any{"command": "exec sleep 60", "stopTimeoutSeconds": 1, "availablePorts": map[string]int{"min": 21680, "max": 21689}})
	in := e.create("gone")
	if r := e.do("DELETE", "/api/configurations/gone", e.admin, ""); r.StatusCode != 204 {
		t.Fatalf("delete: %d %s", r.StatusCode, readAll(r))
	}
	r := e.do("PATCH", "/api/instances/"+in.ID+"/lifecycle?target=restart", e.admin, "")
	if body := readAll(r); r.StatusCode != 409 || !strings.Contains(body, "its configuration gone was deleted") {
		t.Fatalf("restart of an orphan: %d %s", r.StatusCode, body)
	}
	if got := e.info(in.ID); got.State != "ONLINE" || got.ProcessPid == nil || *got.ProcessPid != *in.ProcessPid {
		t.Fatalf("the orphan after a refused restart: %+v", got)
	}
}
