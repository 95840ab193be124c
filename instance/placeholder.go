package instance

import (
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/universe-orchestrator/universe/api"
)

// Vars are the values of the contract's placeholders for one instance.
type Vars struct {
	Port          int
	InstanceID    string
	NodeID        string
	Configuration api.Configuration
	MasterURL     string // e.g. http://127.0.0.1:7000
}

// Replacer builds the replacer of every placeholder of the contract:
// %PORT%, %INSTANCE_ID%, %MASTER_IP%, %MASTER_ADDRESS%, %MASTER_PORT%,
// %MASTER_API_PORT%, %NODE_ID%, %HOST_ADDRESS%, %CONFIGURATION_NAME%,
// %NODE_PORT%, %NODE_ADDRESS%, %RAM_MB%, %INSTANCE_GROUPS% and %key% for
// each property (properties override the others). It replaces in one pass:
// a replaced value is never scanned again. It also returns the host address
// with its placeholders replaced.
func (v Vars) Replacer() (*strings.Replacer, string) {
	vals := v.Values()
	return NewReplacer(vals), vals["HOST_ADDRESS"]
}

// Values are the placeholders' values (names without the %), HOST_ADDRESS
// among them.
func (v Vars) Values() map[string]string {
	host, port := "127.0.0.1", "7000"
	if u, err := url.Parse(v.MasterURL); err == nil && u.Host != "" {
		if h, p, err := net.SplitHostPort(u.Host); err == nil {
			host, port = h, p
		} else {
			host = u.Host
		}
	}
	c := v.Configuration
	vals := map[string]string{
		"PORT":               strconv.Itoa(v.Port),
		"INSTANCE_ID":        v.InstanceID,
		"MASTER_IP":          host,
		"MASTER_ADDRESS":     net.JoinHostPort(host, port),
		"MASTER_PORT":        port,
		"MASTER_API_PORT":    port,
		"NODE_ID":            v.NodeID,
		"CONFIGURATION_NAME": c.Name,
		"NODE_PORT":          port,
		"NODE_ADDRESS":       host,
		"RAM_MB":             strconv.Itoa(c.RAMMB),
		"INSTANCE_GROUPS":    strings.Join(c.InstanceGroups, ";"),
	}
	for k, val := range c.Properties {
		vals[k] = val
	}
	if _, overridden := vals["HOST_ADDRESS"]; !overridden {
		vals["HOST_ADDRESS"] = NewReplacer(vals).Replace(c.HostAddress)
	}
	return vals
}

// NewReplacer replaces %name% by each value of vals, in one pass.
func NewReplacer(vals map[string]string) *strings.Replacer {
	pairs := make([]string, 0, 2*len(vals))
	for k, val := range vals {
		pairs = append(pairs, "%"+k+"%", val)
	}
	return strings.NewReplacer(pairs...)
}
