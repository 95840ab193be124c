package storage

import (
	"encoding/json"
	"fmt"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	bolt "go.etcd.io/bbolt"
)

// PutConfiguration stores c under c.Name, replacing any earlier version.
func (db *DB) PutConfiguration(c api.Configuration) error {
	return db.PutConfigurationAudited(c, nil)
}

// PutConfigurationAudited is PutConfiguration with its audit entry (nil:
// none) written in the same transaction (in a cluster, the same
// command): one commit for both, not two.
func (db *DB) PutConfigurationAudited(c api.Configuration, audit *universe.AuditEntry) error {
	if db.rep != nil {
		return db.replicate(Command{Op: OpConfigPut, Config: &c, Audit: audit})
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		if err := putConfigurationTx(tx, c); err != nil {
			return err
		}
		if audit != nil {
			return db.appendAudit(tx, *audit)
		}
		return nil
	})
}

func putConfigurationTx(tx *bolt.Tx, c api.Configuration) error {
	return putJSON(tx.Bucket(bucketConfigurations), c.Name, c)
}

// GetConfiguration returns the configuration called name. Errors: ENOTFOUND.
func (db *DB) GetConfiguration(name string) (api.Configuration, error) {
	var c api.Configuration
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketConfigurations).Get([]byte(name))
		if v == nil {
			return universe.Errorf(universe.ENOTFOUND, "no configuration named %q", name)
		}
		return json.Unmarshal(v, &c)
	})
	return c, err
}

// DeleteConfiguration removes the configuration called name. Errors:
// ENOTFOUND.
func (db *DB) DeleteConfiguration(name string) error {
	if db.rep != nil {
		return db.replicate(Command{Op: OpConfigDelete, Name: name})
	}
	return db.deleteConfiguration(name)
}

func (db *DB) deleteConfiguration(name string) error {
	return db.bolt.Update(func(tx *bolt.Tx) error { return deleteConfigurationTx(tx, name) })
}

func deleteConfigurationTx(tx *bolt.Tx, name string) error {
	b := tx.Bucket(bucketConfigurations)
	if b.Get([]byte(name)) == nil {
		return universe.Errorf(universe.ENOTFOUND, "no configuration named %q", name)
	}
	return b.Delete([]byte(name))
}

// ListConfigurations returns every configuration, ordered by name.
func (db *DB) ListConfigurations() ([]api.Configuration, error) {
	return listJSON[api.Configuration](db, bucketConfigurations)
}

// storedInstance is an instance record as stored: the wire's InstanceInfo
// and its properties, which the wire leaves out.
type storedInstance struct {
	api.InstanceInfo
	Properties map[string]any `json:"properties,omitempty"`
}

// PutInstance stores the record of one instance. Records written at the
// same time (a master stopping hundreds of instances) share a commit
// (groupCommit; not bbolt's Batch, whose 10 ms coalescing delay every lone
// state change would pay).
//
// In a cluster the records are the leader's to write (its instance
// manager runs the instances): a command stamped with its term, applied
// only if it still leads. Errors there: EUNAVAILABLE (not the leader),
// ECONFLICT (deposed meanwhile).
func (db *DB) PutInstance(info api.InstanceInfo) error {
	rec := storedInstance{InstanceInfo: info, Properties: info.Properties}
	if db.rep != nil {
		return db.replicateAsLeader(Command{Op: OpInstancePut, Instance: &rec})
	}
	return db.group.update(func(tx *bolt.Tx) error { return putInstanceTx(tx, rec) })
}

// PutInstanceQueued is PutInstance without waiting for the commit: the
// record is written in the next commit, in order with this master's other
// writes (a later write of the same record lands after it), and failed is
// told if it could not be. A write that waits, such as the audit entry of
// the request that made the change, waits for this one too. In a cluster
// it is PutInstance (failed is told its error).
func (db *DB) PutInstanceQueued(info api.InstanceInfo, failed func(error)) {
	rec := storedInstance{InstanceInfo: info, Properties: info.Properties}
	if db.rep != nil {
		if err := db.replicateAsLeader(Command{Op: OpInstancePut, Instance: &rec}); err != nil {
			failed(err)
		}
		return
	}
	db.group.queue(func(tx *bolt.Tx) error { return putInstanceTx(tx, rec) }, func(err error) {
		if err != nil {
			failed(err)
		}
	})
}

// Info is the record as the instance manager has it.
func (r *storedInstance) Info() api.InstanceInfo {
	info := r.InstanceInfo
	info.Properties = r.Properties
	return info
}

// InstancePut is the command that stores info as it is, unfenced: a
// single master's record carried into its new cluster.
func InstancePut(info api.InstanceInfo) Command {
	return Command{Op: OpInstancePut, Instance: &storedInstance{InstanceInfo: info, Properties: info.Properties}}
}

func putInstanceTx(tx *bolt.Tx, rec storedInstance) error {
	if rec.ID == "" {
		return fmt.Errorf("%w: an instance record without an id", errBadCommand)
	}
	return putJSON(tx.Bucket(bucketInstances), rec.ID, rec)
}

// DeleteInstance removes the record of one instance; a missing one is not
// an error. In a cluster: the leader's, as PutInstance.
func (db *DB) DeleteInstance(id string) error {
	if db.rep != nil {
		return db.replicateAsLeader(Command{Op: OpInstanceDelete, ID: id})
	}
	return db.group.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketInstances).Delete([]byte(id))
	})
}

// ListInstances returns every instance record, ordered by id.
func (db *DB) ListInstances() ([]api.InstanceInfo, error) {
	recs, err := listJSON[storedInstance](db, bucketInstances)
	out := make([]api.InstanceInfo, len(recs))
	for i, r := range recs {
		out[i] = r.InstanceInfo
		out[i].Properties = r.Properties
	}
	return out, err
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return b.Put([]byte(key), data)
}

func listJSON[T any](db *DB, bucket []byte) ([]T, error) {
	var out []T
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var x T
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			out = append(out, x)
			return nil
		})
	})
	return out, err
}
