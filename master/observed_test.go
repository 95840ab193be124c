package master_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Every status any test saw the master answer is collected (from each test
// master's own metrics, scraped as it closes) and, after the tests, held
// against the OpenAPI document: an answer the document does not list is a
// failure of the package.
var observed = struct {
	sync.Mutex
	statuses map[string]bool // "METHOD /api/path/{param} STATUS"
	doc      map[string]map[string]struct {
		Responses map[string]any `json:"responses"`
	}
}{statuses: map[string]bool{}}

var requestSeries = regexp.MustCompile(`^universe_http_requests_total\{method="([A-Z]+)",route="([^"]+)",status="([0-9]+)"\}`)

// scrapeStatuses records what the master at url answered so far.
func scrapeStatuses(url, token string) {
	resp, err := http.Get(url + "/api/metrics")
	if err != nil {
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	observed.Lock()
	defer observed.Unlock()
	for _, line := range strings.Split(string(body), "\n") {
		if m := requestSeries.FindStringSubmatch(line); m != nil && m[2] != "unmatched" {
			observed.statuses[m[1]+" "+openAPIPath(m[2])+" "+m[3]] = true
		}
	}
	if observed.doc == nil {
		req, _ := http.NewRequest("GET", url+"/api/openapi.json", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var doc struct {
				Paths map[string]map[string]struct {
					Responses map[string]any `json:"responses"`
				} `json:"paths"`
			}
			if json.NewDecoder(resp.Body).Decode(&doc) == nil {
				observed.doc = doc.Paths
			}
			resp.Body.Close()
		}
	}
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z]+)`)

func openAPIPath(route string) string { return ginParam.ReplaceAllString(route, "{$1}") }

// undocumentedStatuses lists the answers seen that the document lacks.
func undocumentedStatuses() []string {
	observed.Lock()
	defer observed.Unlock()
	var out []string
	for k := range observed.statuses {
		f := strings.Fields(k)
		op, ok := observed.doc[f[1]][strings.ToLower(f[0])]
		if !ok {
			continue // TestOpenAPIMatchesRoutes speaks of routes
		}
		if _, ok := op.Responses[f[2]]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func reportUndocumented() bool {
	if bad := undocumentedStatuses(); len(bad) > 0 {
		fmt.Println("answers the OpenAPI document does not list (method, path, status):\n  " + strings.Join(bad, "\n  "))
		return false
	}
	return true
}
