package master

import (
	"context"
	"errors"
	"html/template"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance"
	"github.com/universe-orchestrator/universe/master/webui"
)

// Limits of what a page shows.
const (
	uiLogLines     = 200 // lines rendered with the instance page
	uiLogBytes     = 256 << 10
	uiRowCap       = 5000      // console rows kept in the page
	uiEditBytes    = 512 << 10 // larger files are downloaded, not edited
	uiAuditEntries = 200
)

// dashAudit records a change made through the dashboard.
func (m *Master) dashAudit(c *gin.Context, command string, err error) {
	inst, cfg := m.auditTarget(c)
	m.auditOn(callerKey(c).ID(), "dashboard", command, inst, cfg, err)
}

type stateCount struct {
	State string
	N     int
}

type bulkResult struct {
	ID, Message string
	OK          bool
}

type instancesData struct {
	Instances      []api.InstanceInfo
	Total          int
	States         []stateCount
	AllStates      []string
	Configurations []string
	CreateIn       []string // the configurations the caller may create instances of
	Nodes          []string
	Filter         struct{ Configuration, State, Node string }
	Results        []bulkResult
}

// Rows renders the table's rows (see webui.InstanceRows).
func (d instancesData) Rows() template.HTML {
	rows := make([]webui.InstanceRow, len(d.Instances))
	for i, in := range d.Instances {
		rows[i] = webui.InstanceRow{ID: in.ID, Configuration: in.ConfigurationName, State: in.State, Transition: in.Transition,
			Node: in.WrapperNodeID, Reason: in.Reason, Port: in.AllocatedPort, Players: in.Players, MaxPlayers: in.MaxPlayers, StartedAt: in.StartedAt,
			Draining: in.Draining, Full: in.State == "ONLINE" && !in.Joinable && in.MaxPlayers > 0 && in.Players > 0}
	}
	return webui.InstanceRows(rows, time.Now())
}

func (m *Master) instancesData(c *gin.Context) instancesData {
	var d instancesData
	d.Filter.Configuration, d.Filter.State, d.Filter.Node = c.Query("configuration"), c.Query("state"), c.Query("node")
	all := m.instances.List(instance.Filter{})
	if r := callerRights(c); r != nil { // a member sees what it may read
		all = slices.DeleteFunc(all, func(in api.InstanceInfo) bool { return !r.Allowed("instance.read", in.ID, in.ConfigurationName) })
	}
	d.Total = len(all)
	counts := map[string]int{}
	nodes := map[string]bool{}
	for _, in := range all {
		counts[in.State]++
		nodes[in.WrapperNodeID] = true
		if (d.Filter.Configuration == "" || in.ConfigurationName == d.Filter.Configuration) &&
			(d.Filter.State == "" || in.State == d.Filter.State) &&
			(d.Filter.Node == "" || in.WrapperNodeID == d.Filter.Node) {
			d.Instances = append(d.Instances, in)
		}
	}
	d.AllStates = []string{"CREATING", "ONLINE", "OFFLINE", "STOPPED"}
	for _, s := range d.AllStates {
		if counts[s] > 0 {
			d.States = append(d.States, stateCount{s, counts[s]})
		}
	}
	if cfgs, err := m.db.ListConfigurations(); err == nil {
		r := callerRights(c)
		for _, cfg := range cfgs {
			if r == nil || r.Allowed("instance.read", "", cfg.Name) || slices.ContainsFunc(all, func(in api.InstanceInfo) bool { return in.ConfigurationName == cfg.Name }) {
				d.Configurations = append(d.Configurations, cfg.Name)
			}
			if r == nil || r.Allowed("instance.create", "", cfg.Name) {
				d.CreateIn = append(d.CreateIn, cfg.Name)
			}
		}
	}
	for n := range nodes {
		d.Nodes = append(d.Nodes, n)
	}
	sort.Strings(d.Nodes)
	return d
}

func (m *Master) uiInstances(c *gin.Context) {
	m.render(c, http.StatusOK, "instances", uiPage{Title: "Instances", Nav: "instances", Data: m.instancesData(c)})
}

func (m *Master) uiInstanceCreate(c *gin.Context) {
	name := c.PostForm("configuration")
	var info api.InstanceInfo
	var err error
	if r := callerRights(c); r != nil && !r.Allowed("instance.create", "", name) {
		err = needs("instance.create", "configuration "+name)
	} else {
		info, err = m.instances.Create(name, byOf(c))
	}
	m.dashAudit(c, "create instance configuration="+name+" id="+info.ID, err)
	if err != nil {
		d := m.instancesData(c)
		m.render(c, statusOf(universe.ErrorCode(err)), "instances", uiPage{Title: "Instances", Nav: "instances", Alert: universe.ErrorMessage(err), Data: d})
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/instances/"+url.PathEscape(info.ID))
}

// act runs one lifecycle action on an instance; what happened, in words.
func (m *Master) act(c *gin.Context, id, action string) (string, error) {
	in, err := m.instances.Get(id)
	if err != nil {
		return "", err
	}
	switch action {
	case "start", "stop", "restart", "kill":
		if err := m.mayOnInstance(c, "power."+action, id); err != nil {
			return "", err
		}
	}
	by := byOf(c)
	accepted := false
	switch action {
	case "start":
		accepted, err = in.Start(by)
	case "stop":
		accepted, err = in.Stop(by)
	case "restart":
		accepted, err = true, in.Restart(by)
	case "kill":
		if in.Running() {
			accepted, err = true, in.Kill(by)
		}
	default:
		err = universe.Errorf(universe.EINVALID, "action must be start, stop, restart or kill")
	}
	m.dashAudit(c, action+" instance id="+id, err)
	if err != nil {
		return "", err
	}
	if accepted {
		return action + ": accepted", nil
	}
	return action + ": nothing to do", nil
}

// uiBulk runs an action on each selected instance and shows a result per
// instance (the page's script does the same through the REST API).
func (m *Master) uiBulk(c *gin.Context) {
	action := c.PostForm("action")
	ids := c.PostFormArray("id")
	var res []bulkResult
	if len(ids) == 0 {
		res = append(res, bulkResult{Message: "Select at least one instance."})
	}
	for _, id := range ids {
		msg, err := m.act(c, id, action)
		if err != nil {
			res = append(res, bulkResult{ID: id, Message: universe.ErrorMessage(err)})
			continue
		}
		res = append(res, bulkResult{ID: id, Message: msg, OK: true})
	}
	d := m.instancesData(c)
	d.Results = res
	m.render(c, http.StatusOK, "instances", uiPage{Title: "Instances", Nav: "instances", Data: d})
}

type fileView struct {
	Path, Content, Why string
	Editable           bool
}

type crumb struct{ Name, Path string }

type filesData struct {
	Dir     string
	Crumbs  []crumb
	Entries []fileEntry
	View    *fileView
}

type fileEntry struct {
	api.TemplateFile
	Name string
	Zip  bool // a zip archive: the page offers to unpack it
}

type instanceData struct {
	Instance             api.InstanceInfo
	Lines                []api.LogLine
	LineCount            int
	RowCap               int
	CPU, Memory          string
	CPUPoints, MemPoints string
	FilesTab             bool
	Files                *filesData
	BackupsTab           bool
	Backups              *backupsData
	SchedulesTab         bool
	Schedules            *schedulesData
	MembersTab           bool
	Members              *membersData
	R                    uiRights // the caller's (its parts are rendered with this data alone)
}

func (m *Master) instancePage(c *gin.Context) (*instance.Instance, *instanceData) {
	in, err := m.instances.Get(c.Param("id"))
	if err != nil {
		m.uiFail(c, "instances", "/ui/instances", err)
		return nil, nil
	}
	d := &instanceData{Instance: in.Info(), RowCap: uiRowCap, CPU: "—", Memory: "—", R: rightsFor(c)}
	if s, err := m.statsOf(d.Instance); err == nil && s.Current != nil {
		d.CPU = strconv.FormatFloat(s.Current.CPU, 'f', 2, 64) + " cores"
		d.Memory = strconv.FormatFloat(float64(s.Current.MemoryBytes)/(1<<20), 'f', 1, 64) + " MiB"
		if lim := d.Instance.AllocatedRAMMB; lim > 0 {
			d.Memory += " of " + strconv.Itoa(lim) + " MiB"
		}
		cpu := make([]float64, len(s.Samples))
		mem := make([]float64, len(s.Samples))
		for i, x := range s.Samples {
			cpu[i], mem[i] = x.CPU, float64(x.MemoryBytes)
		}
		d.CPUPoints, d.MemPoints = sparkPoints(cpu), sparkPoints(mem)
	}
	return in, d
}

// sparkPoints scales values into the 120×40 box of a sparkline.
func sparkPoints(v []float64) string {
	if len(v) == 0 {
		return ""
	}
	maxV := 1e-9
	for _, x := range v {
		maxV = max(maxV, x)
	}
	step := 0.0
	if len(v) > 1 {
		step = 120 / float64(len(v)-1)
	}
	var b strings.Builder
	for i, x := range v {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatFloat(float64(i)*step, 'f', 1, 64))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(40-x/maxV*36-2, 'f', 1, 64))
	}
	return b.String()
}

func (m *Master) uiInstance(c *gin.Context) {
	in, d := m.instancePage(c)
	if in == nil {
		return
	}
	d.Lines, _, _ = in.Log().Last(uiLogLines, uiLogBytes)
	d.LineCount = len(d.Lines)
	m.render(c, http.StatusOK, "instance", uiPage{Title: in.ID(), Nav: "instances", Data: d})
}

func (m *Master) uiPower(c *gin.Context) {
	id := c.Param("id")
	if _, err := m.act(c, id, c.PostForm("action")); err != nil {
		m.uiFail(c, "instances", "/ui/instances/"+url.PathEscape(id), err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/instances/"+url.PathEscape(id))
}

// uiDrain drains an instance: stopped once empty, or in 30 minutes.
func (m *Master) uiDrain(c *gin.Context) {
	id := c.Param("id")
	in, err := m.instances.Get(id)
	if err == nil {
		_, err = in.Drain(m.cfg.Now().Add(30 * time.Minute))
		m.scale.s.Trigger()
	}
	m.dashAudit(c, "drain instance id="+id, err)
	if err != nil {
		m.uiFail(c, "instances", "/ui/instances/"+url.PathEscape(id), err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/instances/"+url.PathEscape(id))
}

func (m *Master) uiCommand(c *gin.Context) {
	id := c.Param("id")
	in, err := m.instances.Get(id)
	if err == nil {
		cmd := c.PostForm("command")
		err = in.Execute(cmd)
		m.dashAudit(c, "execute id="+id+" command="+cmd, err)
	}
	if err != nil {
		m.uiFail(c, "instances", "/ui/instances/"+url.PathEscape(id), err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/instances/"+url.PathEscape(id))
}

// uiLogDownload sends every line the log still holds as text.
func (m *Master) uiLogDownload(c *gin.Context) {
	in, err := m.instances.Get(c.Param("id"))
	if err != nil {
		m.uiFail(c, "instances", "/ui/instances", err)
		return
	}
	l := in.Log()
	total := l.Total()
	c.Header("Content-Type", "text/plain; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="`+in.ID()+`.log"`)
	c.Status(http.StatusOK)
	var buf []byte
	for from := uint64(1); from <= total; {
		lines := l.Read(from, total+1, 256<<10)
		if len(lines) == 0 {
			break
		}
		buf = buf[:0]
		for _, ln := range lines {
			if ln.Seq > from {
				buf = append(buf, "[… "+strconv.FormatUint(ln.Seq-from, 10)+" lines are no longer kept]\n"...)
			}
			buf = append(buf, ln.Line...)
			buf = append(buf, '\n')
			from = ln.Seq + 1
		}
		if _, err := c.Writer.Write(buf); err != nil {
			return
		}
	}
}

// ---- files ----

func (m *Master) uiFiles(c *gin.Context) {
	in, d := m.instancePage(c)
	if in == nil {
		return
	}
	d.FilesTab = true
	back := "/ui/instances/" + url.PathEscape(in.ID())
	dir, err := m.filesOf(in.ID())
	if err != nil {
		m.uiFail(c, "instances", back, err)
		return
	}
	fd := &filesData{Dir: strings.Trim(c.Query("path"), "/")}
	list, _, err := dir.List(fd.Dir, false)
	if universe.ErrorCode(err) == universe.ENOTFOUND && fd.Dir == "" {
		list, err = nil, nil // no folder yet
	}
	if err != nil {
		m.uiFail(c, "instances", back+"/files", err)
		return
	}
	if fd.Dir != "" {
		acc := ""
		for _, part := range strings.Split(fd.Dir, "/") {
			acc = path.Join(acc, part)
			fd.Crumbs = append(fd.Crumbs, crumb{Name: part, Path: acc})
		}
	}
	for _, f := range list {
		fd.Entries = append(fd.Entries, fileEntry{TemplateFile: f, Name: path.Base(f.Path), Zip: !f.Dir && strings.HasSuffix(strings.ToLower(f.Path), ".zip")})
	}
	if v := c.Query("view"); v != "" && m.mayOnInstance(c, "file.read", in.ID()) != nil {
		fd.View = &fileView{Path: v, Why: "You may list this instance's files, not read them (file.read)."}
	} else if v != "" {
		fd.View = viewFile(v, func(p string) ([]byte, int64, error) { return readSmall(dir, p, uiEditBytes) })
	}
	d.Files = fd
	m.render(c, http.StatusOK, "instance", uiPage{Title: in.ID() + " files", Nav: "instances", Data: d})
}

// viewFile reads a file for the editor: small UTF-8 text only. read
// gives at most uiEditBytes (errTooBig past that) and the file's size.
func viewFile(p string, read func(string) ([]byte, int64, error)) *fileView {
	v := &fileView{Path: p}
	b, size, err := read(p)
	switch {
	case errors.Is(err, errTooBig):
		v.Why = "This file is too large to edit here (" + strconv.FormatInt(size, 10) + " bytes); download it instead."
	case err != nil:
		v.Why = universe.ErrorMessage(err)
	case !utf8.Valid(b):
		v.Why = "This file is not text; download it instead."
	default:
		v.Content, v.Editable = string(b), true
	}
	return v
}

func (m *Master) uiFilesBack(c *gin.Context, dir string) {
	u := "/ui/instances/" + url.PathEscape(c.Param("id")) + "/files"
	if dir != "" {
		u += "?path=" + url.QueryEscape(dir)
	}
	c.Redirect(http.StatusSeeOther, u)
}

func (m *Master) uiFilesUpload(c *gin.Context) {
	dir := strings.Trim(c.Query("dir"), "/")
	f, err := m.filesOf(c.Param("id"))
	if err == nil {
		err = eachUpload(c, func(name string, r io.Reader) error {
			_, err := f.Write(path.Join(dir, name), r)
			return err
		})
	}
	m.dashAudit(c, "upload files id="+c.Param("id")+" dir="+dir, err)
	if err != nil {
		m.uiFail(c, "instances", "/ui/instances/"+url.PathEscape(c.Param("id"))+"/files", err)
		return
	}
	m.uiFilesBack(c, dir)
}

// eachUpload calls f with every file of a multipart form, streamed.
func eachUpload(c *gin.Context, f func(name string, r io.Reader) error) error {
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return universe.Errorf(universe.EINVALID, "send the files as multipart/form-data")
	}
	n := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return universe.Errorf(universe.EINVALID, "the upload is malformed or too large")
		}
		if part.FileName() == "" {
			continue
		}
		n++
		if err := f(uploadName(part), part); err != nil {
			return err
		}
	}
	if n == 0 {
		return universe.Errorf(universe.EINVALID, "choose at least one file")
	}
	return nil
}

// uploadName is the file's name as sent, with no folders.
func uploadName(p *multipart.Part) string {
	return path.Base(strings.ReplaceAll(p.FileName(), `\`, "/"))
}

func (m *Master) uiFilesSave(c *gin.Context) {
	fp := c.Query("path")
	f, err := m.filesOf(c.Param("id"))
	if err == nil {
		_, err = f.Write(fp, strings.NewReader(c.PostForm("content")))
	}
	m.dashAudit(c, "save file id="+c.Param("id")+" path="+fp, err)
	if err != nil {
		m.uiFail(c, "instances", "/ui/instances/"+url.PathEscape(c.Param("id"))+"/files", err)
		return
	}
	m.uiFilesBack(c, path.Dir(fp))
}

func (m *Master) uiFilesDelete(c *gin.Context) {
	fp := c.Query("path")
	f, err := m.filesOf(c.Param("id"))
	if err == nil {
		err = f.Remove(fp)
	}
	m.dashAudit(c, "delete file id="+c.Param("id")+" path="+fp, err)
	if err != nil {
		m.uiFail(c, "instances", "/ui/instances/"+url.PathEscape(c.Param("id"))+"/files", err)
		return
	}
	m.uiFilesBack(c, strings.Trim(c.Query("dir"), "/"))
}

// uiFilesNew makes an empty file or a folder in the folder shown.
func (m *Master) uiFilesNew(c *gin.Context) {
	dir := strings.Trim(c.Query("dir"), "/")
	p := strings.Trim(strings.TrimSpace(c.PostForm("name")), "/")
	if dir != "" && dir != "." {
		p = dir + "/" + p
	}
	f, err := m.filesOf(c.Param("id"))
	if err == nil {
		if c.PostForm("kind") == "folder" {
			err = f.Mkdir(p)
		} else {
			// New and empty: never over what is there.
			list, _, lerr := f.List(path.Dir(p), false)
			for _, e := range list {
				if e.Path == p {
					lerr = universe.Errorf(universe.ECONFLICT, "%q exists already", p)
				}
			}
			if err = lerr; err == nil || universe.ErrorCode(err) == universe.ENOTFOUND {
				_, err = f.Write(p, strings.NewReader(""))
			}
		}
	}
	m.filesActionBack(c, "new "+c.PostForm("kind")+" path="+p, dir, err)
}

// uiFilesRename moves a file or folder to the path typed beside it.
func (m *Master) uiFilesRename(c *gin.Context) {
	from, to := c.Query("path"), strings.Trim(strings.TrimSpace(c.PostForm("to")), "/")
	f, err := m.filesOf(c.Param("id"))
	if err == nil {
		err = f.Rename(from, to)
	}
	m.filesActionBack(c, "rename path="+from+" to="+to, strings.Trim(c.Query("dir"), "/"), err)
}

// uiFilesUnzip unpacks a zip archive into the folder it is in.
func (m *Master) uiFilesUnzip(c *gin.Context) {
	p, dir := c.Query("path"), strings.Trim(c.Query("dir"), "/")
	f, err := m.filesOf(c.Param("id"))
	if err == nil {
		_, err = f.Unzip(p, dir)
	}
	m.filesActionBack(c, "unzip path="+p, dir, err)
}

// filesActionBack audits a file action and goes back to its folder (or
// shows why it failed).
func (m *Master) filesActionBack(c *gin.Context, what, dir string, err error) {
	m.dashAudit(c, what+" id="+c.Param("id"), err)
	if err != nil {
		m.uiFail(c, "instances", "/ui/instances/"+url.PathEscape(c.Param("id"))+"/files", err)
		return
	}
	m.uiFilesBack(c, dir)
}

// ---- configurations ----

type configRow struct {
	api.Configuration
	Running int
}

func (m *Master) uiConfigurations(c *gin.Context) {
	list, err := m.db.ListConfigurations()
	if err != nil {
		m.uiFail(c, "configurations", "/ui/instances", err)
		return
	}
	counts := map[string]int{}
	for _, in := range m.instances.List(instance.Filter{}) {
		if in.State == "ONLINE" || in.State == "CREATING" {
			counts[in.ConfigurationName]++
		}
	}
	rows := make([]configRow, 0, len(list))
	r := callerRights(c)
	for _, cfg := range list {
		if r != nil && !r.Allowed("config.read", "", cfg.Name) {
			continue
		}
		rows = append(rows, configRow{Configuration: instance.Normalize(cfg), Running: counts[cfg.Name]})
	}
	m.render(c, http.StatusOK, "configurations", uiPage{Title: "Configurations", Nav: "configurations", Data: rows})
}

type configField struct {
	Name, Label, Type, Error string
	Value                    any
	Editable                 bool
}

type configData struct {
	C         api.Configuration
	New       bool
	Templates string
	Runtimes  []string
	Policies  []string
	Errors    map[string]string
	Schedules *schedulesData // a stored configuration's (admins)
	Members   *membersData   // its grants (who may grant there)
	Scaling   *api.ScalingStatus
}

// F builds one form field for the template.
func (d configData) F(name, label string, value any, typ string, editable bool) configField {
	return configField{Name: name, Label: label, Value: value, Type: typ, Editable: editable, Error: d.Errors[name]}
}

func (m *Master) configData(cfg api.Configuration, isNew bool) configData {
	d := configData{C: cfg, New: isNew, Errors: map[string]string{},
		Policies: []string{api.RestartNever, api.RestartOnFailure, api.RestartAlways}}
	for _, r := range m.instances.RuntimeInfos() {
		d.Runtimes = append(d.Runtimes, r.Name)
	}
	var t []string
	for _, tp := range cfg.TemplateInstallationConfig.AllOf {
		t = append(t, tp.Group+"/"+tp.Name)
	}
	d.Templates = strings.Join(t, ", ")
	return d
}

func (m *Master) uiConfiguration(c *gin.Context) {
	name := c.Param("name")
	if name == "new" {
		cfg := instance.Normalize(api.Configuration{Runtime: "process", AvailablePorts: api.Ports{Min: 25565, Max: 25600}})
		m.render(c, http.StatusOK, "configuration", uiPage{Title: "New configuration", Nav: "configurations", Data: m.configData(cfg, true)})
		return
	}
	m.uiConfigurationWith(c, defaultScheduleForm, "", http.StatusOK)
}

// uiConfigurationWith shows a stored configuration, its schedules' form
// holding form and why it was refused.
func (m *Master) uiConfigurationWith(c *gin.Context, form scheduleForm, why string, status int) {
	m.uiConfigurationPage(c, form, why, "", status)
}

// uiConfigurationPage shows a stored configuration with its schedules
// (an admin's) and members (for who may grant there), each form with why
// it was refused.
func (m *Master) uiConfigurationPage(c *gin.Context, form scheduleForm, why, membersWhy string, status int) {
	name := c.Param("name")
	cfg, err := m.db.GetConfiguration(name)
	if err != nil {
		m.uiFail(c, "configurations", "/ui/configurations", err)
		return
	}
	d := m.configData(instance.Normalize(cfg), false)
	if form.Type == defaultScheduleForm.Type && form.Payload == defaultScheduleForm.Payload && why == "" {
		form.Type, form.Payload = api.TaskRollingRestart, ""
	}
	rights := rightsFor(c)
	if rights.Can("schedule.read", "", name) {
		if d.Schedules, err = m.schedulesFor(c, "", name, form, why); err != nil {
			m.uiFail(c, "configurations", "/ui/configurations", err)
			return
		}
	}
	if rights.Can("user.grant", "", name) {
		d.Members = m.membersOf(c, "", name, membersWhy)
	}
	if st := m.scale.s.Status(name); cfg.Scaling != nil || len(st.Decisions) > 0 {
		if len(st.Decisions) > 10 {
			st.Decisions = st.Decisions[:10]
		}
		d.Scaling = &st
	}
	m.render(c, status, "configuration", uiPage{Title: name, Nav: "configurations", Data: d})
}

// uiConfigurationSave applies the form to the stored configuration (or a
// new one) and saves it; the server's validation errors are shown at
// their fields.
func (m *Master) uiConfigurationSave(c *gin.Context) {
	isNew := c.Param("name") == "new"
	if r := callerRights(c); isNew && r != nil && !r.Admin {
		m.uiFail(c, "configurations", "/ui/configurations", universe.Errorf(universe.EFORBIDDEN, "this needs an admin: a member changes the configurations it was granted"))
		return
	}
	var cfg api.Configuration
	if !isNew {
		old, err := m.db.GetConfiguration(c.Param("name"))
		if err != nil {
			m.uiFail(c, "configurations", "/ui/configurations", err)
			return
		}
		cfg = old
	} else {
		cfg = instance.Normalize(api.Configuration{})
		cfg.Name = strings.TrimSpace(c.PostForm("name"))
	}
	errs := map[string]string{}
	num := func(field string, dst *int) {
		s := strings.TrimSpace(c.PostForm(field))
		if s == "" {
			*dst = 0
			return
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			errs[field] = "must be a whole number"
			return
		}
		*dst = n
	}
	cfg.Runtime = c.PostForm("runtime")
	cfg.Command = c.PostForm("command")
	cfg.Image = strings.TrimSpace(c.PostForm("image"))
	num("ramMB", &cfg.RAMMB)
	num("cpu", &cfg.CPU)
	num("portMin", &cfg.AvailablePorts.Min)
	num("portMax", &cfg.AvailablePorts.Max)
	num("minimumServiceCount", &cfg.MinimumServiceCount)
	num("maximumServiceCount", &cfg.MaximumServiceCount)
	num("stopTimeoutSeconds", &cfg.StopTimeoutSeconds)
	cfg.RestartPolicy = c.PostForm("restartPolicy")
	cfg.StopCommand = c.PostForm("stopCommand")
	cfg.Static = c.PostForm("static") == "true"
	cfg.Nodes = splitList(c.PostForm("nodes"))
	cfg.TemplateInstallationConfig.AllOf = nil
	for _, t := range splitList(c.PostForm("templates")) {
		g, n, ok := strings.Cut(t, "/")
		if !ok {
			errs["templates"] = "write each template as group/name"
			continue
		}
		cfg.TemplateInstallationConfig.AllOf = append(cfg.TemplateInstallationConfig.AllOf, api.Template{Group: g, Name: n, Storage: "local"})
	}
	var err error
	if len(errs) == 0 {
		if isNew {
			if _, gerr := m.db.GetConfiguration(cfg.Name); gerr == nil {
				err = universe.Errorf(universe.EINVALID, "invalid configuration: name: a configuration named %q exists already", cfg.Name)
			}
		}
		if err == nil {
			err = m.putConfiguration(cfg)
		}
		m.dashAudit(c, "save configuration name="+cfg.Name, err)
		if err == nil {
			c.Redirect(http.StatusSeeOther, "/ui/configurations")
			return
		}
		fieldErrors(err, errs)
	}
	d := m.configData(cfg, isNew)
	d.Errors = errs
	m.render(c, http.StatusBadRequest, "configuration", uiPage{Title: "Configuration", Nav: "configurations", Data: d})
}

// formField maps a configuration's JSON field to the form's field that
// shows its errors.
var formField = map[string]string{
	"name": "name", "runtime": "runtime", "command": "command", "image": "image", "ramMB": "ramMB", "cpu": "cpu",
	"minimumServiceCount": "minimumServiceCount", "maximumServiceCount": "maximumServiceCount",
	"restartPolicy": "restartPolicy", "stopCommand": "stopCommand", "stopTimeoutSeconds": "stopTimeoutSeconds",
	"nodes": "nodes", "availablePorts": "portMin", "templateInstallationConfig": "templates",
}

// fieldErrors spreads "invalid configuration: field: message; ..." over
// the form's fields; what names no field of the form goes to "other".
func fieldErrors(err error, errs map[string]string) {
	add := func(field, text string) {
		if errs[field] != "" {
			errs[field] += "; "
		}
		errs[field] += text
	}
	msg := universe.ErrorMessage(err)
	rest, ok := strings.CutPrefix(msg, "invalid configuration: ")
	if !ok {
		add("other", msg)
		return
	}
	for _, part := range strings.Split(rest, "; ") {
		name, text, ok := strings.Cut(part, ": ")
		if field, known := formField[name]; ok && known {
			add(field, text)
		} else {
			add("other", part)
		}
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ---- templates ----

type templatesData struct {
	List  []api.TemplateInfo
	Open  *api.TemplateInfo
	Files []api.TemplateFile
	View  *fileView
}

func (m *Master) uiTemplates(c *gin.Context) {
	list, err := m.templates.List()
	if err != nil {
		m.uiFail(c, "templates", "/ui/instances", err)
		return
	}
	d := templatesData{List: list}
	if g, n := c.Param("group"), c.Param("name"); g != "" {
		t, err := m.templates.Get(g, n)
		if err != nil {
			m.uiFail(c, "templates", "/ui/templates", err)
			return
		}
		d.Open = &t
		if d.Files, err = m.templates.Files(g, n); err != nil {
			m.uiFail(c, "templates", "/ui/templates", err)
			return
		}
		if v := c.Query("view"); v != "" {
			d.View = viewFile(v, func(p string) ([]byte, int64, error) {
				f, fi, err := m.templates.OpenFile(g, n, p)
				if err != nil {
					return nil, 0, err
				}
				defer f.Close()
				if fi.Size() > uiEditBytes {
					return nil, fi.Size(), errTooBig
				}
				b, err := io.ReadAll(io.LimitReader(f, uiEditBytes))
				return b, fi.Size(), err
			})
		}
	}
	m.render(c, http.StatusOK, "templates", uiPage{Title: "Templates", Nav: "templates", Data: d})
}

func (m *Master) templateBack(c *gin.Context, err error, what string) {
	g, n := c.Param("group"), c.Param("name")
	m.dashAudit(c, what+" template="+g+"/"+n, err)
	back := "/ui/templates/" + url.PathEscape(g) + "/" + url.PathEscape(n)
	if err != nil {
		m.uiFail(c, "templates", back, err)
		return
	}
	c.Redirect(http.StatusSeeOther, back)
}

func (m *Master) uiTemplateCreate(c *gin.Context) {
	g, n := strings.TrimSpace(c.PostForm("group")), strings.TrimSpace(c.PostForm("name"))
	err := m.templates.Create(g, n)
	m.dashAudit(c, "create template="+g+"/"+n, err)
	if err != nil {
		m.uiFail(c, "templates", "/ui/templates", err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/templates/"+url.PathEscape(g)+"/"+url.PathEscape(n))
}

func (m *Master) uiTemplateUpload(c *gin.Context) {
	g, n := c.Param("group"), c.Param("name")
	err := eachUpload(c, func(name string, r io.Reader) error {
		_, err := m.templates.WriteFile(g, n, name, r, false)
		return err
	})
	m.templateBack(c, err, "upload files")
}

func (m *Master) uiTemplateImport(c *gin.Context) {
	g, n := c.Param("group"), c.Param("name")
	err := eachUpload(c, func(_ string, r io.Reader) error {
		tmp, err := os.CreateTemp("", "universe-import-*.zip")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		size, err := io.Copy(tmp, r)
		if err != nil {
			return err
		}
		_, err = m.templates.Import(g, n, tmp, size, m.cfg.ImportLimits, true)
		return err
	})
	m.templateBack(c, err, "import zip")
}

func (m *Master) uiTemplateSave(c *gin.Context) {
	_, err := m.templates.WriteFile(c.Param("group"), c.Param("name"), c.Query("path"), strings.NewReader(c.PostForm("content")), false)
	m.templateBack(c, err, "save file "+c.Query("path"))
}

// uiTemplateRemove deletes a whole template.
func (m *Master) uiTemplateRemove(c *gin.Context) {
	g, n := c.Param("group"), c.Param("name")
	err := m.templates.Delete(g, n)
	m.dashAudit(c, "delete template="+g+"/"+n, err)
	if err != nil {
		m.uiFail(c, "templates", "/ui/templates", err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/templates")
}

// uiConfigurationDelete deletes a configuration (force: its instances
// too, at once).
func (m *Master) uiConfigurationDelete(c *gin.Context) {
	name, force := c.Param("name"), c.PostForm("force") == "true"
	err := m.deleteConfiguration(name, force, callerKey(c).Label())
	m.dashAudit(c, "delete configuration="+name+" force="+strconv.FormatBool(force), err)
	if err != nil {
		m.uiFail(c, "configurations", "/ui/configurations/"+url.PathEscape(name), err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/configurations")
}

func (m *Master) uiTemplateDelete(c *gin.Context) {
	err := m.templates.RemoveFile(c.Param("group"), c.Param("name"), c.Query("path"))
	m.templateBack(c, err, "delete file "+c.Query("path"))
}

// ---- keys, audit, nodes ----

type keysData struct {
	Keys    []universe.KeyRecord
	Self    string
	Created *struct{ Label, Token string }
}

func (m *Master) keysData(c *gin.Context) keysData {
	var d keysData
	for _, k := range m.keys.List() {
		if k.Scope != universe.ScopeInstance { // instances' own keys come and go with them
			d.Keys = append(d.Keys, k)
		}
	}
	d.Self = callerKey(c).ID()
	return d
}

func (m *Master) uiKeys(c *gin.Context) {
	m.render(c, http.StatusOK, "keys", uiPage{Title: "Keys", Nav: "keys", Data: m.keysData(c)})
}

// uiKeyCreate creates a key and shows its token this once (the answer is
// not cached, and the page's script removes it when the operator is done).
func (m *Master) uiKeyCreate(c *gin.Context) {
	label := strings.TrimSpace(c.PostForm("label"))
	scope, err := universe.ParseScope(c.PostForm("scope"))
	var expiresIn time.Duration
	if err == nil && c.PostForm("expires") != "" {
		expiresIn, err = universe.ParseDuration(c.PostForm("expires"))
	}
	var token string
	if err == nil {
		_, token, err = m.keys.CreateAudited(label, scope, expiresIn, func(universe.KeyRecord) universe.AuditEntry {
			return m.auditEntry(callerKey(c).ID(), "dashboard", "create key label="+label+" scope="+string(scope), nil, nil)
		})
	}
	d := m.keysData(c)
	if err != nil {
		m.render(c, statusOf(universe.ErrorCode(err)), "keys", uiPage{Title: "Keys", Nav: "keys", Alert: universe.ErrorMessage(err), Data: d})
		return
	}
	d.Created = &struct{ Label, Token string }{label, token}
	m.render(c, http.StatusCreated, "keys", uiPage{Title: "Keys", Nav: "keys", Data: d})
}

func (m *Master) uiKeyRevoke(c *gin.Context) {
	rec, err := m.keys.Revoke(c.Param("key"))
	m.dashAudit(c, "revoke key="+c.Param("key"), err)
	if err != nil {
		m.uiFail(c, "keys", "/ui/keys", err)
		return
	}
	if rec.ID == callerKey(c).ID() {
		c.Redirect(http.StatusSeeOther, "/ui/") // its own session ended with it
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/keys")
}

func (m *Master) uiAudit(c *gin.Context) {
	entries, err := m.auditFor(c, uiAuditEntries)
	if err != nil {
		m.uiFail(c, "audit", "/ui/instances", err)
		return
	}
	// Who, by the key's label (its id once the key is gone).
	rows := make([]auditRow, len(entries))
	labels := map[string]string{}
	for i, e := range entries {
		who, ok := labels[e.KeyID]
		if !ok {
			who = e.KeyID
			if k, err := m.keys.ByID(e.KeyID); err == nil {
				who = k.Label()
			}
			labels[e.KeyID] = who
		}
		rows[i] = auditRow{AuditEntry: e, Who: who}
	}
	m.render(c, http.StatusOK, "audit", uiPage{Title: "Audit", Nav: "audit", Data: rows})
}

// auditRow is an audit entry as the dashboard shows it.
type auditRow struct {
	universe.AuditEntry
	Who string // the key's label, or its id once the key is gone
}

type nodesData struct {
	Nodes   []api.ClusterNode
	Created *api.NodeCreated
	Error   string
	Masters []api.Master // in a cluster of masters
}

func (m *Master) nodesData() nodesData {
	var d nodesData
	nodes, err := m.nodes()
	if err != nil {
		// An unreachable registry never blanks the page: the master's own
		// node is still shown, with the reason.
		d.Error = "The node list could not be read: " + universe.ErrorMessage(err)
		nodes = []api.ClusterNode{m.localNode()}
	}
	d.Nodes = nodes
	if m.ha != nil {
		ctx, cancel := context.WithTimeout(m.ctx, 2*time.Second)
		d.Masters = m.ha.Masters(ctx)
		cancel()
	}
	return d
}

func (m *Master) uiNodes(c *gin.Context) {
	m.render(c, http.StatusOK, "nodes", uiPage{Title: "Nodes", Nav: "nodes", Data: m.nodesData()})
}

func (m *Master) uiNodeCreate(c *gin.Context) {
	req := api.NodeCreateRequest{Name: strings.TrimSpace(c.PostForm("name"))}
	req.RAMMB, _ = strconv.Atoi(c.PostForm("ramMB"))
	req.CPU, _ = strconv.Atoi(c.PostForm("cpu"))
	created, err := m.createNode(req)
	m.dashAudit(c, "create node name="+req.Name, err)
	d := m.nodesData()
	if err != nil {
		m.render(c, statusOf(universe.ErrorCode(err)), "nodes", uiPage{Title: "Nodes", Nav: "nodes", Alert: universe.ErrorMessage(err), Data: d})
		return
	}
	d.Created = &created
	m.render(c, http.StatusCreated, "nodes", uiPage{Title: "Nodes", Nav: "nodes", Data: d})
}

func (m *Master) uiNodeAction(c *gin.Context) {
	name := c.Param("name")
	var err error
	switch a := c.PostForm("action"); a {
	case "drain", "undrain":
		_, err = m.hub.SetDraining(name, a == "drain")
	case "revoke":
		err = m.hub.Revoke(name)
	default:
		err = universe.Errorf(universe.EINVALID, "action must be drain, undrain or revoke")
	}
	m.dashAudit(c, c.PostForm("action")+" node="+name, err)
	if err != nil {
		m.uiFail(c, "nodes", "/ui/nodes", err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/nodes")
}
