// Command fakeserver is a game server as the scaling bench needs one: it
// holds the players the bench's proxy gives it ("players N" on its stdin)
// and reports them to the master with its own key, as the original's
// plugin does (PUT /api/instances/{id}/state every few seconds and at each
// change).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	maxPlayers := flag.Int("max", 20, "maxPlayers it reports")
	every := flag.Duration("every", 5*time.Second, "report period")
	flag.Parse()
	base, key, id := os.Getenv("UNIVERSE_MASTER_URL"), os.Getenv("UNIVERSE_API_KEY"), os.Getenv("UNIVERSE_INSTANCE_ID")
	if base == "" || key == "" || id == "" {
		fmt.Fprintln(os.Stderr, "fakeserver: UNIVERSE_MASTER_URL, UNIVERSE_API_KEY and UNIVERSE_INSTANCE_ID are needed")
		os.Exit(2)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	report := func(players int) {
		body := fmt.Sprintf(`{"state":"ONLINE","players":%d,"maxPlayers":%d}`, players, *maxPlayers)
		req, _ := http.NewRequest(http.MethodPut, strings.TrimSuffix(base, "/")+"/api/instances/"+id+"/state", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println("report:", err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			fmt.Println("report:", resp.Status)
		}
	}
	changed := make(chan int)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if n, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "players "); ok {
				if p, err := strconv.Atoi(n); err == nil && p >= 0 && p <= *maxPlayers {
					changed <- p
				}
			}
		}
	}()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("ready")
	players := 0
	report(players)
	t := time.NewTicker(*every)
	for {
		select {
		case <-stop:
			fmt.Println("stopping with", players, "players")
			return
		case <-t.C:
			report(players)
		case p := <-changed:
			players = p
			report(players)
		}
	}
}
