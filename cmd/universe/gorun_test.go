package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/master/auth"
	"github.com/universe-orchestrator/universe/storage"
)

// TestGoRunMasterUsesSmallSupervisor starts the master as the README's first
// command does, "go run ./cmd/universe master" in the source tree: its
// instances' supervisors must run the supervisor-only binary it built into
// <data>/bin, not the whole universe binary (about 5 MiB more each).
func TestGoRunMasterUsesSmallSupervisor(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the universe binary with go run")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	data := filepath.Join(t.TempDir(), "data")
	db, err := storage.Open(data, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.OpenKeyring(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, token, err := keys.Create("gorun", universe.ScopeAll, 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command("go", "run", "./cmd/universe", "master", "--data", data, "--addr", "127.0.0.1:"+strconv.Itoa(port),
		"--cluster-addr", "127.0.0.1:0", "--no-console")
	cmd.Dir = root
	cmd.Env = shellEnv(t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.Create(filepath.Join(t.TempDir(), "master.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) // go run and the master it started
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		killSupervisorsUnder(data)
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("master.log:\n%s", tail(string(b), 40))
		}
	})
	waitFor(t, "the master started by go run", 5*time.Minute, func() bool {
		select {
		case <-done:
			t.Fatal("go run exited")
		default:
		}
		resp, err := http.Get(base + "/api/ping")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	if r, b := request(t, "PUT", base+"/api/configurations/small", token,
		`{"command":"sleep 600","availablePorts":{"min":23900,"max":23950}}`); r.StatusCode/100 != 2 {
		t.Fatalf("PUT configuration: %d %s", r.StatusCode, b)
	}
	r, b := request(t, "POST", base+"/api/instances", token, `{"configurationName":"small"}`)
	if r.StatusCode/100 != 2 {
		t.Fatalf("POST instance: %d %s", r.StatusCode, b)
	}
	var inst struct {
		ProcessPid int `json:"processPid"`
	}
	if err := json.Unmarshal(b, &inst); err != nil || inst.ProcessPid == 0 {
		t.Fatalf("instance: %v %s", err, b)
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(parentOf(t, inst.ProcessPid)) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(data, "bin", "universe-supervisor"); exe != want {
		t.Fatalf("the supervisor runs %s, want %s", exe, want)
	}
}
