package storage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/universe-orchestrator/universe/api"
	bolt "go.etcd.io/bbolt"
)

// wantedCache remembers, for each stored configuration document, the
// little that says whether the reconciler (minimumServiceCount above 0)
// or the scaler (a scaling section) wants it. Both list configurations
// often (the reconciler's full pass, the scaler's at most ten a second);
// without it, every pass decoded every configuration, a cost that grew
// with their number (62 % of a master's CPU under a stream of
// configuration writes, 3,000 of them stored).
type wantedCache struct {
	mu   sync.Mutex
	gen  uint64
	docs map[string]wantedDoc
}

type wantedDoc struct {
	raw  []byte // the document as stored when it was looked at
	head configHead
	gen  uint64 // the last listing that saw it
}

type configHead struct {
	minimum bool // minimumServiceCount above 0
	scaled  bool // a scaling section
}

// ListConfigurationsWanted returns, ordered by name, the configurations
// whose minimumServiceCount is above 0 (what the reconciler keeps
// running). A document unchanged since an earlier listing is recognized
// byte for byte and not decoded again unless it is wanted; what it
// returns is decoded from the stored state itself, never from the cache.
func (db *DB) ListConfigurationsWanted() ([]api.Configuration, error) {
	return db.listConfigurationsWhere(func(h configHead) bool { return h.minimum })
}

// ListConfigurationsScaled returns, ordered by name, the configurations
// with a scaling section, as ListConfigurationsWanted does.
func (db *DB) ListConfigurationsScaled() ([]api.Configuration, error) {
	return db.listConfigurationsWhere(func(h configHead) bool { return h.scaled })
}

func (db *DB) listConfigurationsWhere(pick func(configHead) bool) ([]api.Configuration, error) {
	c := &db.wanted
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.docs == nil {
		c.docs = map[string]wantedDoc{}
	}
	c.gen++
	seen := 0
	var out []api.Configuration
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketConfigurations).ForEach(func(k, v []byte) error {
			seen++
			d, ok := c.docs[string(k)]
			if !ok || !bytes.Equal(d.raw, v) {
				var head struct {
					MinimumServiceCount int             `json:"minimumServiceCount"`
					Scaling             json.RawMessage `json:"scaling"`
				}
				if err := json.Unmarshal(v, &head); err != nil {
					return fmt.Errorf("decode %s: %w", k, err)
				}
				d = wantedDoc{raw: bytes.Clone(v), head: configHead{
					minimum: head.MinimumServiceCount > 0,
					scaled:  len(head.Scaling) > 0 && string(head.Scaling) != "null",
				}}
			}
			d.gen = c.gen
			c.docs[string(k)] = d
			if !pick(d.head) {
				return nil
			}
			var cfg api.Configuration
			if err := json.Unmarshal(v, &cfg); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			out = append(out, cfg)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if len(c.docs) > seen { // deleted since: forget them
		for k, d := range c.docs {
			if d.gen != c.gen {
				delete(c.docs, k)
			}
		}
	}
	return out, nil
}
