package universe

import (
	"strings"
	"testing"
)

func TestValidateLabel(t *testing.T) {
	for _, ok := range []string{"a", "Z", "0", "ops-1", "my_key.v2", strings.Repeat("x", 64)} {
		if err := ValidateLabel(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", 65), "a b", "a/b", "é", "a\n", "key!", "a:b"} {
		if err := ValidateLabel(bad); ErrorCode(err) != EINVALID {
			t.Errorf("%q: %v, want EINVALID", bad, err)
		}
	}
}
