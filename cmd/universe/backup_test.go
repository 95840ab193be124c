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
	"github.com/universe-orchestrator/universe/backup/s3test"
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

// An instance on an agent that has the configuration's S3 target uploads
// its backup to it from the node itself (the record names the node; the
// archive's size is the one the target holds; the download's digest is
// the record's); a target only the master has still works, through the
// master; the restore is read from the target by the node itself.
func TestBackupUploadedFromTheAgent(t *testing.T) {
	srv := s3test.Start(t)
	conf := t.TempDir()
	_ = os.WriteFile(filepath.Join(conf, "access"), []byte(s3test.AccessKey), 0o600)
	_ = os.WriteFile(filepath.Join(conf, "secret"), []byte(s3test.SecretKey), 0o600)
	target := func(prefix string) string {
		return `{"type":"s3","endpoint":"` + srv.Endpoint + `","bucket":"` + s3test.Bucket + `","prefix":"` + prefix + `","pathStyle":true,"accessKeyFile":"access","secretKeyFile":"secret"}`
	}
	masterTargets, agentTargets := filepath.Join(conf, "master.json"), filepath.Join(conf, "agent.json")
	_ = os.WriteFile(masterTargets, []byte(`{"offsite":`+target("net")+`,"masteronly":`+target("m")+`}`), 0o600)
	_ = os.WriteFile(agentTargets, []byte(`{"offsite":`+target("net")+`}`), 0o600)

	c := newCluster(t, "--backup-targets", masterTargets)
	base, admin := c.m.base, c.admin
	n := jsonReq[api.NodeCreated](t, "POST", base+"/api/cluster/nodes", admin, `{"name":"edge-s"}`, 201)
	agentDir := t.TempDir()
	startAgent(t, agentDir, []string{"UNIVERSE_NODE_KEY=" + n.Key}, "--master", "nats://127.0.0.1:"+strconv.Itoa(c.nodePort), "--data", agentDir, "--backup-targets", agentTargets)
	waitFor(t, "edge-s online", 30*time.Second, func() bool {
		return jsonReq[api.ClusterNode](t, "GET", base+"/api/cluster/nodes/edge-s", admin, "", 200).State == api.NodeOnline
	})
	for _, tg := range []string{"offsite", "masteronly"} {
		cfg, _ := json.Marshal(api.Configuration{Command: "exec sleep 600", Nodes: []string{"edge-s"}, AvailablePorts: api.Ports{Min: 22090, Max: 22099}, StopTimeoutSeconds: 2,
			Backup: &api.BackupOptions{Target: tg}})
		jsonReq[any](t, "PUT", base+"/api/configurations/to-"+tg, admin, string(cfg), 204)
	}
	world := make([]byte, 5<<20)
	for i := range world {
		world[i] = byte(i * 13 % 253)
	}
	backupOf := func(cfg string) (api.InstanceInfo, api.Backup) {
		info := jsonReq[api.InstanceInfo](t, "POST", base+"/api/instances", admin, `{"configurationName":"`+cfg+`"}`, 201)
		if info.ProcessPid != nil {
			pid := int(*info.ProcessPid)
			t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
		}
		work := filepath.Join(agentDir, "running", info.ID)
		if err := os.WriteFile(filepath.Join(work, "level.dat"), world, 0o644); err != nil {
			t.Fatal(err)
		}
		b := jsonReq[api.Backup](t, "POST", base+"/api/instances/"+info.ID+"/backups", admin, `{"name":"`+cfg+`"}`, 202)
		waitFor(t, "the backup", 60*time.Second, func() bool {
			b = jsonReq[api.Backup](t, "GET", base+"/api/backups/"+b.ID, admin, "", 200)
			return b.State == api.BackupCompleted || b.State == api.BackupFailed
		})
		if b.State != api.BackupCompleted {
			t.Fatalf("the backup to %s: %+v", cfg, b)
		}
		r, body := request(t, "GET", base+"/api/backups/"+b.ID+"/download", admin, "")
		if sum := sha256.Sum256(body); r.StatusCode != 200 || hex.EncodeToString(sum[:]) != b.SHA256 || int64(len(body)) != b.SizeBytes {
			t.Fatalf("the download of %s does not match its record: %d, %d bytes", b.ID, r.StatusCode, len(body))
		}
		return info, b
	}

	info, b := backupOf("to-offsite")
	if b.UploadedBy != "edge-s" {
		t.Errorf("the backup to the agent's target was not uploaded by the agent: %+v", b)
	}
	other, viaMaster := backupOf("to-masteronly")
	if viaMaster.UploadedBy != "" {
		t.Errorf("a target the agent lacks was uploaded by it: %+v", viaMaster)
	}

	work := filepath.Join(agentDir, "running", info.ID)
	jsonReq[any](t, "PATCH", base+"/api/instances/"+info.ID+"/lifecycle?target=stop", admin, "", 202)
	waitFor(t, "the instance to stop", 30*time.Second, func() bool {
		return jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+info.ID, admin, "", 200).State == "STOPPED"
	})
	_ = os.WriteFile(filepath.Join(work, "level.dat"), []byte("griefed"), 0o644)
	jsonReq[any](t, "POST", base+"/api/backups/"+b.ID+"/restore", admin, `{"truncate":true}`, 202)
	var logs []byte
	waitFor(t, "the restore", 60*time.Second, func() bool {
		_, logs = request(t, "GET", base+"/api/instances/"+info.ID+"/logs?lines=200", admin, "")
		return strings.Contains(string(logs), "restore of backup "+b.ID+" done")
	})
	if !strings.Contains(string(logs), "read from offsite by node edge-s") {
		t.Error("the node did not read the archive from its target itself")
	}
	if got, _ := os.ReadFile(filepath.Join(work, "level.dat")); !bytes.Equal(got, world) {
		t.Error("the restored file differs from the one backed up")
	}
	// A target the node lacks: the master reads the archive and sends it.
	jsonReq[any](t, "PATCH", base+"/api/instances/"+other.ID+"/lifecycle?target=stop", admin, "", 202)
	waitFor(t, "the other instance to stop", 30*time.Second, func() bool {
		return jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+other.ID, admin, "", 200).State == "STOPPED"
	})
	jsonReq[any](t, "POST", base+"/api/backups/"+viaMaster.ID+"/restore", admin, `{"truncate":true}`, 202)
	waitFor(t, "the other restore", 60*time.Second, func() bool {
		_, logs = request(t, "GET", base+"/api/instances/"+other.ID+"/logs?lines=200", admin, "")
		return strings.Contains(string(logs), "restore of backup "+viaMaster.ID+" done")
	})
	if strings.Contains(string(logs), "read from masteronly by node") {
		t.Error("a node without the target said it read the archive from it")
	}
	if logs, _ := os.ReadFile(filepath.Join(agentDir, "agent.log")); strings.Contains(string(logs), s3test.SecretKey) || strings.Contains(string(logs), s3test.AccessKey) {
		t.Error("the agent's log shows the S3 credentials")
	}
}
