package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/api/client"
	"github.com/universe-orchestrator/universe/instance/supervisor"
	"github.com/universe-orchestrator/universe/master"
)

// The examples run against a real master on a free port, with a fresh data
// directory and an admin key: the URL and token a user would have.
var masterURL, adminToken string

func TestMain(m *testing.M) {
	supervisor.RunIfChild() // the master runs this binary as its instances' supervisors
	dir, err := os.MkdirTemp("", "client-example")
	if err != nil {
		panic(err)
	}
	cfg := master.DefaultConfig()
	cfg.Addr, cfg.DataDir, cfg.TemplatesDir = "127.0.0.1:0", dir, dir+"/templates"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	mst, err := master.New(cfg)
	if err == nil {
		err = mst.Open()
	}
	if err != nil {
		panic(err)
	}
	_, adminToken, _ = mst.Keyring().Create("example-admin", universe.ScopeAll, 0)
	masterURL = "http://" + mst.Addr()
	code := m.Run()
	_ = mst.Close()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func Example() {
	ctx := context.Background()
	c, err := client.New(masterURL, adminToken) // e.g. os.Getenv("UNIVERSE_URL"), os.Getenv("UNIVERSE_TOKEN")
	if err != nil {
		panic(err)
	}
	node, err := c.Node(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("node:", node.NodeID)
	// Output: node: node-1
}

// Create a configuration and an instance, write to its stdin, and follow
// its log until a line arrives.
func ExampleClient_Follow() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _ := client.New(masterURL, adminToken)
	err := c.PutConfiguration(ctx, "echo", api.Configuration{
		Command:        `while read l; do echo "got $l"; done`,
		AvailablePorts: api.Ports{Min: 21800, Max: 21810},
	})
	if err != nil {
		panic(err)
	}
	in, err := c.CreateInstance(ctx, "echo")
	if err != nil {
		panic(err)
	}
	if err := c.Execute(ctx, in.ID, "hello"); err != nil {
		panic(err)
	}
	found := errors.New("found")
	err = c.Follow(ctx, in.ID, client.FollowOptions{}, func(f api.LiveLogFrame) error {
		if f.Type == "" && f.Stream == api.StreamStdout {
			fmt.Println(f.Line)
			return found // stop following
		}
		return nil
	})
	fmt.Println(errors.Is(err, found))
	_ = c.DeleteInstance(ctx, in.ID)
	// Output:
	// got hello
	// true
}

// Errors carry the HTTP status and the master's message.
func ExampleError() {
	c, _ := client.New(masterURL, adminToken)
	_, err := c.Instance(context.Background(), "nope00")
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status, e.Message)
	}
	fmt.Println(client.IsNotFound(err))
	// Output:
	// 404 no instance "nope00"
	// true
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name string
		err  *client.Error
		want string
	}{
		{"message", &client.Error{Status: 404, Message: "no instance"}, "no instance"},
		{"status only", &client.Error{Status: 502}, "Bad Gateway"},
		{"retry", &client.Error{Status: 429, Message: "rate limit exceeded", RetryAfter: 1500 * time.Millisecond}, "rate limit exceeded (retry in 1.5s)"},
	}
	for _, tc := range cases {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	// A master that is not there: status 0, what failed, no token.
	c, _ := client.New("http://127.0.0.1:1", "unv_secret")
	_, err := c.Node(context.Background())
	if client.StatusOf(err) != 0 || err == nil || !contains(err.Error(), "cannot reach the master") || contains(err.Error(), "unv_secret") {
		t.Fatalf("unreachable master: %v", err)
	}
	for _, bad := range []string{"ftp://x", "localhost:7000", "http://"} {
		if _, err := client.New(bad, ""); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	// 401 from a real master.
	c, _ = client.New(masterURL, "unv_wrong")
	if _, err := c.Node(context.Background()); client.StatusOf(err) != 401 {
		t.Fatalf("bad token: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
