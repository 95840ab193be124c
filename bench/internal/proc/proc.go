// Package proc runs the universe binary as an operator does, for the bench
// programs: built once, an ALL key made offline, a master process on a
// loopback port, REST calls with that key.
package proc

import (
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Build builds ./cmd/universe into dir and returns the binary's path.
func Build(dir string) string {
	bin := filepath.Join(dir, "universe")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/universe").CombinedOutput(); err != nil {
		log.Fatalf("build: %v %s", err, out)
	}
	return bin
}

var tokenRE = regexp.MustCompile(`unv_[A-Za-z0-9_-]{43}`)

// AdminKey makes an ALL key in data (offline) and returns its token.
func AdminKey(bin, data string) string {
	out, err := exec.Command(bin, "key", "create", "admin", "ALL", "--data", data).CombinedOutput()
	if err != nil {
		log.Fatalf("key create: %v %s", err, out)
	}
	return tokenRE.FindString(string(out))
}

// FreePort is a free loopback port.
func FreePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Master is a master process and how to call it.
type Master struct {
	Cmd   *exec.Cmd
	Base  string
	Token string
	group bool // Cmd leads a process group to signal whole ("go run" and the master it starts)
}

// StartMaster starts a master on port with data (its log beside data) and
// waits for it to answer.
func StartMaster(bin, data string, port int, token string, extra ...string) *Master {
	return StartMasterWith([]string{bin}, "", data, port, token, extra...)
}

// StartMasterWith is StartMaster with the command that runs the universe
// binary (such as "go", "run", "./cmd/universe", run in dir), in a process
// group of its own that Stop signals whole.
func StartMasterWith(argv []string, dir, data string, port int, token string, extra ...string) *Master {
	args := append(append(argv[1:len(argv):len(argv)], "master", "--no-console", "--access-log=false", "--data", data,
		"--addr", "127.0.0.1:"+strconv.Itoa(port), "--cluster-addr", "127.0.0.1:0"), extra...)
	cmd := exec.Command(argv[0], args...)
	cmd.Dir = dir
	group := len(argv) > 1
	if group {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	logf, _ := os.OpenFile(filepath.Join(data, "..", "master.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	m := &Master{Cmd: cmd, Base: "http://127.0.0.1:" + strconv.Itoa(port), Token: token, group: group}
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(m.Base + "/api/ping"); err == nil {
			resp.Body.Close()
			return m
		}
	}
	log.Fatal("the master did not answer")
	return nil
}

// DeleteAll deletes every configuration, stopping and deleting its
// instances (those on agents too: an agent leaves its instances running
// when it stops, by design), and any instance left.
func (m *Master) DeleteAll() {
	do := func(method, path string, out any) {
		req, _ := http.NewRequest(method, m.Base+path, nil)
		req.Header.Set("Authorization", "Bearer "+m.Token)
		resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		if out != nil {
			_ = json.NewDecoder(resp.Body).Decode(out)
		}
	}
	var cfgs, insts []struct {
		Name string `json:"name"`
		ID   string `json:"id"`
	}
	do("GET", "/api/configurations", &cfgs)
	for _, c := range cfgs {
		do("DELETE", "/api/configurations/"+c.Name+"?force=true", nil)
	}
	do("GET", "/api/instances", &insts)
	for _, in := range insts {
		do("DELETE", "/api/instances/"+in.ID, nil)
	}
}

// Stop deletes everything (DeleteAll), then stops the master with SIGTERM
// and waits: a bench leaves no process behind.
func (m *Master) Stop() {
	m.DeleteAll()
	if m.group {
		_ = syscall.Kill(-m.Cmd.Process.Pid, syscall.SIGTERM)
	} else {
		_ = m.Cmd.Process.Signal(syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() { _ = m.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		if m.group {
			_ = syscall.Kill(-m.Cmd.Process.Pid, syscall.SIGKILL)
		} else {
			_ = m.Cmd.Process.Kill()
		}
		<-done
	}
}

// Call sends a request with the key and decodes a 2xx answer into out
// (nil: ignored); anything else ends the program.
func (m *Master) Call(method, path, body string, out any) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, m.Base+path, r)
	req.Header.Set("Authorization", "Bearer "+m.Token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		log.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			log.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// CPUProfile takes a CPU profile of the master over seconds, from now;
// the channel gets it when it is done.
func (m *Master) CPUProfile(seconds int) <-chan []byte {
	out := make(chan []byte, 1)
	go func() {
		req, _ := http.NewRequest("GET", m.Base+"/api/debug/pprof/profile?seconds="+strconv.Itoa(seconds), nil)
		req.Header.Set("Authorization", "Bearer "+m.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- b
	}()
	return out
}
