package runtime

import (
	"slices"
	"testing"
)

func TestBaseEnvKeepsOnlySafeVariables(t *testing.T) {
	got := baseEnv([]string{"PATH=/bin", "HOME=/home/u", "LC_ALL=C", "UNIVERSE_NODE_KEY=unvn_x", "UNIVERSE_TOKEN=unv_x",
		"AWS_SECRET_ACCESS_KEY=x", "NATS_PASSWORD=x", "TERM=xterm", "junk"})
	want := []string{"PATH=/bin", "HOME=/home/u", "LC_ALL=C", "TERM=xterm"}
	if !slices.Equal(got, want) {
		t.Fatalf("baseEnv: %q, want %q", got, want)
	}
	if got := baseEnv([]string{"HOME=/h"}); !slices.Equal(got, []string{"HOME=/h", "PATH=" + DefaultPath}) {
		t.Fatalf("without a PATH: %q", got)
	}
}

func TestMergeEnvReplacesByName(t *testing.T) {
	got := MergeEnv([]string{"PATH=/bin", "HOME=/h"}, []string{"PATH=/opt/bin", "A=1"})
	if want := []string{"HOME=/h", "PATH=/opt/bin", "A=1"}; !slices.Equal(got, want) {
		t.Fatalf("MergeEnv: %q, want %q", got, want)
	}
}
