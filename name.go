package universe

// ValidateName checks the names of configurations, template groups and
// templates: 1–63 characters, lowercase letters, digits, '.', '_' and '-',
// starting with a letter or digit. what names the thing in the error
// ("configuration name"). Errors: EINVALID.
func ValidateName(what, s string) error {
	if len(s) == 0 || len(s) > 63 {
		return Errorf(EINVALID, "%s must be 1 to 63 characters", what)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return Errorf(EINVALID, "%s %q may only hold lowercase letters, digits, '.', '_' and '-', and must start with a letter or digit", what, s)
		}
	}
	return nil
}
