package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// A master SIGKILLed during a backup: when it is started again the backup
// is FAILED, saying so, and no archive of it is listed as complete; a new
// backup of the same instance then completes.
func TestBackupMasterKilledMidway(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := cli(t, "key", "create", "admin", "ALL", "--data", dir)
	if code != 0 {
		t.Fatalf("key create: %s", errOut)
	}
	admin := tokenRE.FindString(out)
	port := freePort(t)
	m1 := startChildMaster(t, dir, port)
	base := m1.base
	// The backup waits for a line the server never prints: it stays
	// RUNNING for a minute, long enough to kill the master under it.
	jsonReq[map[string]any](t, "PUT", base+"/api/configurations/w", admin, `{"command":"exec cat >/dev/null","static":true,"stopTimeoutSeconds":1,"availablePorts":{"min":22070,"max":22079},"backup":{"before":["save-all"],"waitForLine":"never printed","waitSeconds":60}}`, 204)
	in := jsonReq[api.InstanceInfo](t, "POST", base+"/api/instances", admin, `{"configurationName":"w"}`, 201)
	_ = os.WriteFile(filepath.Join(dir, "static", "w", "world.dat"), []byte(strings.Repeat("w", 1<<20)), 0o644)
	b := jsonReq[api.Backup](t, "POST", base+"/api/instances/"+in.ID+"/backups", admin, `{"name":"cut short"}`, 202)
	waitFor(t, "the backup to run", 10*time.Second, func() bool {
		return jsonReq[api.Backup](t, "GET", base+"/api/backups/"+b.ID, admin, "", 200).State == api.BackupRunning
	})
	m1.signal(syscall.SIGKILL)

	m2 := startChildMaster(t, dir, port)
	got := jsonReq[api.Backup](t, "GET", m2.base+"/api/backups/"+b.ID, admin, "", 200)
	if got.State != api.BackupFailed || !strings.Contains(got.Reason, "stopped") || got.CompletedAt == nil {
		t.Fatalf("after the restart: %+v", got)
	}
	jsonReq[map[string]any](t, "GET", m2.base+"/api/backups/"+b.ID+"/download", admin, "", 409)
	left, _ := filepath.Glob(filepath.Join(dir, "backups", in.ID, "*"))
	if len(left) != 0 {
		t.Errorf("archives left: %v", left)
	}
	// The configuration without the wait: a backup completes.
	jsonReq[map[string]any](t, "PUT", m2.base+"/api/configurations/w", admin, `{"command":"exec cat >/dev/null","static":true,"stopTimeoutSeconds":1,"availablePorts":{"min":22070,"max":22079}}`, 204)
	b2 := jsonReq[api.Backup](t, "POST", m2.base+"/api/instances/"+in.ID+"/backups", admin, `{}`, 202)
	waitFor(t, "the second backup", 30*time.Second, func() bool {
		return jsonReq[api.Backup](t, "GET", m2.base+"/api/backups/"+b2.ID, admin, "", 200).State == api.BackupCompleted
	})
}

// A backup of an instance on an agent node (a real agent process): archived
// on the node, carried to the master's target over the node connection,
// its digest the master's own; the save commands go to the remote process;
// restored on the node from the master's target once the instance is
// stopped; a restore while it runs is 409.
func TestBackupOfAnInstanceOnAnAgent(t *testing.T) {
	c := newCluster(t)
	base, admin := c.m.base, c.admin
	n := jsonReq[api.NodeCreated](t, "POST", base+"/api/cluster/nodes", admin, `{"name":"edge-b"}`, 201)
	agentDir := t.TempDir()
	startAgent(t, agentDir, []string{"UNIVERSE_NODE_KEY=" + n.Key}, "--master", "nats://127.0.0.1:"+strconv.Itoa(c.nodePort), "--data", agentDir)
	waitFor(t, "edge-b online", 30*time.Second, func() bool {
		return jsonReq[api.ClusterNode](t, "GET", base+"/api/cluster/nodes/edge-b", admin, "", 200).State == api.NodeOnline
	})
	server := `echo "$$" > pid; while read l; do echo "got $l"; if [ "$l" = save-all ]; then echo "Saved the game"; fi; done`
	cfg, _ := json.Marshal(api.Configuration{Command: server, Nodes: []string{"edge-b"}, AvailablePorts: api.Ports{Min: 22080, Max: 22081}, StopTimeoutSeconds: 2,
		Backup: &api.BackupOptions{Before: []string{"save-all"}, After: []string{"save-on"}, WaitForLine: "Saved the game", WaitSeconds: 20}})
	jsonReq[any](t, "PUT", base+"/api/configurations/edgeworld", admin, string(cfg), 204)
	info := jsonReq[api.InstanceInfo](t, "POST", base+"/api/instances", admin, `{"configurationName":"edgeworld"}`, 201)
	if info.ProcessPid != nil {
		pid := int(*info.ProcessPid)
		t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	}
	work := filepath.Join(agentDir, "running", info.ID)
	world := make([]byte, 3<<20) // more than a chunk, not a whole number of chunks
	for i := range world {
		world[i] = byte(i * 7 % 251)
	}
	_ = os.MkdirAll(filepath.Join(work, "world"), 0o755)
	if err := os.WriteFile(filepath.Join(work, "world", "level.dat"), world, 0o644); err != nil {
		t.Fatal(err)
	}
	b := jsonReq[api.Backup](t, "POST", base+"/api/instances/"+info.ID+"/backups", admin, `{"name":"edge"}`, 202)
	waitFor(t, "the backup", 60*time.Second, func() bool {
		b = jsonReq[api.Backup](t, "GET", base+"/api/backups/"+b.ID, admin, "", 200)
		return b.State == api.BackupCompleted || b.State == api.BackupFailed
	})
	if b.State != api.BackupCompleted || b.WaitTimedOut || b.Files < 3 {
		t.Fatalf("the backup: %+v", b)
	}
	arch, err := os.ReadFile(filepath.Join(c.dir, "backups", info.ID, b.ID+".tar.zst"))
	if err != nil {
		t.Fatalf("the archive is not in the master's folder: %v", err)
	}
	if sum := sha256.Sum256(arch); hex.EncodeToString(sum[:]) != b.SHA256 || int64(len(arch)) != b.SizeBytes {
		t.Fatal("the record's digest is not that of the archive the master holds")
	}
	jsonReq[any](t, "POST", base+"/api/backups/"+b.ID+"/restore", admin, `{}`, 409) // it runs
	jsonReq[any](t, "PATCH", base+"/api/instances/"+info.ID+"/lifecycle?target=stop", admin, "", 202)
	waitFor(t, "the instance to stop", 30*time.Second, func() bool {
		return jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+info.ID, admin, "", 200).State == "STOPPED"
	})
	_ = os.WriteFile(filepath.Join(work, "world", "level.dat"), []byte("griefed"), 0o644)
	_ = os.WriteFile(filepath.Join(work, "extra"), []byte("x"), 0o644)
	jsonReq[any](t, "POST", base+"/api/backups/"+b.ID+"/restore", admin, `{"truncate":true}`, 202)
	// The log says when it is done (the files are in place before it says so).
	var logs []byte
	waitFor(t, "the restore", 60*time.Second, func() bool {
		_, logs = request(t, "GET", base+"/api/instances/"+info.ID+"/logs?lines=200", admin, "")
		return strings.Contains(string(logs), "restore of backup "+b.ID+" done")
	})
	if got, _ := os.ReadFile(filepath.Join(work, "world", "level.dat")); !bytes.Equal(got, world) {
		t.Error("the restored file differs from the one backed up")
	}
	if _, err := os.Stat(filepath.Join(work, "extra")); err == nil {
		t.Error("a truncating restore left a file the backup lacks")
	}
	for _, want := range []string{"got save-all", "got save-on"} {
		if !strings.Contains(string(logs), want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(agentDir, "restores", "*")); len(left) != 0 {
		t.Errorf("the node kept the restore's archive: %v", left)
	}
}
