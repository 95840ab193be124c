package instance_test

import (
	"testing"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance"
)

func TestPlaceholders(t *testing.T) {
	cfg := instance.Normalize(api.Configuration{
		Name: "lobby", RAMMB: 1024, InstanceGroups: []string{"hub", "eu"},
		HostAddress: "%NODE_ID%.example.net",
		Properties:  map[string]string{"MOTD": "Welcome to %CONFIGURATION_NAME%", "NODE_PORT": "1234"},
	})
	v := instance.Vars{Port: 25566, InstanceID: "abc123", NodeID: "node-7", Configuration: cfg, MasterURL: "http://10.0.0.5:7000"}
	rep, host := v.Replacer()
	if host != "node-7.example.net" {
		t.Fatalf("host %q", host)
	}
	cases := []struct{ in, want string }{
		{"%PORT%", "25566"},
		{"%INSTANCE_ID%", "abc123"},
		{"%MASTER_IP%", "10.0.0.5"},
		{"%MASTER_ADDRESS%", "10.0.0.5:7000"},
		{"%MASTER_PORT%", "7000"},
		{"%MASTER_API_PORT%", "7000"},
		{"%NODE_ID%", "node-7"},
		{"%HOST_ADDRESS%", "node-7.example.net"},
		{"%CONFIGURATION_NAME%", "lobby"},
		{"%NODE_ADDRESS%", "10.0.0.5"},
		{"%RAM_MB%", "1024"},
		{"%INSTANCE_GROUPS%", "hub;eu"},
		{"%NODE_PORT%", "1234"},                            // a property overrides a node variable
		{"%MOTD%", "Welcome to %CONFIGURATION_NAME%"},      // one pass: a value is not scanned again
		{"%UNKNOWN% %PORT%%PORT%", "%UNKNOWN% 2556625566"}, // unknown names stay
		{"100% sure, %PORT", "100% sure, %PORT"},
		{"", ""},
	}
	for _, tc := range cases {
		if got := rep.Replace(tc.in); got != tc.want {
			t.Errorf("Replace(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
