package storage

import (
	"encoding/json"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	bolt "go.etcd.io/bbolt"
)

// NodeRecord is a registered agent node. Its credential is not kept: only
// the public key it proves (an nkey).
type NodeRecord struct {
	Name      string            `json:"name"`
	PublicKey string            `json:"publicKey"`
	Capacity  api.NodeCapacity  `json:"capacity"`
	Ports     api.Ports         `json:"ports"` // 0-0: any
	Labels    map[string]string `json:"labels,omitempty"`
	Draining  bool              `json:"draining,omitempty"`
	Revoked   bool              `json:"revoked,omitempty"`
	CreatedAt int64             `json:"createdAt"`
	RevokedAt int64             `json:"revokedAt,omitempty"`
}

// CreateNode stores a new node. Errors: ECONFLICT when the name is taken
// (a revoked node's name too: its instances' records name it).
func (db *DB) CreateNode(n NodeRecord) error {
	if db.rep != nil {
		return db.replicate(Command{Op: OpNodeCreate, Node: &n})
	}
	return db.bolt.Update(func(tx *bolt.Tx) error { return createNodeTx(tx, n) })
}

func createNodeTx(tx *bolt.Tx, n NodeRecord) error {
	b := tx.Bucket(bucketNodes)
	if b.Get([]byte(n.Name)) != nil {
		return universe.Errorf(universe.ECONFLICT, "a node named %q exists already", n.Name)
	}
	return putJSON(b, n.Name, n)
}

func putNodeTx(tx *bolt.Tx, n NodeRecord) error {
	b := tx.Bucket(bucketNodes)
	if b.Get([]byte(n.Name)) == nil {
		return universe.Errorf(universe.ENOTFOUND, "no node named %q", n.Name)
	}
	return putJSON(b, n.Name, n)
}

// UpdateNode changes the node called name with f. Errors: ENOTFOUND. In a
// cluster the changed record is a command (f runs on this master's copy).
func (db *DB) UpdateNode(name string, f func(*NodeRecord) error) (NodeRecord, error) {
	var n NodeRecord
	if db.rep != nil {
		n, err := db.GetNode(name)
		if err != nil {
			return n, err
		}
		if err := f(&n); err != nil {
			return n, err
		}
		return n, db.replicate(Command{Op: OpNodePut, Node: &n})
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNodes)
		v := b.Get([]byte(name))
		if v == nil {
			return universe.Errorf(universe.ENOTFOUND, "no node named %q", name)
		}
		if err := json.Unmarshal(v, &n); err != nil {
			return err
		}
		if err := f(&n); err != nil {
			return err
		}
		return putJSON(b, name, n)
	})
	return n, err
}

// DeleteNode removes a revoked node's record (its name may then be used
// again). Errors: ENOTFOUND; ECONFLICT while it is not revoked.
func (db *DB) DeleteNode(name string) error {
	if db.rep != nil {
		return db.replicate(Command{Op: OpNodeDelete, Name: name})
	}
	return db.bolt.Update(func(tx *bolt.Tx) error { return deleteNodeTx(tx, name) })
}

func deleteNodeTx(tx *bolt.Tx, name string) error {
	b := tx.Bucket(bucketNodes)
	v := b.Get([]byte(name))
	if v == nil {
		return universe.Errorf(universe.ENOTFOUND, "no node named %q", name)
	}
	var n NodeRecord
	if err := json.Unmarshal(v, &n); err != nil {
		return err
	}
	if !n.Revoked {
		return universe.Errorf(universe.ECONFLICT, "node %q is not revoked: revoke it first", name)
	}
	return b.Delete([]byte(name))
}

// GetNode returns the node called name. Errors: ENOTFOUND.
func (db *DB) GetNode(name string) (NodeRecord, error) {
	var n NodeRecord
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketNodes).Get([]byte(name))
		if v == nil {
			return universe.Errorf(universe.ENOTFOUND, "no node named %q", name)
		}
		return json.Unmarshal(v, &n)
	})
	return n, err
}

// ListNodes returns every node, revoked ones too, ordered by name.
func (db *DB) ListNodes() ([]NodeRecord, error) { return listJSON[NodeRecord](db, bucketNodes) }
