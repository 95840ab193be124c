package api

import (
	"slices"
	"strconv"
	"unicode/utf8"
)

// The JSON of the answers every client asks for most, appended by hand
// (encoding/json's reflection was most of a GET /api/instances/{id} and a
// GET /api/node after the network): byte for byte what encoding/json
// gives for the same value (TestAppendJSONMatchesEncodingJSON).

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD, and <, >, &,
// U+2028 and U+2029 escaped as encoding/json does.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendBool(b []byte, v bool) []byte { return strconv.AppendBool(b, v) }

// AppendJSON appends i as encoding/json encodes it.
func (i *InstanceInfo) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = AppendJSONString(b, i.ID)
	b = append(b, `,"configurationName":`...)
	b = AppendJSONString(b, i.ConfigurationName)
	b = append(b, `,"wrapperNodeId":`...)
	b = AppendJSONString(b, i.WrapperNodeID)
	b = append(b, `,"hostAddress":`...)
	b = AppendJSONString(b, i.HostAddress)
	b = append(b, `,"allocatedPort":`...)
	b = strconv.AppendInt(b, int64(i.AllocatedPort), 10)
	b = append(b, `,"state":`...)
	b = AppendJSONString(b, i.State)
	b = append(b, `,"lastHeartbeat":`...)
	b = strconv.AppendInt(b, i.LastHeartbeat, 10)
	b = append(b, `,"processPid":`...)
	if i.ProcessPid == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, *i.ProcessPid, 10)
	}
	b = append(b, `,"allocatedRamMB":`...)
	b = strconv.AppendInt(b, int64(i.AllocatedRAMMB), 10)
	b = append(b, `,"allocatedCpu":`...)
	b = strconv.AppendInt(b, int64(i.AllocatedCPU), 10)
	b = append(b, `,"runtime":`...)
	b = AppendJSONString(b, i.Runtime)
	b = append(b, `,"static":`...)
	b = appendBool(b, i.Static)
	b = append(b, `,"createdAt":`...)
	b = strconv.AppendInt(b, i.CreatedAt, 10)
	if i.StartedAt != 0 {
		b = append(b, `,"startedAt":`...)
		b = strconv.AppendInt(b, i.StartedAt, 10)
	}
	b = append(b, `,"exitCode":`...)
	if i.ExitCode == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(*i.ExitCode), 10)
	}
	if i.Lost {
		b = append(b, `,"lost":true`...)
	}
	if i.UnreachableSince != 0 {
		b = append(b, `,"unreachableSince":`...)
		b = strconv.AppendInt(b, i.UnreachableSince, 10)
	}
	b = append(b, `,"restarts":`...)
	b = strconv.AppendInt(b, int64(i.Restarts), 10)
	if i.Reason != "" {
		b = append(b, `,"reason":`...)
		b = AppendJSONString(b, i.Reason)
	}
	if i.ReportedState != "" {
		b = append(b, `,"reportedState":`...)
		b = AppendJSONString(b, i.ReportedState)
	}
	if i.Transition != "" {
		b = append(b, `,"transition":`...)
		b = AppendJSONString(b, i.Transition)
	}
	b = append(b, `,"players":`...)
	b = strconv.AppendInt(b, int64(i.Players), 10)
	b = append(b, `,"maxPlayers":`...)
	b = strconv.AppendInt(b, int64(i.MaxPlayers), 10)
	if i.NextRestartAt != 0 {
		b = append(b, `,"nextRestartAt":`...)
		b = strconv.AppendInt(b, i.NextRestartAt, 10)
	}
	b = append(b, `,"limitsEnforced":`...)
	b = appendBool(b, i.LimitsEnforced)
	if i.LimitsReason != "" {
		b = append(b, `,"limitsReason":`...)
		b = AppendJSONString(b, i.LimitsReason)
	}
	b = append(b, `,"joinable":`...)
	b = appendBool(b, i.Joinable)
	b = append(b, `,"draining":`...)
	b = appendBool(b, i.Draining)
	if i.DrainDeadline != 0 {
		b = append(b, `,"drainDeadline":`...)
		b = strconv.AppendInt(b, i.DrainDeadline, 10)
	}
	if i.Maintenance {
		b = append(b, `,"maintenance":true`...)
	}
	b = append(b, `,"health":`...)
	b = AppendJSONString(b, i.Health)
	if i.HealthError != "" {
		b = append(b, `,"healthError":`...)
		b = AppendJSONString(b, i.HealthError)
	}
	return append(b, '}')
}

// AppendJSON appends n as encoding/json encodes it (byState's keys sorted,
// a nil runtimes list null).
func (n *Node) AppendJSON(b []byte) []byte {
	b = append(b, `{"version":`...)
	b = AppendJSONString(b, n.Version)
	b = append(b, `,"nodeId":`...)
	b = AppendJSONString(b, n.NodeID)
	b = append(b, `,"startedAt":`...)
	b = strconv.AppendInt(b, n.StartedAt, 10)
	b = append(b, `,"uptimeMs":`...)
	b = strconv.AppendInt(b, n.UptimeMs, 10)
	b = append(b, `,"instances":{"total":`...)
	b = strconv.AppendInt(b, int64(n.Instances.Total), 10)
	b = append(b, `,"byState":`...)
	if n.Instances.ByState == nil {
		b = append(b, "null"...)
	} else {
		keys := make([]string, 0, len(n.Instances.ByState))
		for k := range n.Instances.ByState {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSONString(b, k)
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(n.Instances.ByState[k]), 10)
		}
		b = append(b, '}')
	}
	b = append(b, `},"limits":{"enforced":`...)
	b = appendBool(b, n.Limits.Enforced)
	if n.Limits.Reason != "" {
		b = append(b, `,"reason":`...)
		b = AppendJSONString(b, n.Limits.Reason)
	}
	b = append(b, `},"runtimes":`...)
	if n.Runtimes == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range n.Runtimes {
			r := &n.Runtimes[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = AppendJSONString(b, r.Name)
			b = append(b, `,"available":`...)
			b = appendBool(b, r.Available)
			if r.Reason != "" {
				b = append(b, `,"reason":`...)
				b = AppendJSONString(b, r.Reason)
			}
			b = append(b, `,"limitsEnforced":`...)
			b = appendBool(b, r.LimitsEnforced)
			if r.LimitsReason != "" {
				b = append(b, `,"limitsReason":`...)
				b = AppendJSONString(b, r.LimitsReason)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}
