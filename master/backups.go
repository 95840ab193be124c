package master

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/backup"
	"github.com/universe-orchestrator/universe/instance/logs"
)

// openBackups makes the backup service: the local target (BackupDir) and
// the S3 targets of the BackupTargets file.
func (m *Master) openBackups() error {
	targets := map[string]backup.Target{}
	if m.cfg.BackupTargets != "" {
		t, err := backup.LoadTargets(m.cfg.BackupTargets)
		if err != nil {
			return universe.Errorf(universe.EINVALID, "%s", err)
		}
		targets = t
	}
	targets[backup.LocalTarget] = backup.Local{Dir: m.cfg.BackupDir}
	bm := newBackupMetrics(m.metrics.reg)
	m.backups = backup.New(m.db, targets, m.log, backup.Hooks{
		Done: func(b api.Backup, took time.Duration) {
			outcome := strings.ToLower(b.State)
			bm.total.WithLabelValues(outcome).Inc()
			bm.duration.WithLabelValues(outcome).Observe(took.Seconds())
			if b.State == api.BackupCompleted {
				bm.bytes.Add(float64(b.SizeBytes))
			}
			m.backupEvent(b)
		},
		Restored: func(b api.Backup, err error, _ time.Duration) {
			outcome := "completed"
			if err != nil {
				outcome = "failed"
			}
			bm.restores.WithLabelValues(outcome).Inc()
			m.restoreEvent(b, err)
		},
	})
	if !m.cfg.HA.Enabled() {
		// Alone, this master ran every backup of its records: those left
		// under way stopped with it. (In a cluster, the leader runs them,
		// and a new leader does this: onLeader.)
		n, err := m.backups.Recover()
		if err != nil {
			return err
		}
		if n > 0 {
			m.log.Warn("backups under way when the master stopped are FAILED", "count", n)
		}
	}
	return nil
}

type backupMetrics struct {
	total, restores *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	bytes           prometheus.Counter
}

func newBackupMetrics(reg *prometheus.Registry) *backupMetrics {
	bm := &backupMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "universe_backups_total",
			Help: "Backups finished, by outcome (completed, failed).",
		}, []string{"outcome"}),
		restores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "universe_backup_restores_total",
			Help: "Restores finished, by outcome (completed, failed).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "universe_backup_duration_seconds",
			Help:    "Time a backup took, by outcome.",
			Buckets: []float64{.1, .5, 1, 5, 15, 60, 300, 900, 3600},
		}, []string{"outcome"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "universe_backup_bytes_total",
			Help: "Bytes of the archives of completed backups.",
		}),
	}
	reg.MustRegister(bm.total, bm.restores, bm.duration, bm.bytes)
	for _, o := range []string{"completed", "failed"} {
		bm.total.WithLabelValues(o)
		bm.restores.WithLabelValues(o)
	}
	return bm
}

// backupSubject is instance id as the backup service needs it. Errors:
// ENOTFOUND; EUNAVAILABLE for an instance on an agent node.
func (m *Master) backupSubject(id string) (backup.Subject, error) {
	in, err := m.instances.Get(id)
	if err != nil {
		return backup.Subject{}, err
	}
	info := in.Info()
	sub := backup.Subject{
		ID: id, Configuration: info.ConfigurationName,
		Running: in.Running,
		Execute: in.Execute,
		System:  in.Log().System,
		WatchLine: func(text string) (<-chan struct{}, func()) {
			return watchLine(in.Log(), text)
		},
	}
	if m.instances.Local(info) {
		dir, err := m.instances.WorkDir(id)
		if err != nil {
			return backup.Subject{}, err
		}
		sub.Archive, sub.Restore = backup.LocalArchive(dir), backup.LocalRestore(dir, in.Running)
	} else {
		// On an agent node: archived and restored there, the archive
		// carried over the node's connection, or uploaded from there.
		nb := m.hub.Backups(info.WrapperNodeID, id)
		sub.Archive = func(ctx context.Context, ignore []string, w io.Writer) (backup.Stats, error) {
			files, skipped, changed, err := nb.Archive(ctx, ignore, w)
			return backup.Stats{Files: files, Skipped: skipped, Changed: changed}, err
		}
		// To an S3 target the node has too, it uploads the archive itself.
		sub.Node = info.WrapperNodeID
		sub.Upload = func(ctx context.Context, ignore []string, target, key string, written func(int64)) (backup.Stats, int64, string, error) {
			files, skipped, changed, size, sha, err := nb.Upload(ctx, ignore, target, key, written)
			return backup.Stats{Files: files, Skipped: skipped, Changed: changed}, size, sha, err
		}
		sub.RestoreFrom = nb.RestoreFrom // from an S3 target the node has too, it reads the archive itself
		sub.Restore = func(ctx context.Context, open backup.Opener, sha string, truncate bool) (int, error) {
			rc, err := open(ctx)
			if err != nil {
				return 0, err
			}
			defer rc.Close()
			return nb.Restore(ctx, rc, sha, truncate)
		}
	}
	if cfg, err := m.db.GetConfiguration(info.ConfigurationName); err == nil && cfg.Backup != nil {
		sub.Options = *cfg.Backup
	}
	return sub, nil
}

// watchLine closes seen when a line holding text enters log after the
// call; stop ends the watch.
func watchLine(l *logs.Log, text string) (<-chan struct{}, func()) {
	sub, _ := l.Subscribe(logs.Position{Lines: 0})
	seen := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer sub.Close()
		for {
			evs, ok := sub.Next(ctx)
			if !ok {
				return
			}
			for _, e := range evs {
				if e.Kind == logs.KindLine && strings.Contains(e.Line.Line, text) {
					close(seen)
					return
				}
			}
		}
	}()
	return seen, cancel
}

// byOf says who asked: the key's label (a user's keys carry the user).
func byOf(c *gin.Context) string {
	k := callerKey(c)
	if u := k.User(); u != "" {
		return "user:" + u
	}
	return k.Label()
}

func (m *Master) handleBackupCreate(c *gin.Context) {
	var req api.BackupRequest
	if err := bindOptionalJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	sub, err := m.backupSubject(c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	b, err := m.backups.Create(sub, req, byOf(c))
	if err != nil {
		fail(c, err)
		return
	}
	c.Set(ctxAuditDetail, "backup="+b.ID)
	c.JSON(http.StatusAccepted, b)
}

func (m *Master) handleBackupList(c *gin.Context) {
	id := c.Param("id")
	if _, err := m.instances.Get(id); err != nil {
		// The records of a deleted instance are still listed.
		if list, lerr := m.db.Backups(id); lerr != nil || len(list) == 0 {
			fail(c, err)
			return
		}
	}
	list, err := m.db.Backups(id)
	if err != nil {
		fail(c, err)
		return
	}
	writeJSONArray(c, list)
}

// handleConfigBackups lists the backups of a configuration's instances.
func (m *Master) handleConfigBackups(c *gin.Context) {
	name := c.Param("name")
	if _, err := m.db.GetConfiguration(name); err != nil {
		fail(c, err)
		return
	}
	all, err := m.db.Backups("")
	if err != nil {
		fail(c, err)
		return
	}
	out := all[:0]
	for _, b := range all {
		if b.Configuration == name {
			out = append(out, b)
		}
	}
	writeJSONArray(c, out)
}

// backupOf is the record of :backup (ENOTFOUND answered).
func (m *Master) backupOf(c *gin.Context) (api.Backup, bool) {
	b, err := m.db.GetBackup(c.Param("backup"))
	if err != nil {
		fail(c, err)
		return b, false
	}
	return b, true
}

func (m *Master) handleBackupGet(c *gin.Context) {
	if b, ok := m.backupOf(c); ok {
		c.JSON(http.StatusOK, b)
	}
}

// handleBackupDownload streams the archive, with its size and digest.
func (m *Master) handleBackupDownload(c *gin.Context) {
	b, ok := m.backupOf(c)
	if !ok {
		return
	}
	rc, err := m.backups.Open(c.Request.Context(), b)
	if err != nil {
		fail(c, err)
		return
	}
	defer rc.Close()
	sum, _ := hex.DecodeString(b.SHA256)
	c.Header("Content-Type", "application/zstd")
	c.Header("Content-Length", strconv.FormatInt(b.SizeBytes, 10))
	c.Header("Content-Disposition", `attachment; filename="`+b.InstanceID+"-"+b.ID+`.tar.zst"`)
	c.Header("X-Checksum-Sha256", b.SHA256)
	c.Header("Digest", "sha-256="+base64.StdEncoding.EncodeToString(sum))
	c.Status(http.StatusOK)
	c.Writer.WriteHeaderNow()
	// Each write has a deadline: a client that stops reading is let go.
	rc2 := http.NewResponseController(c.Writer)
	w := writerFunc(func(p []byte) (int, error) {
		_ = rc2.SetWriteDeadline(time.Now().Add(time.Minute))
		return c.Writer.Write(p)
	})
	n, err := io.CopyBuffer(w, io.LimitReader(rc, b.SizeBytes), make([]byte, 256<<10))
	if err != nil || n != b.SizeBytes {
		m.log.Warn("backup download broke off", "backup", b.ID, "sent", n, "err", err)
	}
}

func (m *Master) handleBackupDelete(c *gin.Context) {
	if err := m.backups.Delete(c.Param("backup")); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (m *Master) handleBackupLock(c *gin.Context)   { m.setBackupLock(c, true) }
func (m *Master) handleBackupUnlock(c *gin.Context) { m.setBackupLock(c, false) }

func (m *Master) setBackupLock(c *gin.Context, locked bool) {
	b, err := m.backups.SetLocked(c.Param("backup"), locked)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, b)
}

// handleBackupRestore restores into the backup's instance (stopped): 202,
// the instance's log says when it is done.
func (m *Master) handleBackupRestore(c *gin.Context) {
	var req api.RestoreRequest
	if err := bindOptionalJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	b, ok := m.backupOf(c)
	if !ok {
		return
	}
	sub, err := m.backupSubject(b.InstanceID)
	if err != nil {
		fail(c, err)
		return
	}
	c.Set(ctxAuditDetail, "instance="+b.InstanceID+" truncate="+strconv.FormatBool(req.Truncate))
	if err := m.backups.Restore(b, sub, req.Truncate, byOf(c)); err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, b)
}

// bindOptionalJSON is bindJSONStrict for a body that may be left out.
func bindOptionalJSON(c *gin.Context, v any) error {
	if c.Request.ContentLength == 0 {
		return nil
	}
	return bindJSONStrict(c, v)
}
