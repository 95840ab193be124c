package universe

import (
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads a duration as people write it for expiries: Go's
// syntax ("90m", "12h30m") plus whole days and weeks ("30d", "2w").
// Errors: EINVALID.
func ParseDuration(s string) (time.Duration, error) {
	bad := Errorf(EINVALID, "invalid duration %q: use e.g. 30d, 2w, 12h or 90m", s)
	if s == "" {
		return 0, bad
	}
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseUint(n, 10, 32)
			if err != nil || v == 0 || v > 100*365 {
				return 0, bad
			}
			return time.Duration(v) * unit, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, bad
	}
	return d, nil
}
