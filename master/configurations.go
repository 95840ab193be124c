package master

import (
	"net/http"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance"
)

func (m *Master) handleConfigList(c *gin.Context) {
	list, err := m.db.ListConfigurations()
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]api.Configuration, 0, len(list))
	r := callerRights(c)
	for _, cfg := range list {
		if r == nil || r.Allowed("config.read", "", cfg.Name) {
			out = append(out, instance.Normalize(cfg))
		}
	}
	c.JSON(http.StatusOK, out)
}

func (m *Master) handleConfigGet(c *gin.Context) {
	cfg, err := m.db.GetConfiguration(c.Param("name"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, instance.Normalize(cfg))
}

func (m *Master) handleConfigPut(c *gin.Context) {
	var cfg api.Configuration
	if err := bindJSONStrict(c, &cfg); err != nil {
		fail(c, err)
		return
	}
	name := c.Param("name")
	if cfg.Name != "" && cfg.Name != name {
		fail(c, universe.Errorf(universe.EINVALID, "name: the body says %q but the URL says %q", cfg.Name, name))
		return
	}
	cfg.Name = name
	// The configuration and its audit entry are one commit (one round
	// through the Raft log in a cluster, not two).
	audit := m.newAuditEntry(callerKey(c).ID(), "rest", c.Request.Method+" "+c.Request.URL.Path, nil, nil)
	audit.Configuration = name
	if err := m.putConfigurationAudited(cfg, &audit); err != nil {
		fail(c, err)
		return
	}
	m.logAudit(audit)
	c.Set(ctxAudited, true)
	c.Status(http.StatusNoContent)
}

// putConfiguration normalizes, validates and stores cfg. Errors: EINVALID.
func (m *Master) putConfiguration(cfg api.Configuration) error {
	return m.putConfigurationAudited(cfg, nil)
}

// putConfigurationAudited is putConfiguration that writes audit (nil:
// none) with the configuration.
func (m *Master) putConfigurationAudited(cfg api.Configuration, audit *universe.AuditEntry) error {
	cfg = instance.Normalize(cfg)
	if err := m.instances.Validate(cfg, m.templates); err != nil {
		return err
	}
	if b := cfg.Backup; b != nil && b.Target != "" && !m.backups.HasTarget(b.Target) {
		return universe.Errorf(universe.EINVALID, "invalid configuration: backup.target: %q is not a backup target of this master (local, or one of --backup-targets)", b.Target)
	}
	if err := m.db.PutConfigurationAudited(cfg, audit); err != nil {
		return err
	}
	m.instances.ConfigurationChanged(cfg.Name)
	return nil
}

func (m *Master) handleConfigDelete(c *gin.Context) {
	name := c.Param("name")
	if err := m.deleteConfiguration(name, c.Query("force") == "true", callerKey(c).Label()); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// deleteConfiguration removes a configuration: no instance of it starts
// again, and its instances that do not run are deleted. Its live instances
// run on until they stop, and are deleted then (as the original's clients
// expect); with force they are stopped and deleted at once. Errors:
// ENOTFOUND.
func (m *Master) deleteConfiguration(name string, force bool, by string) error {
	if _, err := m.db.GetConfiguration(name); err != nil {
		return err
	}
	if err := m.db.DeleteConfiguration(name); err != nil {
		return err
	}
	m.instances.ConfigurationChanged(name)
	if force {
		for _, in := range m.instances.List(instance.Filter{Configuration: name}) {
			if err := m.instances.Delete(in.ID, by); err != nil && universe.ErrorCode(err) != universe.ENOTFOUND {
				return err
			}
		}
	}
	m.instances.DropOrphans(name, by)
	return nil
}
