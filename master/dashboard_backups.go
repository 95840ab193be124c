package master

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/backup"
)

// The dashboard's Backups tab of an instance: its backups, newest first,
// a form to take one, and per backup download, lock, restore (with a
// confirmation) and delete.

type backupsData struct {
	List []backupRow
	// Unavailable says why this instance's backups cannot be taken here.
	Unavailable string
	// Running: the instance runs (a restore needs it stopped).
	Running bool
	// Busy: a backup or restore of it is under way (the page refreshes).
	Busy string
}

type backupRow struct {
	api.Backup
	Written int64 // bytes written so far, while RUNNING (-1: unknown)
}

func (m *Master) uiBackups(c *gin.Context) {
	in, d := m.instancePage(c)
	if in == nil {
		return
	}
	d.BackupsTab = true
	list, err := m.db.Backups(in.ID())
	if err != nil {
		m.uiFail(c, "instances", "/ui/instances/"+url.PathEscape(in.ID()), err)
		return
	}
	slices.Reverse(list)
	bd := &backupsData{Running: in.Running(), Busy: m.backups.Busy(in.ID())}
	if _, err := m.backupSubject(in.ID()); err != nil {
		bd.Unavailable = universe.ErrorMessage(err)
	}
	for _, b := range list {
		bd.List = append(bd.List, backupRow{Backup: b, Written: m.backups.Written(b.ID)})
		if b.State == api.BackupPending || b.State == api.BackupRunning {
			bd.Busy = "backup"
		}
	}
	d.Backups = bd
	m.render(c, http.StatusOK, "instance", uiPage{Title: in.ID() + " backups", Nav: "instances", Data: d})
}

func (m *Master) uiBackupCreate(c *gin.Context) {
	id := c.Param("id")
	back := "/ui/instances/" + url.PathEscape(id) + "/backups"
	sub, err := m.backupSubject(id)
	var b api.Backup
	if err == nil {
		b, err = m.backups.Create(sub, api.BackupRequest{Name: c.PostForm("name")}, byOf(c))
	}
	m.dashAudit(c, "backup create id="+id+" backup="+b.ID, err)
	if err != nil {
		m.uiFail(c, "instances", back, err)
		return
	}
	c.Redirect(http.StatusSeeOther, back)
}

// uiBackupAction: lock, unlock, restore or delete one backup of the
// instance.
func (m *Master) uiBackupAction(c *gin.Context) {
	id, bid, action := c.Param("id"), c.Param("backup"), c.Param("action")
	back := "/ui/instances/" + url.PathEscape(id) + "/backups"
	b, err := m.db.GetBackup(bid)
	if err == nil && b.InstanceID != id {
		err = universe.Errorf(universe.ENOTFOUND, "no backup %q of instance %s", bid, id)
	}
	if err == nil {
		perm := map[string]string{"lock": "backup.delete", "unlock": "backup.delete", "delete": "backup.delete", "restore": "backup.restore"}[action]
		if perm != "" {
			err = m.mayOnInstance(c, perm, id)
		}
	}
	if err == nil {
		switch action {
		case "lock", "unlock":
			_, err = m.backups.SetLocked(bid, action == "lock")
		case "delete":
			err = m.backups.Delete(bid)
		case "restore":
			var sub backup.Subject
			if sub, err = m.backupSubject(id); err == nil {
				err = m.backups.Restore(b, sub, c.PostForm("truncate") == "on", byOf(c))
			}
		default:
			err = universe.Errorf(universe.ENOTFOUND, "no such action %q", action)
		}
	}
	m.dashAudit(c, "backup "+action+" id="+id+" backup="+bid, err)
	if err != nil {
		m.uiFail(c, "instances", back, err)
		return
	}
	if action == "restore" {
		back = "/ui/instances/" + url.PathEscape(id) // its log says when it is done
	}
	c.Redirect(http.StatusSeeOther, back)
}
