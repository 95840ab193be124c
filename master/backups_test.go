package master_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/backup/s3test"
	"github.com/universe-orchestrator/universe/master"
	"github.com/universe-orchestrator/universe/storage"
)

// waitBackup polls a backup until it is COMPLETED or FAILED.
func (e *env) waitBackup(id string) api.Backup {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b := decode[api.Backup](e.t, e.do("GET", "/api/backups/"+id, e.admin, ""))
		if b.State == api.BackupCompleted || b.State == api.BackupFailed {
			return b
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("backup %s is still %s", id, b.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLog polls the instance's log until a line holds text.
func (e *env) waitLog(id, text string) string {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		body := readAll(e.do("GET", "/api/instances/"+id+"/logs?lines=1000", e.admin, ""))
		if strings.Contains(body, text) {
			return body
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the log of %s never said %q:\n%s", id, text, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) backup(id, body string) api.Backup {
	e.t.Helper()
	r := e.do("POST", "/api/instances/"+id+"/backups", e.admin, body)
	if r.StatusCode != http.StatusAccepted {
		e.t.Fatalf("backup: %d %s", r.StatusCode, readAll(r))
	}
	b := decode[api.Backup](e.t, r)
	if b.State != api.BackupPending || b.ID == "" {
		e.t.Fatalf("a new backup: %+v", b)
	}
	return e.waitBackup(b.ID)
}

// A backup of a running game server: its save commands around the
// archive, the archive downloaded whole with its digest, a restore refused
// while it runs and done once it is stopped, locks, rotation, bad input.
func TestBackupCreateDownloadRestore(t *testing.T) {
	e := newEnv(t, nil)
	// A "server" that answers save-all with the line the backup waits for.
	e.putConfig("mc", map[string]any{
		"command":            `while read l; do echo "got $l"; if [ "$l" = "save-all" ]; then echo "Saved the game"; fi; done`,
		"static":             true,
		"stopTimeoutSeconds": 1,
		"availablePorts":     map[string]int{"min": 22000, "max": 22009},
		"backup": map[string]any{"before": []string{"save-off", "save-all"}, "after": []string{"save-on"},
			"waitForLine": "Saved the game", "waitSeconds": 20, "keep": 2, "ignore": []string{"*.tmp"}},
	})
	in := e.create("mc")
	e.waitState(in.ID, "ONLINE")
	dir, err := e.m.Instances().WorkDir(in.ID)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"world/level.dat": strings.Repeat("level", 5000), "server.properties": "motd=hi\n", "plugins/a.jar": "jar"}
	for p, c := range files {
		_ = os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.WriteFile(filepath.Join(dir, "scratch.tmp"), []byte("ignored"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "cache.bin"), []byte("ignored by the request"), 0o644)

	b := e.backup(in.ID, `{"name":"first","ignore":["cache.bin"]}`)
	if b.State != api.BackupCompleted || b.WaitTimedOut || b.SHA256 == "" || b.SizeBytes == 0 || b.Files < 5 || b.By != "test-admin" || b.Name != "first" || b.Configuration != "mc" || b.Target != "local" {
		t.Fatalf("backup: %+v", b)
	}
	log := e.waitLog(in.ID, "got save-on")
	for _, want := range []string{"got save-off", "got save-all", "Saved the game", b.ID + `) completed`} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	if strings.Index(log, "Saved the game") > strings.Index(log, "got save-on") {
		t.Error("save-on was sent before the save was seen")
	}

	// Download: the archive whole, its length and digest in the headers.
	r := e.do("GET", "/api/backups/"+b.ID+"/download", e.admin, "")
	body, _ := io.ReadAll(r.Body)
	sum := sha256.Sum256(body)
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/zstd" || int64(len(body)) != b.SizeBytes ||
		r.Header.Get("X-Checksum-Sha256") != b.SHA256 || hex.EncodeToString(sum[:]) != b.SHA256 ||
		r.Header.Get("Digest") != "sha-256="+base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("download: %d %v, %d bytes", r.StatusCode, r.Header, len(body))
	}

	// Bad input.
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/api/instances/nope/backups", `{}`, 404},
		{"POST", "/api/instances/" + in.ID + "/backups", `{"name":"` + strings.Repeat("x", 65) + `"}`, 400},
		{"POST", "/api/instances/" + in.ID + "/backups", `{"name":"a\nb"}`, 400},
		{"POST", "/api/instances/" + in.ID + "/backups", `{"nme":"typo"}`, 400},
		{"GET", "/api/backups/nope", "", 404},
		{"POST", "/api/backups/" + b.ID + "/restore", `{"truncate":true}`, 409}, // running
		{"POST", "/api/backups/" + b.ID + "/restore", `{"truncat":true}`, 400},
	} {
		if r := e.do(c.method, c.path, e.admin, c.body); r.StatusCode != c.want {
			t.Errorf("%s %s %s: %d %s, want %d", c.method, c.path, c.body, r.StatusCode, readAll(r), c.want)
		} else if m := errorBody(t, r); m == "" {
			t.Errorf("%s %s: no error message", c.method, c.path)
		}
	}
	if r := e.do("POST", "/api/instances/"+in.ID+"/backups", e.public, `{}`); r.StatusCode != 401 {
		t.Errorf("a PUBLIC key made a backup: %d", r.StatusCode)
	}

	// Restore, stopped: truncate puts back exactly what was archived.
	if r := e.do("PATCH", "/api/instances/"+in.ID+"/lifecycle?target=stop", e.admin, ""); r.StatusCode/100 != 2 {
		t.Fatal(r.StatusCode)
	}
	e.waitState(in.ID, "STOPPED")
	_ = os.WriteFile(filepath.Join(dir, "server.properties"), []byte("changed"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "griefed.txt"), []byte("x"), 0o644)
	if r := e.do("POST", "/api/backups/"+b.ID+"/restore", e.admin, `{"truncate":true}`); r.StatusCode != 202 {
		t.Fatalf("restore: %d %s", r.StatusCode, readAll(r))
	}
	e.waitLog(in.ID, "restore of backup "+b.ID+" done")
	for p, c := range files {
		if got, _ := os.ReadFile(filepath.Join(dir, p)); string(got) != c {
			t.Errorf("%s after the restore: %q", p, got)
		}
	}
	for _, gone := range []string{"griefed.txt", "scratch.tmp", "cache.bin"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); err == nil {
			t.Errorf("%s is there after a truncating restore", gone)
		}
	}

	// Locked: not deleted, not rotated. keep=2: the oldest unlocked go.
	if r := e.do("POST", "/api/backups/"+b.ID+"/lock", e.admin, ""); r.StatusCode != 200 || !decode[api.Backup](t, r).Locked {
		t.Fatal("lock")
	}
	if r := e.do("DELETE", "/api/backups/"+b.ID, e.admin, ""); r.StatusCode != 409 {
		t.Fatalf("delete of a locked backup: %d", r.StatusCode)
	}
	var later []api.Backup
	for i := 0; i < 3; i++ {
		later = append(later, e.backup(in.ID, `{}`))
	}
	// The rotation follows the last one's record (a moment after).
	want := strings.Join([]string{b.ID, later[1].ID, later[2].ID}, ",")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ids := []string{}
		for _, x := range decode[[]api.Backup](t, e.do("GET", "/api/instances/"+in.ID+"/backups", e.admin, "")) {
			ids = append(ids, x.ID)
		}
		if strings.Join(ids, ",") == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after rotation: %v, want %s", ids, want)
		}
	}
	if r := e.do("GET", "/api/backups/"+later[0].ID+"/download", e.admin, ""); r.StatusCode != 404 {
		t.Errorf("a rotated backup: %d", r.StatusCode)
	}
	if cl := decode[[]api.Backup](t, e.do("GET", "/api/configurations/mc/backups", e.admin, "")); len(cl) != 3 {
		t.Errorf("configuration's backups: %d", len(cl))
	}
	e.do("POST", "/api/backups/"+b.ID+"/unlock", e.admin, "")
	if r := e.do("DELETE", "/api/backups/"+b.ID, e.admin, ""); r.StatusCode != 204 {
		t.Fatalf("delete: %d", r.StatusCode)
	}
	if left, _ := filepath.Glob(filepath.Join(e.m.Config().BackupDir, in.ID, b.ID+"*")); len(left) != 0 {
		t.Errorf("the archive of a deleted backup is left: %v", left)
	}
	metrics := readAll(e.do("GET", "/api/metrics", "", ""))
	if !strings.Contains(metrics, `universe_backups_total{outcome="completed"} 4`) || !strings.Contains(metrics, `universe_backup_restores_total{outcome="completed"} 1`) {
		t.Errorf("metrics lack the backups")
	}
}

// An archive changed on its target is refused at restore: the folder
// stays as it was.
func TestBackupTamperedIsNotRestored(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("s", map[string]any{"command": "exec sleep 60", "static": true, "stopTimeoutSeconds": 1, "availablePorts": map[string]int{"min": 22010, "max": 22019}})
	in := e.create("s")
	e.waitState(in.ID, "ONLINE")
	dir, _ := e.m.Instances().WorkDir(in.ID)
	_ = os.WriteFile(filepath.Join(dir, "world.dat"), []byte("original"), 0o644)
	b := e.backup(in.ID, `{"name":"t"}`)
	e.do("PATCH", "/api/instances/"+in.ID+"/lifecycle?target=stop", e.admin, "")
	e.waitState(in.ID, "STOPPED")
	_ = os.WriteFile(filepath.Join(dir, "world.dat"), []byte("newer"), 0o644)
	arch := filepath.Join(e.m.Config().BackupDir, in.ID, b.ID+".tar.zst")
	data, err := os.ReadFile(arch)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	_ = os.WriteFile(arch, data, 0o600)
	if r := e.do("POST", "/api/backups/"+b.ID+"/restore", e.admin, `{}`); r.StatusCode != 202 {
		t.Fatal(r.StatusCode)
	}
	e.waitLog(in.ID, "restore of backup "+b.ID+" FAILED")
	if got, _ := os.ReadFile(filepath.Join(dir, "world.dat")); string(got) != "newer" {
		t.Errorf("the folder changed: %q", got)
	}
}

// A backup that cannot be written ends FAILED with the reason, its partial
// file gone; its download is 409. A backup left RUNNING by a master that
// died is FAILED when the master comes back.
func TestBackupFailuresAreRecorded(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	_ = os.WriteFile(blocker, nil, 0o600)
	e := newEnv(t, func(c *master.Config) { c.BackupDir = filepath.Join(blocker, "backups") })
	e.putConfig("s", map[string]any{"command": "exec sleep 60", "static": true, "stopTimeoutSeconds": 1, "availablePorts": map[string]int{"min": 22020, "max": 22029}})
	in := e.create("s")
	b := e.backup(in.ID, `{}`)
	if b.State != api.BackupFailed || b.Reason == "" || strings.Contains(b.Reason, blocker) {
		t.Fatalf("a backup that could not be written: %+v", b)
	}
	if r := e.do("GET", "/api/backups/"+b.ID+"/download", e.admin, ""); r.StatusCode != 409 {
		t.Errorf("download of a FAILED backup: %d", r.StatusCode)
	}

	data := t.TempDir()
	db, err := storage.Open(data, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.PutBackup(api.Backup{ID: "b1", InstanceID: "x", State: api.BackupRunning, CreatedAt: time.Now()})
	_ = db.Close()
	_ = os.MkdirAll(filepath.Join(data, "backups", "x"), 0o700)
	_ = os.WriteFile(filepath.Join(data, "backups", "x", "b1.tar.zst.partial"), []byte("half"), 0o600)
	e2 := newEnv(t, func(c *master.Config) { c.DataDir = data })
	got := decode[api.Backup](t, e2.do("GET", "/api/backups/b1", e2.admin, ""))
	if got.State != api.BackupFailed || !strings.Contains(got.Reason, "stopped") {
		t.Errorf("after a restart: %+v", got)
	}
	if _, err := os.Stat(filepath.Join(data, "backups", "x", "b1.tar.zst.partial")); err == nil {
		t.Error("the partial archive is still there")
	}
}

// Backups to an S3 target (a real SeaweedFS): taken, listed, downloaded
// and restored from there; the credentials reach neither the instance's
// environment nor the records, the log or the audit.
func TestBackupToS3(t *testing.T) {
	srv := s3test.Start(t)
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "access"), []byte(s3test.AccessKey), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "secret"), []byte(s3test.SecretKey), 0o600)
	targets := filepath.Join(dir, "targets.json")
	_ = os.WriteFile(targets, []byte(`{"offsite":{"type":"s3","endpoint":"`+srv.Endpoint+`","bucket":"`+s3test.Bucket+`","prefix":"net1","pathStyle":true,"accessKeyFile":"access","secretKeyFile":"secret"}}`), 0o600)
	e := newEnv(t, func(c *master.Config) { c.BackupTargets = targets })
	e.putConfig("s", map[string]any{"command": "env; exec sleep 60", "static": true, "stopTimeoutSeconds": 1,
		"availablePorts": map[string]int{"min": 22030, "max": 22039}, "backup": map[string]any{"target": "offsite"}})
	r := e.do("PUT", "/api/configurations/bad", e.admin, `{"command":"x","backup":{"target":"nowhere"}}`)
	if r.StatusCode != 400 {
		t.Errorf("a configuration naming an unknown target: %d", r.StatusCode)
	}
	in := e.create("s")
	e.waitState(in.ID, "ONLINE")
	wd, _ := e.m.Instances().WorkDir(in.ID)
	_ = os.WriteFile(filepath.Join(wd, "world.dat"), []byte(strings.Repeat("w", 1<<20)), 0o644)
	b := e.backup(in.ID, `{"name":"offsite one"}`)
	if b.State != api.BackupCompleted || b.Target != "offsite" {
		t.Fatalf("%+v", b)
	}
	r = e.do("GET", "/api/backups/"+b.ID+"/download", e.admin, "")
	body, _ := io.ReadAll(r.Body)
	if sum := sha256.Sum256(body); r.StatusCode != 200 || hex.EncodeToString(sum[:]) != b.SHA256 {
		t.Fatalf("download from S3: %d, %d bytes", r.StatusCode, len(body))
	}
	e.do("PATCH", "/api/instances/"+in.ID+"/lifecycle?target=stop", e.admin, "")
	e.waitState(in.ID, "STOPPED")
	_ = os.Remove(filepath.Join(wd, "world.dat"))
	e.do("POST", "/api/backups/"+b.ID+"/restore", e.admin, `{"truncate":false}`)
	log := e.waitLog(in.ID, "restore of backup "+b.ID+" done")
	if got, _ := os.ReadFile(filepath.Join(wd, "world.dat")); len(got) != 1<<20 {
		t.Errorf("world.dat after the restore: %d bytes", len(got))
	}
	audit := readAll(e.do("GET", "/api/audit", e.admin, ""))
	for where, text := range map[string]string{"log": log, "audit": audit, "master's log": e.logs.String()} {
		if strings.Contains(text, s3test.SecretKey) || strings.Contains(text, s3test.AccessKey) {
			t.Errorf("the %s shows the S3 credentials", where)
		}
	}
	if r := e.do("DELETE", "/api/backups/"+b.ID, e.admin, ""); r.StatusCode != 204 {
		t.Errorf("delete: %d", r.StatusCode)
	}
}

// A local target whose disk fills during the backup: FAILED saying so, the
// partial archive removed, the instance's folder untouched.
func TestBackupOnAFullDisk(t *testing.T) {
	disk, _, _ := fullDisk(t, 4<<20)
	e := newEnv(t, func(c *master.Config) { c.BackupDir = filepath.Join(disk, "backups") })
	e.putConfig("s", map[string]any{"command": "exec sleep 60", "static": true, "stopTimeoutSeconds": 1, "availablePorts": map[string]int{"min": 22040, "max": 22049}})
	in := e.create("s")
	dir, _ := e.m.Instances().WorkDir(in.ID)
	big := make([]byte, 8<<20)
	_, _ = rand.Read(big) // incompressible: the archive is larger than the disk
	if err := os.WriteFile(filepath.Join(dir, "region.mca"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	b := e.backup(in.ID, `{"name":"too big"}`)
	if b.State != api.BackupFailed || !strings.Contains(b.Reason, "no space") || strings.Contains(b.Reason, disk) {
		t.Fatalf("a backup on a full disk: %+v", b)
	}
	left, _ := filepath.Glob(filepath.Join(disk, "backups", in.ID, "*"))
	if len(left) != 0 {
		t.Errorf("left on the disk: %v", left)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "region.mca")); err != nil || !bytes.Equal(got, big) {
		t.Error("the instance's file changed")
	}
}
