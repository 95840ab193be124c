package main

import (
	"os"
	"path/filepath"
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
	jsonReq[map[string]any](t, "PUT", base+"/api/configurations/w", admin, `{"command":"exec cat >/dev/null","static":true,"stopTimeoutSeconds":1,"availablePorts":{"min":21800,"max":21809},"backup":{"before":["save-all"],"waitForLine":"never printed","waitSeconds":60}}`, 204)
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
	jsonReq[map[string]any](t, "PUT", m2.base+"/api/configurations/w", admin, `{"command":"exec cat >/dev/null","static":true,"stopTimeoutSeconds":1,"availablePorts":{"min":21800,"max":21809}}`, 204)
	b2 := jsonReq[api.Backup](t, "POST", m2.base+"/api/instances/"+in.ID+"/backups", admin, `{}`, 202)
	waitFor(t, "the second backup", 30*time.Second, func() bool {
		return jsonReq[api.Backup](t, "GET", m2.base+"/api/backups/"+b2.ID, admin, "", 200).State == api.BackupCompleted
	})
}
