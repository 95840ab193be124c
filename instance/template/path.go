package template

import (
	"io/fs"
	"strings"

	universe "github.com/universe-orchestrator/universe"
)

// CleanPath checks a file path inside a template or working directory as a
// client sent it and returns it in slash form without a leading slash.
// Errors: EINVALID for empty, absolute or escaping paths, "." or empty
// segments, backslashes, NUL and other control characters.
func CleanPath(p string) (string, error) {
	if p == "" {
		return "", universe.Errorf(universe.EINVALID, "path is empty")
	}
	if strings.HasPrefix(p, "/") {
		return "", universe.Errorf(universe.EINVALID, "path must be relative to the template")
	}
	if len(p) > 1024 {
		return "", universe.Errorf(universe.EINVALID, "path is longer than 1024 bytes")
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "", universe.Errorf(universe.EINVALID, "path may not contain control characters or backslashes")
		}
	}
	if !fs.ValidPath(p) || p == "." {
		return "", universe.Errorf(universe.EINVALID, "path %q leaves its folder or has empty, '.' or '..' segments", p)
	}
	return p, nil
}

// ValidTemplate checks a group and template name pair. Errors: EINVALID.
func ValidTemplate(group, name string) error {
	if err := universe.ValidateName("template group", group); err != nil {
		return err
	}
	return universe.ValidateName("template name", name)
}
