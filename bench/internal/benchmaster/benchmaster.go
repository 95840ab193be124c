// Package benchmaster runs a real master in the benchmark's own process,
// on loopback with a temporary data folder and an ALL key, for the bench
// programs.
package benchmaster

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/master"
)

// Master is a running master and what a client needs to call it.
type Master struct {
	M     *master.Master
	URL   string
	Token string
	Dir   string
}

// Start starts a master (access log off) after mutate had its say on the
// configuration; it exits the program on failure.
func Start(prefix string, mutate func(*master.Config)) *Master {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		log.Fatal(err)
	}
	cfg := master.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.AccessLog = false
	if mutate != nil {
		mutate(&cfg)
	}
	m, err := master.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Open(); err != nil {
		log.Fatal(err)
	}
	_, token, err := m.Keyring().Create("bench", universe.ScopeAll, 0)
	if err != nil {
		log.Fatal(err)
	}
	return &Master{M: m, URL: "http://" + m.Addr(), Token: token, Dir: dir}
}

// Close stops the master and removes its folder.
func (b *Master) Close() {
	_ = b.M.Close()
	_ = os.RemoveAll(b.Dir)
}

// Do sends a request with the ALL key (a string body as it is, anything
// else as JSON) and returns the answer's body; an error status ends the
// program.
func (b *Master) Do(method, path string, body any) []byte {
	var r io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		r = bytes.NewReader([]byte(v))
	default:
		j, _ := json.Marshal(v)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, b.URL+path, r)
	req.Header.Set("Authorization", "Bearer "+b.Token)
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		log.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, out)
	}
	return out
}
