package master_test

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// The OpenAPI document lists every route the router has, and nothing it
// does not have; every $ref in it resolves; any valid key may read it.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t, nil)
	resp := e.do("GET", "/api/openapi.json", e.public, "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET openapi.json: %d %s", resp.StatusCode, readAll(resp))
	}
	body := readAll(resp)
	var doc struct {
		OpenAPI    string                                `json:"openapi"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	param := regexp.MustCompile(`[:*]([A-Za-z]+)`)
	routed := map[string]bool{}
	for _, r := range e.m.Handler().(*gin.Engine).Routes() {
		if !strings.HasPrefix(r.Path, "/api/") {
			continue // the dashboard's pages (/ui/) are not API
		}
		routed[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	var missing, extra []string
	for k := range routed {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !routed[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("routes not documented: %v\ndocumented, not routed: %v", missing, extra)
	}
	for _, ref := range regexp.MustCompile(`"\$ref": "#/components/schemas/([A-Za-z]+)"`).FindAllStringSubmatch(body, -1) {
		if _, ok := doc.Components.Schemas[ref[1]]; !ok {
			t.Errorf("dangling $ref %s", ref[1])
		}
	}
	if !strings.Contains(body, `"processPid"`) || !strings.Contains(body, `"configurationName"`) {
		t.Error("the schemas lack the contract's fields")
	}
	if resp := e.do("GET", "/api/openapi.json", "", ""); resp.StatusCode != 401 {
		t.Fatalf("without a key: %d", resp.StatusCode)
	}
}
