package master

import (
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	universe "github.com/universe-orchestrator/universe"
)

// routes builds the router: the middleware chain and every route, in this
// one place. Only GET /api/ping and GET /api/metrics are open; everything
// else, unknown paths included, needs a valid key first.
func (m *Master) routes() (*gin.Engine, error) {
	e := gin.New()
	e.HandleMethodNotAllowed = true
	// No redirects: they would answer before the middleware (no auth, no
	// allow-list, no request id). /api/keys/ is simply not a route.
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.RemoteIPHeaders = []string{"X-Forwarded-For", "X-Real-IP"}
	proxies := make([]string, len(m.cfg.TrustedProxies))
	for i, p := range m.cfg.TrustedProxies {
		proxies[i] = p.String()
	}
	if err := e.SetTrustedProxies(proxies); err != nil {
		return nil, universe.Errorf(universe.EINVALID, "--trusted-proxies: %v", err)
	}
	// Outermost first: id, metrics + access log, error rendering, panic
	// recovery (inside rendering so a panic is rendered as a 500), then the
	// checks that apply to every request.
	e.Use(m.requestID, m.observe, m.renderErrors, m.recoverPanics, m.allowList, m.guardBody, m.forwardWrites)

	open := e.Group("/api")
	open.GET("/ping", m.handlePing)
	open.HEAD("/ping", m.handlePing)
	open.GET("/metrics", gin.WrapH(promhttp.HandlerFor(m.metrics.reg, promhttp.HandlerOpts{})))
	open.POST("/login", m.handleLogin) // a user's name, password and code: throttled per user and address

	// Routes an instance's own key may use too, for its instance only.
	keyed := e.Group("/api", m.authenticate)
	keyed.GET("/instances", m.requireInstancesRead, m.handleInstanceList)
	keyed.GET("/instances/:id", m.requireInstancesRead, m.handleInstanceGet)
	keyed.GET("/instances/:id/properties", m.requireAllOrInstance, m.handleInstanceProperties)
	keyed.PUT("/instances/:id/state", m.requireAllOrInstance, m.handleInstanceState)
	keyed.GET("/openapi.json", m.handleOpenAPI) // any valid key

	// ALL and PUBLIC keys (PUBLIC keys are rate limited in authenticate).
	public := keyed.Group("", m.requireUserKey)
	public.GET("/node", m.handleNode)
	public.GET("/auth", m.handleAuth)
	public.POST("/auth/verify", m.handleAuthVerify)

	// ALL keys only.
	// ALL keys, and members as routeRules say.
	admin := public.Group("", m.authorize, m.auditWrites)
	admin.GET("/keys", m.handleKeyList)
	admin.POST("/keys", m.handleKeyCreate)
	admin.GET("/keys/:key", m.handleKeyGet)
	admin.DELETE("/keys/:key", m.handleKeyRevoke)
	admin.POST("/commands/execute", m.handleCommandExecute)
	admin.GET("/console", m.handleConsoleWS)
	admin.GET("/audit", m.handleAuditList)
	admin.GET("/cluster/masters", m.handleMasters)
	admin.POST("/cluster/masters", m.handleMasterJoin)
	admin.DELETE("/cluster/masters/:id", m.handleMasterLeave)
	admin.GET("/debug/pprof/*name", m.handlePprof)

	admin.GET("/configurations", m.handleConfigList)
	admin.GET("/configurations/:name", m.handleConfigGet)
	admin.PUT("/configurations/:name", m.handleConfigPut)
	admin.DELETE("/configurations/:name", m.handleConfigDelete)

	admin.GET("/templates", m.handleTemplateList)
	admin.POST("/templates/sync", m.handleTemplateSync)
	tpl := admin.Group("/templates/:group/:name")
	tpl.GET("", m.handleTemplateGet)
	tpl.POST("", m.handleTemplateCreate)
	tpl.DELETE("", m.handleTemplateDelete)
	tpl.GET("/files", m.handleTemplateFiles)
	tpl.GET("/files/*path", m.handleTemplateFileGet)
	tpl.POST("/files/*path", m.handleTemplateFileWrite)
	tpl.PUT("/files/*path", m.handleTemplateFileWrite)
	tpl.PATCH("/files/*path", m.handleTemplateFileWrite)
	tpl.DELETE("/files/*path", m.handleTemplateFileDelete)
	tpl.GET("/export", m.handleTemplateExport)
	tpl.POST("/export", m.handleTemplateExport)
	tpl.POST("/import", m.handleTemplateImport)
	m.bodyLimits = map[string]int64{
		"/api/instances/:id/state": m.cfg.MaxReportBytes,
	}
	m.uploads = map[string]bool{
		"/api/templates/:group/:name/files/*path": true,
		"/api/templates/:group/:name/import":      true,
	}

	admin.POST("/instances", m.handleInstanceCreate)
	admin.DELETE("/instances/:id", m.handleInstanceDelete)
	admin.PATCH("/instances/:id/lifecycle", m.handleInstanceLifecycle)
	admin.POST("/instances/:id/stop", m.handleInstanceStop) // the original's clients
	admin.POST("/instances/:id/execute", m.handleInstanceExecute)
	admin.POST("/instances/:id/command", m.handleInstanceExecute) // the original's clients
	admin.GET("/instances/:id/logs", m.handleInstanceLogs)
	admin.GET("/instances/:id/live-log", m.handleLiveLog)
	admin.GET("/instances/:id/stats", m.handleInstanceStats)
	admin.GET("/instances/:id/debug/pprof/:name", m.handleInstancePprof)
	admin.GET("/instances/:id/files", m.handleInstanceFiles)
	admin.GET("/instances/:id/files/*path", m.handleInstanceFileGet)
	admin.PUT("/instances/:id/files/*path", m.handleInstanceFilePut)
	admin.DELETE("/instances/:id/files/*path", m.handleInstanceFileDelete)
	admin.POST("/instances/:id/files/*path", m.handleInstanceFileAction)
	m.uploads[instanceFilesRoute] = true

	admin.POST("/instances/:id/backups", m.handleBackupCreate)
	admin.GET("/instances/:id/backups", m.handleBackupList)
	admin.GET("/configurations/:name/backups", m.handleConfigBackups)
	admin.GET("/backups/:backup", m.handleBackupGet)
	admin.GET("/backups/:backup/download", m.handleBackupDownload)
	admin.DELETE("/backups/:backup", m.handleBackupDelete)
	admin.POST("/backups/:backup/lock", m.handleBackupLock)
	admin.POST("/backups/:backup/unlock", m.handleBackupUnlock)
	admin.POST("/backups/:backup/restore", m.handleBackupRestore)

	admin.POST("/schedules", m.handleScheduleCreate)
	admin.GET("/schedules", m.handleScheduleList)
	admin.GET("/schedules/preview", m.handleSchedulePreview)
	admin.POST("/instances/:id/drain", m.handleDrain)
	admin.GET("/configurations/:name/scaling", m.handleScaling)
	admin.GET("/schedules/:schedule", m.handleScheduleGet)
	admin.PUT("/schedules/:schedule", m.handleSchedulePut)
	admin.DELETE("/schedules/:schedule", m.handleScheduleDelete)
	admin.POST("/schedules/:schedule/run", m.handleScheduleRun)
	admin.GET("/schedules/:schedule/runs", m.handleScheduleRuns)

	admin.GET("/events", m.handleEventList)
	admin.GET("/events/live", m.handleEventsLive)
	admin.POST("/webhooks", m.handleWebhookCreate)
	admin.GET("/webhooks", m.handleWebhookList)
	admin.DELETE("/webhooks/:webhook", m.handleWebhookDelete)
	admin.GET("/webhooks/:webhook/deliveries", m.handleWebhookDeliveries)

	admin.GET("/cluster/nodes", m.handleNodeList)
	admin.POST("/cluster/nodes", m.handleNodeCreate)
	admin.GET("/cluster/nodes/:name", m.handleNodeGet)
	admin.PATCH("/cluster/nodes/:name", m.handleNodePatch)
	admin.DELETE("/cluster/nodes/:name", m.handleNodeRevoke)

	admin.POST("/users", m.handleUserCreate)
	admin.GET("/users", m.handleUserList)
	admin.GET("/users/:name", m.handleUserGet)
	admin.PATCH("/users/:name", m.handleUserPatch)
	admin.DELETE("/users/:name", m.handleUserDelete)
	admin.POST("/users/:name/grants", m.handleGrantCreate)
	admin.GET("/users/:name/grants", m.handleGrantList)
	admin.DELETE("/users/:name/grants/:grant", m.handleGrantDelete)
	admin.GET("/me", m.handleMe)
	admin.POST("/me/keys", m.handleMeKey)
	admin.POST("/me/totp", m.handleMeTOTP)
	admin.POST("/me/totp/confirm", m.handleMeTOTPConfirm)
	admin.DELETE("/me/totp", m.handleMeTOTPDelete)
	admin.POST("/me/password", m.handleMePassword)

	m.uiRoutes(e)

	e.NoRoute(m.authenticate, func(c *gin.Context) {
		fail(c, universe.Errorf(universe.ENOTFOUND, "no such endpoint"))
	})
	e.NoMethod(m.authenticate, func(c *gin.Context) {
		fail(c, universe.Errorf(universe.EMETHODNOTALLOWED, "method not allowed on this endpoint"))
	})
	return e, nil
}

// instanceFilesRoute takes uploads (PUT) and file actions (POST, a small
// JSON body).
const instanceFilesRoute = "/api/instances/:id/files/*path"
