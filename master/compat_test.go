package master_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// gson reads JSON the way Gson 2.10 with default settings reads it into a
// Kotlin class of the original's plugins (gg.scala.universe.minecraft.api):
// a String takes a string, number or boolean (or null); an Int or Long a
// number or a numeric string, whole; a Boolean a boolean or "true"/"false";
// a List or Map the same rules inside; unknown fields are skipped. Anything
// else is the JsonSyntaxException that makes a plugin report a failure.
type gsonKind interface{}

type (
	gString  struct{}
	gInt     struct{} // Int and Long
	gBool    struct{}
	gList    struct{ of gsonKind }
	gMap     struct{ of gsonKind } // Map<String, V>
	gClass   map[string]gsonKind
	gNonNull struct{ of gsonKind } // a Kotlin non-null field: missing or null breaks the plugin later
)

func gsonCheck(k gsonKind, v any, path string) error {
	if nn, ok := k.(gNonNull); ok {
		if v == nil {
			return fmt.Errorf("%s: null or missing, but the plugin's field is not nullable", path)
		}
		k = nn.of
	}
	if v == nil {
		return nil
	}
	switch k := k.(type) {
	case gString:
		switch v.(type) {
		case string, float64, bool:
			return nil
		}
		return fmt.Errorf("%s: Expected a string but was %T", path, v)
	case gInt:
		var f float64
		switch x := v.(type) {
		case float64:
			f = x
		case string:
			var err error
			if f, err = strconv.ParseFloat(x, 64); err != nil {
				return fmt.Errorf("%s: Expected a number but was the string %q", path, x)
			}
		default:
			return fmt.Errorf("%s: Expected a number but was %T", path, v)
		}
		if f != math.Trunc(f) {
			return fmt.Errorf("%s: %v is not a whole number", path, f)
		}
		return nil
	case gBool:
		switch x := v.(type) {
		case bool:
			return nil
		case string:
			if x == "true" || x == "false" {
				return nil
			}
		}
		return fmt.Errorf("%s: Expected a boolean but was %v", path, v)
	case gList:
		arr, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: Expected BEGIN_ARRAY but was %T", path, v)
		}
		for i, e := range arr {
			if err := gsonCheck(k.of, e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	case gMap:
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: Expected BEGIN_OBJECT but was %T", path, v)
		}
		for key, e := range obj {
			if err := gsonCheck(k.of, e, path+"."+key); err != nil {
				return err
			}
		}
		return nil
	case gClass:
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: Expected BEGIN_OBJECT but was %T", path, v)
		}
		for field, fk := range k {
			if err := gsonCheck(fk, obj[field], path+"."+field); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%s: unknown kind", path)
}

// The classes of the original's plugins, field by field.
var (
	gInstanceInfo = gClass{
		"id": gNonNull{gString{}}, "configurationName": gNonNull{gString{}}, "wrapperNodeId": gNonNull{gString{}},
		"hostAddress": gNonNull{gString{}}, "allocatedPort": gInt{}, "state": gNonNull{gString{}},
		"lastHeartbeat": gInt{}, "processPid": gInt{}, "allocatedRamMB": gInt{}, "allocatedCpu": gInt{},
		"runtime": gNonNull{gString{}}, "players": gInt{}, "maxPlayers": gInt{},
	}
	// The proxies' own view (velocity InstancePoller.UniverseInstance).
	gUniverseInstance = gClass{
		"id": gNonNull{gString{}}, "configurationName": gNonNull{gString{}}, "hostAddress": gNonNull{gString{}},
		"allocatedPort": gInt{}, "state": gNonNull{gString{}}, "players": gInt{}, "maxPlayers": gInt{},
	}
	gConfiguration = gClass{
		"name": gNonNull{gString{}}, "runtime": gNonNull{gString{}}, "command": gNonNull{gString{}}, "static": gBool{},
		"ramMB": gInt{}, "cpu": gInt{}, "instanceGroups": gNonNull{gList{gString{}}}, "nodes": gNonNull{gList{gString{}}},
		"hostAddress": gNonNull{gString{}}, "availablePorts": gNonNull{gClass{"min": gInt{}, "max": gInt{}}},
		"minimumServiceCount": gInt{}, "environmentVariables": gNonNull{gMap{gString{}}},
		"fileModifications": gNonNull{gList{gString{}}}, "properties": gNonNull{gMap{gString{}}},
	}
	gTemplate = gClass{"name": gNonNull{gString{}}, "group": gNonNull{gString{}}, "storage": gNonNull{gString{}}, "priority": gInt{}}
)

// parseAs decodes body and checks it against the class.
func parseAs(t *testing.T, what string, k gsonKind, body string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("%s: not JSON: %v: %s", what, err, body)
	}
	if err := gsonCheck(k, v, what); err != nil {
		t.Fatalf("Gson would fail: %v\n%s", err, body)
	}
	return v
}

// plugin sends a request as the original's plugins do: JSON content type on
// every request, the instance's own key when it has one.
func (e *env) plugin(method, path, token, body string) (int, string) {
	e.t.Helper()
	resp := e.do(method, path, token, body, "Content-Type: application/json")
	return resp.StatusCode, readAll(resp)
}

// The calls of the original's Minecraft plugins and proxies, replayed with
// their exact bodies, each answer parsed as they parse it.
func TestOriginalPluginsCompatibility(t *testing.T) {
	if _, err := exec.LookPath("screen"); err != nil {
		t.Skip("the plugins' default configuration uses the screen runtime, which is not installed (CI installs it)")
	}
	e := newEnv(t, fastBackoff)
	ok := func(what string, code int, body string) {
		t.Helper()
		if code < 200 || code > 299 {
			t.Fatalf("%s: %d %s", what, code, body)
		}
	}
	// saveConfiguration: Gson's toJson of the plugins' Configuration with
	// its defaults, as the original server's defaults also say.
	cfg := `{"name":"lobby","runtime":"screen","command":"echo ready; printf %s \"$UNIVERSE_API_KEY\" > key.txt; while read l; do echo \"got $l\"; done","static":false,"ramMB":2048,"cpu":100,` +
		`"instanceGroups":[],"nodes":["node-1"],"hostAddress":"127.0.0.1","availablePorts":{"min":21820,"max":21829},` +
		`"minimumServiceCount":1,"environmentVariables":{"UNIVERSE_INSTANCE_ID":"%INSTANCE_ID%"},"fileModifications":[],"properties":{}}`
	code, body := e.plugin("PUT", "/api/configurations/lobby", e.admin, cfg)
	ok("saveConfiguration", code, body)

	// startInstance(configurationName): the answer as a Map<String, String>.
	code, body = e.plugin("POST", "/api/instances", e.admin, `{"configurationName":"lobby"}`)
	ok("startInstance(name)", code, body)
	id := parseAs(t, "startInstance(name)", gMap{gString{}}, body).(map[string]any)["id"].(string)
	// startInstance(configuration): a whole Configuration as the body.
	code, body = e.plugin("POST", "/api/instances", e.admin, cfg)
	ok("startInstance(configuration)", code, body)
	parseAs(t, "startInstance(configuration)", gMap{gString{}}, body)

	// getInstance, getInstances.
	code, body = e.plugin("GET", "/api/instances/"+id, e.admin, "")
	ok("getInstance", code, body)
	parseAs(t, "getInstance", gInstanceInfo, body)
	code, body = e.plugin("GET", "/api/instances", e.admin, "")
	ok("getInstances", code, body)
	parseAs(t, "getInstances", gList{gInstanceInfo}, body)

	// The instance's own key (UNIVERSE_API_KEY) reports its state.
	token := e.instanceToken(id)
	code, body = e.plugin("PUT", "/api/instances/"+id+"/state", token, fmt.Sprintf(`{"state":"ONLINE","lastHeartbeat":%d}`, time.Now().UnixMilli()))
	ok("reportState", code, body)
	code, body = e.plugin("PUT", "/api/instances/"+id+"/state", token, fmt.Sprintf(`{"state":"ONLINE","lastHeartbeat":%d,"players":7,"maxPlayers":50,"tps":19.98}`, time.Now().UnixMilli()))
	ok("heartbeat", code, body)
	code, body = e.plugin("PUT", "/api/instances/"+id+"/state", token, `{"state":"ONLINE","lastHeartbeat":null}`)
	ok("heartbeat with lastHeartbeat null", code, body)
	code, body = e.plugin("GET", "/api/instances/"+id, token, "")
	ok("fetchInstanceInfo", code, body)
	info := parseAs(t, "fetchInstanceInfo", gInstanceInfo, body).(map[string]any)
	if info["players"] != 7.0 || info["maxPlayers"] != 50.0 || info["state"] != "ONLINE" {
		t.Fatalf("after a heartbeat: players %v, maxPlayers %v, state %v", info["players"], info["maxPlayers"], info["state"])
	}

	// A proxy polls the list with the key it finds in UNIVERSE_API_KEY: its
	// instance key. Only a configuration that grants it may.
	if code, _ := e.plugin("GET", "/api/instances", token, ""); code != http.StatusUnauthorized {
		t.Fatalf("an instance key without the grant lists instances: %d", code)
	}
	granted := strings.Replace(cfg, `"properties":{}`, `"properties":{},"instanceKeyAccess":["instances:read"]`, 1)
	code, body = e.plugin("PUT", "/api/configurations/lobby", e.admin, granted)
	ok("grant instances:read", code, body)
	code, body = e.plugin("GET", "/api/instances", token, "")
	ok("proxy poll", code, body)
	list := parseAs(t, "proxy poll", gList{gUniverseInstance}, body).([]any)
	if len(list) < 2 {
		t.Fatalf("the proxy sees %d instances", len(list))
	}
	for _, w := range []struct{ method, path string }{{"POST", "/api/instances/" + id + "/stop"}, {"DELETE", "/api/instances/" + id},
		{"GET", "/api/keys"}, {"GET", "/api/configurations"}} {
		if code, _ := e.plugin(w.method, w.path, token, ""); code != http.StatusUnauthorized {
			t.Errorf("the granted instance key may %s %s: %d", w.method, w.path, code)
		}
	}
	if code, _ := e.plugin("GET", "/api/instances", e.public, ""); code != http.StatusUnauthorized {
		t.Errorf("a PUBLIC key lists instances: %d", code)
	}

	// executeCommand and stopInstance.
	code, body = e.plugin("POST", "/api/instances/"+id+"/command", e.admin, `{"command":"hello"}`)
	ok("executeCommand", code, body)
	waitUntil(t, "the command's echo", 10*time.Second, func() bool {
		return strings.Contains(readAll(e.do("GET", "/api/instances/"+id+"/logs", e.admin, "")), "got hello")
	})
	code, body = e.plugin("POST", "/api/instances/"+id+"/stop", e.admin, "")
	ok("stopInstance", code, body)
	e.waitState(id, "STOPPED")

	// Configurations and templates, as their classes.
	code, body = e.plugin("GET", "/api/configurations", e.admin, "")
	ok("getConfigurations", code, body)
	parseAs(t, "getConfigurations", gList{gConfiguration}, body)
	code, body = e.plugin("GET", "/api/configurations/lobby", e.admin, "")
	ok("getConfiguration", code, body)
	parseAs(t, "getConfiguration", gConfiguration, body)
	e.do("POST", "/api/templates/lobby/base", e.admin, "")
	code, body = e.plugin("GET", "/api/templates", e.admin, "")
	ok("getTemplates", code, body)
	parseAs(t, "getTemplates", gList{gTemplate}, body)
	code, body = e.plugin("POST", "/api/templates/sync", e.admin, "")
	ok("syncTemplates", code, body)

	// deleteConfiguration: no force; the live instances go when they stop.
	code, body = e.plugin("DELETE", "/api/configurations/lobby", e.admin, "")
	ok("deleteConfiguration", code, body)
	if code, _ := e.plugin("GET", "/api/instances/"+id, e.admin, ""); code != http.StatusNotFound {
		t.Errorf("the stopped instance of the deleted configuration: %d, want 404", code)
	}
}

// The original's console grammar, through the Commands endpoint.
func TestOriginalConsoleGrammar(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("echo", map[string]any{"command": "echo ready; while read l; do echo \"got $l\"; done",
		"availablePorts": map[string]int{"min": 21830, "max": 21839}, "stopTimeoutSeconds": 2})
	run := func(cmd string) string {
		t.Helper()
		b, _ := json.Marshal(map[string]string{"command": cmd})
		resp := e.do("POST", "/api/commands/execute", e.admin, string(b))
		body := readAll(resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", cmd, resp.StatusCode, body)
		}
		return body
	}
	run("help")
	run("config list")
	run("config show echo")
	run("config create other process sleep 60")
	run("config reload")
	run("template list")
	run("key create plugin PUBLIC")
	run("key list")
	run("key delete plugin")
	out := run("instance create echo 2")
	ids := e.m.Instances().Live("echo")
	if len(ids) != 2 {
		t.Fatalf("instance create echo 2 made %d: %s", len(ids), out)
	}
	id := ids[0]
	run("instance info " + id)
	run("instance execute " + id + " hello")
	waitUntil(t, "the echo", 10*time.Second, func() bool { return strings.Contains(run("instance logs "+id), "got hello") })
	run("instance restart " + id)
	run("instance stop " + id)
	run("instance kill " + ids[1])
	run("instance list")
}
