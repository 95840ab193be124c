package instance

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/runtime"
	"github.com/universe-orchestrator/universe/instance/template"
)

// Defaults of configurations (the contract's, except runtime "process" and
// minimumServiceCount 0).
const (
	DefaultRuntime     = "process"
	DefaultRAMMB       = 2048
	DefaultCPU         = 100
	DefaultHostAddress = "127.0.0.1"
	DefaultPortMin     = 25565
	DefaultPortMax     = 25570
	DefaultStopTimeout = 30
	DefaultCrashLoops  = 5
	DefaultCrashWindow = 60
)

// Normalize fills the defaults of c and replaces nil lists and maps by
// empty ones, so that every field is present on the wire.
func Normalize(c api.Configuration) api.Configuration {
	if c.Runtime == "" {
		c.Runtime = DefaultRuntime
	}
	if c.Runtime == DockerRuntime {
		if c.DockerOptions == nil {
			c.DockerOptions = &api.DockerOptions{}
		}
		if c.DockerOptions.ImagePullPolicy == "" {
			c.DockerOptions.ImagePullPolicy = "missing"
		}
	}
	if c.Scaling != nil {
		s := *c.Scaling
		if s.FullAt == 0 {
			s.FullAt = 0.9
		}
		if s.ScaleDownAfterSeconds == 0 {
			s.ScaleDownAfterSeconds = 300
		}
		c.Scaling = &s
	}
	if c.HealthCheck != nil {
		h := *c.HealthCheck
		if h.Type == "http" && h.Path == "" {
			h.Path = "/"
		}
		if h.IntervalSeconds == 0 {
			h.IntervalSeconds = 10
		}
		if h.TimeoutSeconds == 0 {
			h.TimeoutSeconds = min(5, h.IntervalSeconds)
		}
		if h.GraceSeconds == 0 {
			h.GraceSeconds = 30
		}
		if h.Failures == 0 {
			h.Failures = 3
		}
		c.HealthCheck = &h
	}
	if c.RAMMB == 0 {
		c.RAMMB = DefaultRAMMB
	}
	if c.CPU == 0 {
		c.CPU = DefaultCPU
	}
	if c.HostAddress == "" {
		c.HostAddress = DefaultHostAddress
	}
	if c.AvailablePorts.Min == 0 && c.AvailablePorts.Max == 0 {
		c.AvailablePorts = api.Ports{Min: DefaultPortMin, Max: DefaultPortMax}
	}
	if c.StopTimeoutSeconds == 0 {
		c.StopTimeoutSeconds = DefaultStopTimeout
	}
	if c.RestartPolicy == "" {
		c.RestartPolicy = api.RestartNever
	}
	if c.CrashLoopFailures == 0 {
		c.CrashLoopFailures = DefaultCrashLoops
	}
	if c.CrashLoopWindowSeconds == 0 {
		c.CrashLoopWindowSeconds = DefaultCrashWindow
	}
	if c.InstanceGroups == nil {
		c.InstanceGroups = []string{}
	}
	if c.Nodes == nil {
		c.Nodes = []string{}
	}
	if c.EnvironmentVariables == nil {
		c.EnvironmentVariables = map[string]string{}
	}
	if c.FileModifications == nil {
		c.FileModifications = []string{}
	}
	if c.Properties == nil {
		c.Properties = map[string]string{}
	}
	if c.AdditionalPorts == nil {
		c.AdditionalPorts = []api.AdditionalPort{}
	}
	for i := range c.AdditionalPorts {
		if c.AdditionalPorts[i].Protocol == "" {
			c.AdditionalPorts[i].Protocol = "TCP"
		}
	}
	t := &c.TemplateInstallationConfig
	for _, l := range []*[]api.Template{&t.AllOf, &t.OneOf} {
		if *l == nil {
			*l = []api.Template{}
		}
		for i := range *l {
			if (*l)[i].Storage == "" {
				(*l)[i].Storage = "local"
			}
		}
	}
	if t.AllInGroups == nil {
		t.AllInGroups = []string{}
	}
	if t.OneInGroups == nil {
		t.OneInGroups = []string{}
	}
	if c.InstanceKeyAccess == nil {
		c.InstanceKeyAccess = []string{}
	}
	return c
}

// Grants says whether cfg gives its instances' keys access.
func Grants(cfg api.Configuration, access string) bool {
	for _, a := range cfg.InstanceKeyAccess {
		if a == access {
			return true
		}
	}
	return false
}

// MaxServiceCount bounds minimumServiceCount and maximumServiceCount.
const MaxServiceCount = 10000

// MasterEnv are the variables the master sets in every instance, with the
// placeholder each stands for. A configuration may say the same (the
// original's defaults do: "UNIVERSE_INSTANCE_ID": "%INSTANCE_ID%"); the
// master's value is used either way.
var MasterEnv = map[string]string{
	"UNIVERSE_INSTANCE_ID":   "%INSTANCE_ID%",
	"UNIVERSE_CONFIGURATION": "%CONFIGURATION_NAME%",
}

// Templates is what Validate needs to know of the template store.
type Templates interface {
	Exists(group, name string) bool
}

// DockerRuntime is the runtime key of containers.
const DockerRuntime = "docker"

var (
	dockerNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
	capRE        = regexp.MustCompile(`^[A-Z][A-Z_]{1,31}$`)
	imageRE      = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._/:@-]{0,254}$`)
)

// DefaultCaps is Docker's default capability set: what dockerOptions.capAdd
// may give back (every capability is dropped by default). More only with
// the master's --docker-allow-cap.
var DefaultCaps = map[string]bool{
	"CHOWN": true, "DAC_OVERRIDE": true, "FSETID": true, "FOWNER": true, "MKNOD": true, "NET_RAW": true,
	"SETGID": true, "SETUID": true, "SETFCAP": true, "SETPCAP": true, "NET_BIND_SERVICE": true,
	"SYS_CHROOT": true, "KILL": true, "AUDIT_WRITE": true,
}

// validateDocker checks the container fields of a docker configuration.
// extraCaps are the capabilities beyond DefaultCaps the master allows.
func validateDocker(c api.Configuration, mountRoots, extraCaps []string, add func(field, format string, args ...any)) {
	if c.Image == "" {
		add("image", "the docker runtime needs an image")
	} else if !imageRE.MatchString(c.Image) {
		add("image", "%q is not an image reference", c.Image)
	}
	if strings.ContainsAny(c.Command, "\x00") {
		add("command", "must not contain NUL")
	}
	if b := c.Backup; b != nil {
		validateBackup(*b, add)
	}
	o := c.DockerOptions
	if o == nil {
		return
	}
	switch o.ImagePullPolicy {
	case "never", "missing", "always":
	default:
		add("dockerOptions.imagePullPolicy", "must be never, missing or always")
	}
	if strings.ContainsAny(o.User, "\x00\r\n ") || len(o.User) > 64 {
		add("dockerOptions.user", "%q is not a user", o.User)
	}
	if o.NetworkMode != "" && !dockerNameRE.MatchString(o.NetworkMode) {
		add("dockerOptions.networkMode", "%q is not a network", o.NetworkMode)
	}
	for _, cp := range o.CapAdd {
		name := strings.ToUpper(strings.TrimPrefix(strings.ToUpper(cp), "CAP_"))
		switch {
		case !capRE.MatchString(name):
			add("dockerOptions.capAdd", "%q is not a capability", cp)
		case !DefaultCaps[name] && !slices.Contains(extraCaps, name):
			add("dockerOptions.capAdd", "%s is not in Docker's default set; the master allows more only when started with --docker-allow-cap %s", cp, name)
		}
	}
	for _, m := range o.Mounts {
		if _, err := ParseMount(m, mountRoots); err != nil {
			add("dockerOptions.mounts", "%s", universe.ErrorMessage(err))
		}
	}
}

// ParseMount parses "host:container[:ro]". The host path must be absolute
// and lie inside one of roots (none: no extra mount is allowed); the
// container path must be absolute. Neither may hold "..".
func ParseMount(s string, roots []string) (runtime.Mount, error) {
	parts := strings.Split(s, ":")
	var m runtime.Mount
	switch {
	case len(parts) == 2:
	case len(parts) == 3 && parts[2] == "ro":
		m.ReadOnly = true
	case len(parts) == 3 && parts[2] == "rw":
	default:
		return m, universe.Errorf(universe.EINVALID, "mount %q: want host:container[:ro]", s)
	}
	m.Host, m.Container = parts[0], parts[1]
	for _, p := range []string{m.Host, m.Container} {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.Contains(p, "..") {
			return m, universe.Errorf(universe.EINVALID, "mount %q: %q must be a clean absolute path", s, p)
		}
	}
	if len(roots) == 0 {
		return m, universe.Errorf(universe.EINVALID, "mount %q: no extra mounts are allowed (the master has no --docker-mount-root)", s)
	}
	// Compared as the paths they are, not as text: a symbolic link inside
	// a root may point anywhere. The resolved path is what is mounted.
	real, err := filepath.EvalSymlinks(m.Host)
	if err != nil {
		return m, universe.Errorf(universe.EINVALID, "mount %q: %s does not exist (or cannot be resolved)", s, m.Host)
	}
	for _, r := range roots {
		if rr, err := filepath.EvalSymlinks(r); err == nil {
			r = rr
		}
		if rel, err := filepath.Rel(r, real); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			m.Host = real
			return m, nil
		}
	}
	return m, universe.Errorf(universe.EINVALID, "mount %q: %s is outside the allowed roots (%s)", s, m.Host, strings.Join(roots, ", "))
}

// DockerPolicy is what the master lets docker configurations ask for:
// bind mounts under MountRoots, capabilities beyond DefaultCaps in
// ExtraCaps.
type DockerPolicy struct {
	MountRoots []string
	ExtraCaps  []string
}

// Validate checks a normalized configuration. runtimes maps runtime keys to
// the reason they cannot be used here (nil: usable). Errors: EINVALID
// naming every bad field.
func Validate(c api.Configuration, runtimes map[string]error, tpl Templates, docker DockerPolicy) error {
	var bad []string
	add := func(field, format string, args ...any) {
		bad = append(bad, field+": "+fmt.Sprintf(format, args...))
	}
	if err := universe.ValidateName("configuration name", c.Name); err != nil {
		add("name", "%s", universe.ErrorMessage(err))
	}
	if why, ok := runtimes[c.Runtime]; !ok {
		known := make([]string, 0, len(runtimes))
		for k := range runtimes {
			known = append(known, k)
		}
		sort.Strings(known)
		add("runtime", "unknown runtime %q (known: %s)", c.Runtime, strings.Join(known, ", "))
	} else if why != nil {
		add("runtime", "%s", universe.ErrorMessage(why))
	}
	if c.Runtime == DockerRuntime {
		validateDocker(c, docker.MountRoots, docker.ExtraCaps, add)
	} else {
		if strings.TrimSpace(c.Command) == "" {
			add("command", "must not be empty")
		}
		if c.Image != "" || c.DockerOptions != nil {
			add("image", "image and dockerOptions are for the docker runtime only")
		}
	}
	if strings.ContainsAny(c.Command, "\x00") {
		add("command", "must not contain NUL")
	}
	p := c.AvailablePorts
	if p.Min < 1 || p.Max > 65535 || p.Min > p.Max {
		add("availablePorts", "need 1 <= min <= max <= 65535 (got %d..%d)", p.Min, p.Max)
	}
	if c.RAMMB < 0 {
		add("ramMB", "must not be negative")
	}
	if c.CPU < 0 {
		add("cpu", "must not be negative")
	}
	if ports := p.Max - p.Min + 1; c.MinimumServiceCount < 0 || c.MinimumServiceCount > MaxServiceCount {
		add("minimumServiceCount", "must be 0 to %d", MaxServiceCount)
	} else if p.Min >= 1 && p.Min <= p.Max && c.MinimumServiceCount > ports {
		add("minimumServiceCount", "is more than the %d ports of availablePorts", ports)
	}
	if c.MaximumServiceCount < 0 || c.MaximumServiceCount > MaxServiceCount {
		add("maximumServiceCount", "must be 0 (no maximum) to %d", MaxServiceCount)
	} else if c.MaximumServiceCount > 0 && c.MaximumServiceCount < c.MinimumServiceCount {
		add("maximumServiceCount", "must be at least minimumServiceCount (%d) or 0 for no maximum", c.MinimumServiceCount)
	}
	if c.Static && c.MaximumServiceCount > 1 {
		add("maximumServiceCount", "a static configuration runs one instance at most")
	}
	if c.HeartbeatTimeoutSeconds < 0 || c.HeartbeatTimeoutSeconds > 86400 {
		add("heartbeatTimeoutSeconds", "must be 0 (off) to 86400")
	}
	if c.CrashLoopFailures < 1 || c.CrashLoopFailures > 1000 {
		add("crashLoopFailures", "must be 1 to 1000")
	}
	if c.CrashLoopWindowSeconds < 1 || c.CrashLoopWindowSeconds > 86400 {
		add("crashLoopWindowSeconds", "must be 1 to 86400")
	}
	if c.LostAfterSeconds < 0 || c.LostAfterSeconds > 86400 {
		add("lostAfterSeconds", "must be 0 (the default, 120) to 86400")
	}
	if c.StopTimeoutSeconds < 0 || c.StopTimeoutSeconds > 3600 {
		add("stopTimeoutSeconds", "must be 1 to 3600")
	}
	switch c.RestartPolicy {
	case api.RestartNever, api.RestartOnFailure, api.RestartAlways:
	default:
		add("restartPolicy", "must be never, on-failure or always")
	}
	if strings.ContainsAny(c.StopCommand, "\r\n\x00") {
		add("stopCommand", "must be one line")
	}
	for k := range c.EnvironmentVariables {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			add("environmentVariables", "%q is not a variable name", k)
		} else if want, set := MasterEnv[k]; set && c.EnvironmentVariables[k] != want {
			add("environmentVariables", "%s is set by the master (to %s); leave it out", k, want)
		} else if !set && strings.HasPrefix(k, "UNIVERSE_") {
			add("environmentVariables", "%s: UNIVERSE_* variables are the master's", k)
		}
	}
	if len(c.NodeLabels) > 32 {
		add("nodeLabels", "at most 32")
	}
	for k, v := range c.NodeLabels {
		if k == "" || len(k) > 64 || len(v) > 256 {
			add("nodeLabels", "%q is not a label (1 to 64 bytes, values up to 256)", k)
		}
	}
	for k := range c.Properties {
		if k == "" || strings.ContainsAny(k, "%\x00") {
			add("properties", "%q cannot be a placeholder name", k)
		}
	}
	for _, f := range c.FileModifications {
		if _, err := template.CleanPath(f); err != nil {
			add("fileModifications", "%s", universe.ErrorMessage(err))
		}
	}
	for _, a := range c.InstanceKeyAccess {
		if a != api.AccessInstancesRead {
			add("instanceKeyAccess", "%q is not an access (known: %s)", a, api.AccessInstancesRead)
		}
	}
	for _, ap := range c.AdditionalPorts {
		if ap.Port < 1 || ap.Port > 65535 {
			add("additionalPorts", "port %d is not 1..65535", ap.Port)
		}
	}
	t := c.TemplateInstallationConfig
	for _, l := range [][]api.Template{t.AllOf, t.OneOf} {
		for _, tp := range l {
			if err := template.ValidTemplate(tp.Group, tp.Name); err != nil {
				add("templateInstallationConfig", "%s", universe.ErrorMessage(err))
			} else if tp.Storage != "local" {
				add("templateInstallationConfig", "template %s/%s: storage %q is not supported (only local)", tp.Group, tp.Name, tp.Storage)
			} else if !tpl.Exists(tp.Group, tp.Name) {
				add("templateInstallationConfig", "template %s/%s does not exist", tp.Group, tp.Name)
			}
		}
	}
	for _, l := range [][]string{t.AllInGroups, t.OneInGroups} {
		for _, g := range l {
			if err := universe.ValidateName("template group", g); err != nil {
				add("templateInstallationConfig", "%s", universe.ErrorMessage(err))
			}
		}
	}
	if s := c.Scaling; s != nil {
		if s.ReadyHeadroom < 0 || s.ReadyHeadroom > MaxServiceCount {
			add("scaling.readyHeadroom", "must be 0 to %d", MaxServiceCount)
		} else if c.MaximumServiceCount > 0 && s.ReadyHeadroom > c.MaximumServiceCount {
			add("scaling.readyHeadroom", "is larger than maximumServiceCount (%d)", c.MaximumServiceCount)
		}
		if s.FullAt <= 0 || s.FullAt > 1 {
			add("scaling.fullAt", "must be in (0, 1] (default 0.9)")
		}
		if s.ScaleDownAfterSeconds < 1 || s.ScaleDownAfterSeconds > 86400 {
			add("scaling.scaleDownAfterSeconds", "must be 1 to 86400 (default 300)")
		}
	}
	if h := c.HealthCheck; h != nil {
		switch h.Type {
		case "tcp":
			if h.Path != "" {
				add("healthCheck.path", "is for http checks")
			}
		case "http":
			if !strings.HasPrefix(h.Path, "/") || len(h.Path) > 1024 || hasControl(h.Path) || strings.ContainsAny(h.Path, " #") {
				add("healthCheck.path", "must be a path such as /health (at most 1024 bytes)")
			}
		default:
			add("healthCheck.type", "must be tcp or http")
		}
		if p.Min < 1 || p.Max < p.Min {
			add("healthCheck", "needs a port: the configuration has no availablePorts")
		}
		if h.IntervalSeconds < 1 || h.IntervalSeconds > 3600 {
			add("healthCheck.intervalSeconds", "must be 1 to 3600")
		}
		if h.TimeoutSeconds < 1 || h.TimeoutSeconds > 300 || h.TimeoutSeconds > h.IntervalSeconds {
			add("healthCheck.timeoutSeconds", "must be 1 to 300, and at most intervalSeconds")
		}
		if h.GraceSeconds < 0 || h.GraceSeconds > 3600 {
			add("healthCheck.graceSeconds", "must be 0 to 3600")
		}
		if h.Failures < 1 || h.Failures > 100 {
			add("healthCheck.failures", "must be 1 to 100")
		}
	}
	if len(bad) > 0 {
		return universe.Errorf(universe.EINVALID, "invalid configuration: %s", strings.Join(bad, "; "))
	}
	return nil
}

// validateBackup checks a configuration's backup settings (its target's
// name is the master's to check: the targets are its own).
func validateBackup(b api.BackupOptions, add func(field, format string, args ...any)) {
	if b.Keep < 0 || b.Keep > 10000 {
		add("backup.keep", "must be 0 (no limit) to 10000")
	}
	if b.WaitSeconds < 0 || b.WaitSeconds > 3600 {
		add("backup.waitSeconds", "must be 0 to 3600")
	}
	if len(b.Ignore) > 256 {
		add("backup.ignore", "at most 256 patterns")
	}
	if len(b.WaitForLine) > 256 || hasControl(b.WaitForLine) {
		add("backup.waitForLine", "at most 256 bytes, no control characters")
	}
	for _, f := range []struct {
		field string
		lines []string
	}{{"backup.before", b.Before}, {"backup.after", b.After}, {"backup.ignore", b.Ignore}} {
		field, lines := f.field, f.lines
		if len(lines) > 256 {
			continue
		}
		if field != "backup.ignore" && len(lines) > 16 {
			add(field, "at most 16 commands")
			continue
		}
		for _, l := range lines {
			if len(l) > 1024 || hasControl(l) {
				add(field, "each at most 1024 bytes, no control characters")
				break
			}
		}
	}
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}
