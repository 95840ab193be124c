// Command floor is the floor of bench/ha's throughput ratio: the least a
// program must do to answer the bench's writes, alone and as three Raft
// members, on the same machine in the same run.
//
//	floor single <http addr> <dir>
//	floor raft <i> <dir> <http0>=<raft0>,<http1>=<raft1>,<http2>=<raft2>
//
// Every POST or PUT writes what a key creation writes (a key at a random
// place in its tree, its label, an audit entry: three buckets) and answers
// 201 with a small JSON body; nothing else: no authentication, no access
// log, no JSON decoding, no TLS between the members.
//
// single commits the writes that arrive together in one fsync'd bbolt
// transaction (as the master's group commit does).
//
// raft is member i of a cluster of hashicorp/raft v1.7.2 with
// raft-boltdb/v2 as its log (fsync'd, in front of it the same LogCache),
// configured as the master's (timeouts, BatchApplyCh, MaxAppendEntries);
// its FSM applies each committed batch in one bbolt transaction without
// fsync (the log is what is durable), as the master's does. A follower
// sends the body to the leader's /apply over a kept-alive HTTP connection
// and answers as it answers. The leader hands each write to raft.Apply as
// it comes (raft groups what reaches it together); with FLOOR_GROUP set
// in its environment, it groups them as cluster/ha's proposer does, one
// group committing at a time.
package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

var (
	keyRec   = bytes.Repeat([]byte("k"), 300)
	auditRec = bytes.Repeat([]byte("a"), 200)
	seq      atomic.Int64
)

// put writes one write's three records; i numbers it.
func put(tx *bolt.Tx, i int64, body []byte) error {
	for b, v := range [][]byte{keyRec, body, auditRec} {
		bk, err := tx.CreateBucketIfNotExists([]byte{'b', byte(b)})
		if err != nil {
			return err
		}
		k := binary.BigEndian.AppendUint64(nil, uint64(i))
		if b == 0 {
			k = []byte(strconv.FormatInt(i*7919%1000003, 10)) // ids are random: anywhere in the tree
		}
		if err := bk.Put(k, v); err != nil {
			return err
		}
	}
	return nil
}

func answer(w http.ResponseWriter, err error) {
	if err != nil {
		http.Error(w, `{"error":"write failed"}`, http.StatusServiceUnavailable)
		return
	}
	i := seq.Add(1)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	_, _ = fmt.Fprintf(w, `{"key":{"id":"k%d"},"token":"unv_%064d"}`, i, i)
}

func body(r *http.Request) []byte {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	return b
}

func main() {
	log.SetFlags(0)
	if len(os.Args) < 4 {
		log.Fatal("usage: floor single <http addr> <dir> | floor raft <i> <dir> <http>=<raft>,...")
	}
	switch os.Args[1] {
	case "single":
		single(os.Args[2], os.Args[3])
	case "raft":
		if len(os.Args) != 5 {
			log.Fatal("usage: floor raft <i> <dir> <http>=<raft>,...")
		}
		i, _ := strconv.Atoi(os.Args[2])
		member(i, os.Args[3], strings.Split(os.Args[4], ","))
	default:
		log.Fatal("floor single | floor raft")
	}
}

// group commits the writes that arrive while one commits together.
type group struct {
	db      *bolt.DB
	mu      sync.Mutex
	pending []*op
	leading bool
}

type op struct {
	body []byte
	err  error
	done chan struct{}
}

func (g *group) write(b []byte) error {
	o := &op{body: b, done: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, o)
	if g.leading {
		g.mu.Unlock()
		<-o.done
		return o.err
	}
	g.leading = true
	g.mu.Unlock()
	for {
		g.mu.Lock()
		ops := g.pending
		g.pending = nil
		if len(ops) == 0 {
			g.leading = false
			g.mu.Unlock()
			break
		}
		g.mu.Unlock()
		err := g.db.Update(func(tx *bolt.Tx) error {
			for _, o := range ops {
				if err := put(tx, seq.Add(1), o.body); err != nil {
					return err
				}
			}
			return nil
		})
		for _, o := range ops {
			o.err = err
			close(o.done)
		}
	}
	<-o.done
	return o.err
}

// serve serves http.DefaultServeMux on addr, each read with a deadline.
func serve(addr string) {
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	log.Fatal(srv.ListenAndServe())
}

func single(addr, dir string) {
	db, err := bolt.Open(filepath.Join(dir, "floor.db"), 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	g := &group{db: db}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		answer(w, g.write(body(r)))
	})
	serve(addr)
}

// fsm applies a batch of committed writes in one transaction, unsynced.
type fsm struct{ db *bolt.DB }

func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	err := f.db.Update(func(tx *bolt.Tx) error {
		for _, l := range logs {
			if l.Type != raft.LogCommand {
				continue
			}
			if err := put(tx, int64(l.Index), l.Data); err != nil {
				return err
			}
		}
		meta, err := tx.CreateBucketIfNotExists([]byte("meta"))
		if err != nil {
			return err
		}
		return meta.Put([]byte("index"), binary.BigEndian.AppendUint64(nil, logs[len(logs)-1].Index))
	})
	for i := range out {
		out[i] = err
	}
	return out
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, err
	}
	return snapshot{tx}, nil
}

func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	_, err := io.Copy(io.Discard, r) // the bench never restores
	return err
}

type snapshot struct{ tx *bolt.Tx }

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.tx.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() { _ = s.tx.Rollback() }

func member(i int, dir string, peers []string) {
	httpOf := map[raft.ServerAddress]string{}
	var servers []raft.Server
	for j, p := range peers {
		h, ra, ok := strings.Cut(p, "=")
		if !ok {
			log.Fatalf("peer %q: want http=raft", p)
		}
		httpOf[raft.ServerAddress(ra)] = h
		servers = append(servers, raft.Server{ID: raft.ServerID(strconv.Itoa(j)), Address: raft.ServerAddress(ra)})
	}
	self := servers[i]
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: os.Stderr})
	addr, err := net.ResolveTCPAddr("tcp", string(self.Address))
	if err != nil {
		log.Fatal(err)
	}
	transport, err := raft.NewTCPTransportWithLogger(string(self.Address), addr, 3, 5*time.Second, hlog)
	if err != nil {
		log.Fatal(err)
	}
	logStore, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"),
		BoltOptions: &bolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType}})
	if err != nil {
		log.Fatal(err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog)
	if err != nil {
		log.Fatal(err)
	}
	state, err := bolt.Open(filepath.Join(dir, "state.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		log.Fatal(err)
	}
	conf := raft.DefaultConfig()
	conf.LocalID = self.ID
	conf.Logger = hlog
	conf.HeartbeatTimeout = 500 * time.Millisecond
	conf.ElectionTimeout = 500 * time.Millisecond
	conf.LeaderLeaseTimeout = 250 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.SnapshotThreshold = 8192
	conf.BatchApplyCh = true
	conf.MaxAppendEntries = 512
	logs, err := raft.NewLogCache(512, logStore)
	if err != nil {
		log.Fatal(err)
	}
	r, err := raft.NewRaft(conf, &fsm{db: state}, logs, logStore, snaps, transport)
	if err != nil {
		log.Fatal(err)
	}
	if had, _ := raft.HasExistingState(logStore, logStore, snaps); !had {
		_ = r.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	}
	forward := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	apply := func(b []byte) error {
		f := r.Apply(b, 10*time.Second)
		if err := f.Error(); err != nil {
			return err
		}
		if err, _ := f.Response().(error); err != nil {
			return err
		}
		return nil
	}
	if os.Getenv("FLOOR_GROUP") != "" {
		g := &proposals{r: r, wake: make(chan struct{}, 1)}
		go g.run()
		apply = g.apply
	}
	http.HandleFunc("POST /apply", func(w http.ResponseWriter, req *http.Request) {
		if err := apply(body(req)); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	http.HandleFunc("GET /leader", func(w http.ResponseWriter, req *http.Request) {
		if r.State() != raft.Leader {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	http.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		b := body(req)
		if r.State() == raft.Leader {
			answer(w, apply(b))
			return
		}
		la, _ := r.LeaderWithID()
		h, ok := httpOf[la]
		if !ok {
			answer(w, raft.ErrNotLeader)
			return
		}
		resp, err := forward.Post("http://"+h+"/apply", "application/octet-stream", bytes.NewReader(b))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				err = fmt.Errorf("leader: %s", resp.Status)
			}
		}
		answer(w, err)
	})
	serve(httpOf[self.Address])
}

// proposals hands writes to raft in groups, one group committing at a
// time (FLOOR_GROUP set: what cluster/ha's proposer does).
type proposals struct {
	r     *raft.Raft
	mu    sync.Mutex
	queue []*op
	wake  chan struct{}
}

func (p *proposals) apply(b []byte) error {
	o := &op{body: b, done: make(chan struct{})}
	p.mu.Lock()
	p.queue = append(p.queue, o)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	<-o.done
	return o.err
}

func (p *proposals) run() {
	for range p.wake {
		for {
			p.mu.Lock()
			ops := p.queue
			p.queue = nil
			p.mu.Unlock()
			if len(ops) == 0 {
				break
			}
			fs := make([]raft.ApplyFuture, len(ops))
			for i, o := range ops {
				fs[i] = p.r.Apply(o.body, 10*time.Second)
			}
			for i, o := range ops {
				if o.err = fs[i].Error(); o.err == nil {
					o.err, _ = fs[i].Response().(error)
				}
				close(o.done)
			}
		}
	}
}
