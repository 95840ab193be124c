package storage

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/master/users"
	bolt "go.etcd.io/bbolt"
)

// Users and their grants: replicated state, written through commands in a
// cluster (user.create, user.put, user.delete, grant.put, grant.delete).

// CreateUser stores a new user. Errors: ECONFLICT when the name is taken.
func (db *DB) CreateUser(u users.User) error {
	return db.write(Command{Op: OpUserCreate, User: &u}, func(tx *bolt.Tx) error { return createUserTx(tx, u) })
}

// write applies cmd: through the replicator in a cluster, else here with
// local.
func (db *DB) write(cmd Command, local func(tx *bolt.Tx) error) error {
	if db.rep != nil {
		return db.replicate(cmd)
	}
	return db.bolt.Update(local)
}

func createUserTx(tx *bolt.Tx, u users.User) error {
	b := tx.Bucket(bucketUsers)
	if b.Get([]byte(u.Name)) != nil {
		return universe.Errorf(universe.ECONFLICT, "a user named %q exists already", u.Name)
	}
	return putJSON(b, u.Name, u)
}

// UpdateUser changes the user called name with f (on this master's copy;
// in a cluster the changed record is a command). Errors: ENOTFOUND, f's.
func (db *DB) UpdateUser(name string, f func(*users.User) error) (users.User, error) {
	u, err := db.GetUser(name)
	if err != nil {
		return u, err
	}
	if err := f(&u); err != nil {
		return u, err
	}
	return u, db.write(Command{Op: OpUserPut, User: &u}, func(tx *bolt.Tx) error { return putUserTx(tx, u) })
}

func putUserTx(tx *bolt.Tx, u users.User) error {
	b := tx.Bucket(bucketUsers)
	if b.Get([]byte(u.Name)) == nil {
		return universe.Errorf(universe.ENOTFOUND, "no user named %q", u.Name)
	}
	return putJSON(b, u.Name, u)
}

// DeleteUser removes a user with its grants and its keys (and their
// sessions), in one transaction. Errors: ENOTFOUND; ECONFLICT for the last
// admin.
func (db *DB) DeleteUser(name string) error {
	return db.write(Command{Op: OpUserDelete, Name: name}, func(tx *bolt.Tx) error { return deleteUserTx(tx, name) })
}

func deleteUserTx(tx *bolt.Tx, name string) error {
	b := tx.Bucket(bucketUsers)
	v := b.Get([]byte(name))
	if v == nil {
		return universe.Errorf(universe.ENOTFOUND, "no user named %q", name)
	}
	var u users.User
	if err := json.Unmarshal(v, &u); err != nil {
		return err
	}
	if u.Admin && !u.Disabled {
		admins := 0
		_ = b.ForEach(func(_, v []byte) error {
			var o users.User
			if json.Unmarshal(v, &o) == nil && o.Admin && !o.Disabled {
				admins++
			}
			return nil
		})
		if admins <= 1 {
			return universe.Errorf(universe.ECONFLICT, "%s is the last admin: make another admin first", name)
		}
	}
	gb := tx.Bucket(bucketGrants)
	var gone [][]byte
	_ = gb.ForEach(func(k, v []byte) error {
		var g users.Grant
		if json.Unmarshal(v, &g) == nil && g.User == name {
			gone = append(gone, append([]byte(nil), k...))
		}
		return nil
	})
	for _, k := range gone {
		if err := gb.Delete(k); err != nil {
			return err
		}
	}
	var keys []string
	_ = tx.Bucket(bucketKeys).ForEach(func(_, v []byte) error {
		var k universe.KeyRecord
		if json.Unmarshal(v, &k) == nil && k.User == name {
			keys = append(keys, k.ID)
		}
		return nil
	})
	for _, id := range keys {
		if err := deleteKeyTx(tx, id); err != nil {
			return err
		}
	}
	return b.Delete([]byte(name))
}

// GetUser returns the user called name. Errors: ENOTFOUND.
func (db *DB) GetUser(name string) (users.User, error) {
	var u users.User
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketUsers).Get([]byte(name))
		if v == nil {
			return universe.Errorf(universe.ENOTFOUND, "no user named %q", name)
		}
		return json.Unmarshal(v, &u)
	})
	return u, err
}

// ListUsers returns every user, ordered by name.
func (db *DB) ListUsers() ([]users.User, error) { return listJSON[users.User](db, bucketUsers) }

// PutGrant stores a grant (new, or replacing one of the same id). Errors:
// ENOTFOUND when its user is gone.
func (db *DB) PutGrant(g users.Grant) error {
	return db.write(Command{Op: OpGrantPut, Grant: &g}, func(tx *bolt.Tx) error { return putGrantTx(tx, g) })
}

func putGrantTx(tx *bolt.Tx, g users.Grant) error {
	if tx.Bucket(bucketUsers).Get([]byte(g.User)) == nil {
		return universe.Errorf(universe.ENOTFOUND, "no user named %q", g.User)
	}
	if g.ID == "" {
		return fmt.Errorf("%w: a grant without an id", errBadCommand)
	}
	return putJSON(tx.Bucket(bucketGrants), g.ID, g)
}

// DeleteGrant removes grant id of user. Errors: ENOTFOUND.
func (db *DB) DeleteGrant(user, id string) error {
	return db.write(Command{Op: OpGrantDelete, Name: user, ID: id}, func(tx *bolt.Tx) error { return deleteGrantTx(tx, user, id) })
}

func deleteGrantTx(tx *bolt.Tx, user, id string) error {
	b := tx.Bucket(bucketGrants)
	v := b.Get([]byte(id))
	var g users.Grant
	if v == nil || json.Unmarshal(v, &g) != nil || g.User != user {
		return universe.Errorf(universe.ENOTFOUND, "user %s has no grant %q", user, id)
	}
	return b.Delete([]byte(id))
}

// ListGrants returns the grants of user ("" for everyone's), oldest first.
func (db *DB) ListGrants(user string) ([]users.Grant, error) {
	all, err := listJSON[users.Grant](db, bucketGrants)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, g := range all {
		if user == "" || g.User == user {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CreatedAt != out[j].CreatedAt {
			return out[i].CreatedAt < out[j].CreatedAt
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// TakeSecondFactor spends a second factor of name, atomically (one
// transaction; in a cluster one command, refused alike everywhere): a
// TOTP code's time step, taken only if it is later than the last one
// taken; or a recovery code's hash, taken only if still unused. Two
// sign-ins with one code, on one master or two, cannot both pass.
// Errors: ENOTFOUND; EUNAUTHORIZED (spent already).
func (db *DB) TakeSecondFactor(name string, step uint64, recoveryHash string) error {
	cmd := Command{Op: OpUserFactor, Name: name, Step: step, ID: recoveryHash}
	return db.write(cmd, func(tx *bolt.Tx) error { return takeFactorTx(tx, name, step, recoveryHash) })
}

func takeFactorTx(tx *bolt.Tx, name string, step uint64, recoveryHash string) error {
	b := tx.Bucket(bucketUsers)
	v := b.Get([]byte(name))
	if v == nil {
		return universe.Errorf(universe.ENOTFOUND, "no user named %q", name)
	}
	var u users.User
	if err := json.Unmarshal(v, &u); err != nil {
		return err
	}
	switch {
	case recoveryHash != "":
		i := slices.Index(u.RecoveryHashes, recoveryHash)
		if i < 0 {
			return universe.Errorf(universe.EUNAUTHORIZED, "that recovery code is spent or unknown")
		}
		u.RecoveryHashes = slices.Delete(u.RecoveryHashes, i, i+1)
	case step > u.TOTPLastStep:
		u.TOTPLastStep = step
	default:
		return universe.Errorf(universe.EUNAUTHORIZED, "that code was used already")
	}
	return putJSON(b, name, u)
}
