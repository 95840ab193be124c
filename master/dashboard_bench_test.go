package master

import (
	"fmt"
	"io"
	"testing"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/master/webui"
)

// BenchmarkDashboardRender renders the heaviest pages from their data as
// the handlers build it: the instances page with 1000 instances, and an
// instance page with its 200 lines of log (with ANSI colours).
func BenchmarkDashboardRender(b *testing.B) {
	pages, err := webui.Parse()
	if err != nil {
		b.Fatal(err)
	}
	var d instancesData
	pid := int64(4242)
	for i := range 1000 {
		d.Instances = append(d.Instances, api.InstanceInfo{ID: fmt.Sprintf("i%05d", i), ConfigurationName: fmt.Sprintf("lobby-%d", i%10),
			WrapperNodeID: fmt.Sprintf("node-%d", i%4), State: []string{"ONLINE", "CREATING", "OFFLINE", "STOPPED"}[i%4],
			AllocatedPort: 25565 + i, ProcessPid: &pid, StartedAt: 1795711024956, Players: i % 50, MaxPlayers: 50, Reason: "started by admin"})
	}
	d.Total = 1000
	d.AllStates = []string{"CREATING", "ONLINE", "OFFLINE", "STOPPED"}
	for i := range 10 {
		d.Configurations = append(d.Configurations, fmt.Sprintf("lobby-%d", i))
	}
	inst := &instanceData{Instance: d.Instances[0], RowCap: uiRowCap, CPU: "0.12 cores", Memory: "512.0 MiB"}
	for i := range uiLogLines {
		inst.Lines = append(inst.Lines, api.LogLine{Seq: uint64(i + 1), Stream: "stdout", Line: fmt.Sprintf("\x1b[32m[12:00:%02d INFO]\x1b[0m: Player%d joined the game <b>", i%60, i)})
	}
	for _, c := range []struct {
		name, page string
		data       any
	}{
		{"instances-1000", "instances", d},
		{"instance-200-lines", "instance", inst},
	} {
		b.Run(c.name, func(b *testing.B) {
			p := uiPage{Title: "x", Nav: "instances", Key: "admin", Data: c.data}
			b.ReportAllocs()
			for b.Loop() {
				if err := pages.Render(io.Discard, c.page, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
