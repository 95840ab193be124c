// Command docker measures the docker runtime against the process runtime
// in the same run, on the same program (the tests' echo program, run as a
// plain process and as the only file of an image FROM scratch), under a
// real master in this process with a real engine:
//
//	go run ./bench/docker -rounds 10 -followers 100 -n 20
//
// create:  POST /api/instances → ONLINE (the answer comes once it runs),
// p50 of each runtime, and their ratio.
// latency: live-log latency at -followers clients of one instance printing
// the wall clock every 10 ms, p50 and p99 of each runtime, and the ratio.
// memory:  the master's RSS per idle instance (-n of each), and the RSS of
// their supervisors.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/bench/internal/benchmaster"
	"github.com/universe-orchestrator/universe/instance/runtime/docker"
	"github.com/universe-orchestrator/universe/instance/runtime/docker/dockertest"
	"github.com/universe-orchestrator/universe/instance/supervisor"
)

// bench is a master in this process (benchmaster).
type bench struct{ *benchmaster.Master }

func start() *bench {
	return &bench{benchmaster.Start("universe-bench-docker-", nil)}
}

func (b *bench) create(config string) (api.InstanceInfo, time.Duration) {
	s := time.Now()
	var info api.InstanceInfo
	_ = json.Unmarshal(b.Do("POST", "/api/instances", api.InstanceCreateRequest{ConfigurationName: config}), &info)
	d := time.Since(s)
	if info.State != "ONLINE" {
		log.Fatalf("instance of %s is %s: %s", config, info.State, info.Reason)
	}
	return info, d
}

func (b *bench) remove(id string) { b.Do("DELETE", "/api/instances/"+id, nil) }

func pct(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*p)]
}

func rss(pid int) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

// supervisorsRSS sums the RSS (KiB) of the supervisors under dir.
func supervisorsRSS(dir string) (int, int) {
	ents, _ := os.ReadDir("/proc")
	total, n := 0, 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		args := strings.Split(string(b), "\x00")
		if len(args) >= 3 && args[1] == "supervise" && strings.HasPrefix(args[2], dir) {
			total += rss(pid)
			n++
		}
	}
	return total, n
}

// inUse is the master process's heap and stack bytes in use, after a GC.
func inUse() uint64 {
	goruntime.GC()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// engineStart creates, attaches to and starts a container of the test
// image straight through the API, as the runtime does, and removes it.
func engineStart(cli *client.Client) time.Duration {
	ctx := context.Background()
	s := time.Now()
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: dockertest.ImageTag, Cmd: []string{"/echo"}, OpenStdin: true,
		AttachStdin: true, AttachStdout: true, AttachStderr: true}, &container.HostConfig{}, nil, nil, "")
	if err != nil {
		log.Fatal(err)
	}
	hj, err := cli.ContainerAttach(ctx, c.ID, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		log.Fatal(err)
	}
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		log.Fatal(err)
	}
	d := time.Since(s)
	hj.Close()
	_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	return d
}

func main() {
	supervisor.RunIfChild(docker.New()) // the master under test re-executes this binary as supervisors
	log.SetFlags(0)
	rounds := flag.Int("rounds", 10, "create rounds (one instance of each runtime each)")
	followers := flag.Int("followers", 100, "live-log clients of each instance")
	samples := flag.Int("samples", 300, "latency samples per client")
	n := flag.Int("n", 20, "idle instances of each runtime for the memory figure")
	flag.Parse()

	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		log.Fatal(err)
	}
	if err := dockertest.Build(cli); err != nil {
		log.Fatal("build the image: ", err)
	}
	b := start()
	defer b.Close()
	prog := filepath.Join(b.Dir, "echo")
	if err := dockertest.Program(prog); err != nil {
		log.Fatal(err)
	}
	port := 24000
	conf := func(name, rt, command string, count int) {
		c := api.Configuration{Runtime: rt, Command: command, StopTimeoutSeconds: 5, RAMMB: 256,
			AvailablePorts: api.Ports{Min: port, Max: port + count - 1}}
		port += count
		if rt == "docker" {
			c.Image = dockertest.ImageTag
			c.DockerOptions = &api.DockerOptions{ImagePullPolicy: "never"}
		}
		b.Do("PUT", "/api/configurations/"+name, c)
	}
	conf("p", "process", prog+" -port %PORT%", 2*(*rounds)+1)
	conf("d", "docker", "/echo -port %PORT%", 2*(*rounds)+1)
	conf("pl", "process", prog+" -stamp 10ms", 1)
	conf("dl", "docker", "/echo -stamp 10ms", 1)
	conf("pm", "process", prog, *n)
	conf("dm", "docker", "/echo", *n)

	// create → ONLINE, interleaved, with the engine's own floor: the same
	// container created, attached and started through the API directly.
	var pc, dc, ec []time.Duration
	for r := 0; r < *rounds; r++ {
		pi, pd := b.create("p")
		di, dd := b.create("d")
		pc, dc, ec = append(pc, pd), append(dc, dd), append(ec, engineStart(cli))
		b.remove(pi.ID)
		b.remove(di.ID)
	}
	p50p, p50d, p50e := pct(pc, 0.5), pct(dc, 0.5), pct(ec, 0.5)
	fmt.Printf("create → ONLINE, %d rounds: process p50 %v (%v-%v), docker p50 %v (%v-%v); docker/process %.2f; the engine alone (create+attach+start) p50 %v, docker/engine %.2f\n",
		*rounds, p50p.Round(time.Microsecond), pc[0].Round(time.Microsecond), pc[len(pc)-1].Round(time.Microsecond),
		p50d.Round(time.Microsecond), dc[0].Round(time.Microsecond), dc[len(dc)-1].Round(time.Microsecond), float64(p50d)/float64(p50p),
		p50e.Round(time.Microsecond), float64(p50d)/float64(p50e))

	// Live-log latency at many followers.
	lat := func(config string) (time.Duration, time.Duration) {
		info, _ := b.create(config)
		defer b.remove(info.ID)
		var (
			mu  sync.Mutex
			all []time.Duration
			wg  sync.WaitGroup
		)
		for c := 0; c < *followers; c++ {
			h := http.Header{"Authorization": {"Bearer " + b.Token}}
			conn, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(b.URL, "http")+"/api/instances/"+info.ID+"/live-log?lines=1",
				&websocket.DialOptions{HTTPHeader: h})
			if err != nil {
				log.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.CloseNow()
				var mine []time.Duration
				seen := 0
				for len(mine) < *samples {
					_, data, err := conn.Read(context.Background())
					if err != nil {
						log.Fatal(err)
					}
					now := time.Now().UnixNano()
					v, ok := strings.CutPrefix(string(data), "stamp ")
					if !ok {
						continue
					}
					sent, _ := strconv.ParseInt(v, 10, 64)
					if seen++; seen <= 10 { // warm-up and the backlog line
						continue
					}
					mine = append(mine, time.Duration(now-sent))
				}
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return pct(all, 0.5), pct(all, 0.99)
	}
	lp50, lp99 := lat("pl")
	dp50, dp99 := lat("dl")
	fmt.Printf("live-log latency at %d followers: process p50 %v p99 %v; docker p50 %v p99 %v; docker/process p99 %.2f (goal <= 2)\n",
		*followers, lp50.Round(time.Microsecond), lp99.Round(time.Microsecond), dp50.Round(time.Microsecond), dp99.Round(time.Microsecond), float64(dp99)/float64(lp99))

	// Memory per idle instance: the master's heap and stacks (after a GC;
	// its RSS moves by more than an instance costs), the supervisors' RSS.
	mem := func(config string) (master, sup float64) {
		time.Sleep(time.Second)
		m0 := inUse()
		var ids []string
		for i := 0; i < *n; i++ {
			info, _ := b.create(config)
			ids = append(ids, info.ID)
		}
		time.Sleep(7 * time.Second) // supervisors trim 5 s after the start
		m1 := inUse()
		s, k := supervisorsRSS(b.Dir)
		for _, id := range ids {
			b.remove(id)
		}
		return float64(int64(m1)-int64(m0)) / 1024 / float64(*n), float64(s) / float64(max(k, 1))
	}
	time.Sleep(2 * time.Second) // the followers' buffers go first
	inUse()
	dm, ds := mem("dm")
	pm, ps := mem("pm")
	fmt.Printf("memory per idle instance (%d of each): master heap+stacks +%.1f KiB process, +%.1f KiB docker; supervisor RSS %.0f KiB process, %.0f KiB docker (both this binary)\n",
		*n, pm, dm, ps, ds)
}
