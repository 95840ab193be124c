package auth_test

import (
	"strconv"
	"testing"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/master/auth"
)

// A key's sessions are bounded by ending its own oldest; one key never
// pushes out another's. At the global cap a new sign-in is refused.
func TestSessionCapsEvictOnlyTheSameKey(t *testing.T) {
	clk := newClock()
	db := openStore(t, t.TempDir())
	keys, err := auth.OpenKeyring(db, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := auth.OpenSessions(keys, db, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	var cookies [][]string // by key
	var all []*auth.Key
	for i := 0; i < 256; i++ { // 256 keys × 16 sessions: the global cap of 4096
		k, _, err := keys.Create("k"+strconv.Itoa(i), universe.ScopeAll, 0)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, k)
		var mine []string
		for j := 0; j < 16; j++ {
			clk.Add(time.Millisecond)
			c, err := ss.Create(k)
			if err != nil {
				t.Fatalf("session %d of key %d: %v", j, i, err)
			}
			mine = append(mine, c)
		}
		cookies = append(cookies, mine)
	}
	if n := ss.Count(); n != 4096 {
		t.Fatalf("%d sessions", n)
	}
	// Key 0 signs in again: its own oldest ends, nobody else's.
	clk.Add(time.Millisecond)
	if _, err := ss.Create(all[0]); err != nil {
		t.Fatalf("a key at its own cap: %v", err)
	}
	if k, _ := ss.Authenticate(cookies[0][0]); k != nil {
		t.Fatal("key 0's oldest session survived its 17th")
	}
	for i := 1; i < 256; i++ {
		if k, _ := ss.Authenticate(cookies[i][0]); k == nil {
			t.Fatalf("key %d lost its oldest session to key 0's sign-in", i)
		}
	}
	// A new key at the global cap is refused, and takes nobody's place.
	late, _, err := keys.Create("late", universe.ScopeAll, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.Create(late); universe.ErrorCode(err) != universe.EUNAVAILABLE {
		t.Fatalf("a sign-in at the global cap: %v", err)
	}
	for i := range 256 {
		if k, _ := ss.Authenticate(cookies[i][1]); k == nil {
			t.Fatalf("key %d lost a session to a refused sign-in", i)
		}
	}
}
