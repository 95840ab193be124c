package hub_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster"
	"github.com/universe-orchestrator/universe/cluster/agent"
	"github.com/universe-orchestrator/universe/cluster/hub"
	"github.com/universe-orchestrator/universe/instance/template"
	"github.com/universe-orchestrator/universe/storage"
)

// Templates reach a node content-addressed: the first sync fetches every
// file (a 10 MiB one in chunks), a second fetches nothing, a changed file
// is the only one fetched again, a template the master dropped goes, and
// the node's copy is byte for byte the master's.
func TestTemplateSync(t *testing.T) {
	store, err := template.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	big := make([]byte, 10<<20)
	_, _ = rand.Read(big)
	files := map[string][]byte{
		"lobby/base/server.jar":            big,
		"lobby/base/server.properties":     []byte("server-port=%PORT%\n"),
		"lobby/base/plugins/a/config.yml":  []byte("a: 1\n"),
		"lobby/extra/README":               []byte("extra\n"),
		"games/bedwars/maps/one/level.dat": []byte("level"),
		"games/bedwars/maps/two/level.dat": []byte("level"), // the same content: one blob
	}
	for p, b := range files {
		parts := splitN(p)
		if !store.Exists(parts[0], parts[1]) {
			if err := store.Create(parts[0], parts[1]); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := store.WriteFile(parts[0], parts[1], parts[2], bytes.NewReader(b), false); err != nil {
			t.Fatal(err)
		}
	}
	db, err := storage.Open(t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := hub.New(hub.Options{Store: db, Addr: "127.0.0.1:0", Templates: store})
	if err := h.Open(); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	_, cred, err := h.Create(api.NodeCreateRequest{Name: "edge"})
	if err != nil {
		t.Fatal(err)
	}
	node, kp, _ := cluster.ParseCredential(cred)
	pub, _ := kp.PublicKey()
	nc, err := nats.Connect(h.JoinURL("127.0.0.1"), nats.Nkey(pub, kp.Sign), nats.CustomInboxPrefix(cluster.Inbox(node)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	dir := t.TempDir()
	sync := func() agent.SyncStats {
		t.Helper()
		start := time.Now()
		st, err := agent.SyncTemplates(context.Background(), nc, node, dir)
		if err != nil || st.FirstError != nil {
			t.Fatalf("sync: %v %v", err, st.FirstError)
		}
		t.Logf("sync: %+v in %v", st, time.Since(start))
		return st
	}
	check := func() {
		t.Helper()
		for p, want := range files {
			got, err := os.ReadFile(filepath.Join(dir, "templates", filepath.FromSlash(p)))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s on the node: %d bytes, %v (want %d)", p, len(got), err, len(want))
			}
		}
	}
	if st := sync(); st.Templates != 3 || st.Installed != 3 || st.Blobs != 5 || st.BlobBytes < 10<<20 {
		t.Fatalf("first sync: %+v", st)
	}
	check()
	if st := sync(); st.Installed != 0 || st.Blobs != 0 || st.Unchanged != 3 {
		t.Fatalf("second sync: %+v", st)
	}
	files["lobby/base/server.properties"] = []byte("server-port=%PORT%\nmotd=changed\n")
	if _, err := store.WriteFile("lobby", "base", "server.properties", bytes.NewReader(files["lobby/base/server.properties"]), false); err != nil {
		t.Fatal(err)
	}
	if st := sync(); st.Installed != 1 || st.Blobs != 1 {
		t.Fatalf("after one change: %+v", st)
	}
	check()
	if err := store.Delete("lobby", "extra"); err != nil {
		t.Fatal(err)
	}
	delete(files, "lobby/extra/README")
	if st := sync(); st.Removed != 1 || st.Templates != 2 {
		t.Fatalf("after a delete: %+v", st)
	}
	check()
	if _, err := os.Stat(filepath.Join(dir, "templates", "lobby", "extra")); !os.IsNotExist(err) {
		t.Fatalf("the dropped template is still on the node: %v", err)
	}
}

func splitN(p string) [3]string {
	var out [3]string
	for i := 0; i < 2; i++ {
		j := bytes.IndexByte([]byte(p), '/')
		out[i], p = p[:j], p[j+1:]
	}
	out[2] = p
	return out
}
