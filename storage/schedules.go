package storage

import (
	"bytes"
	"encoding/json"
	"fmt"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	bolt "go.etcd.io/bbolt"
)

// Schedules and their runs: replicated state (schedule.put,
// schedule.delete, run.create, run.put).

// runsKept is how many runs of a schedule are kept (the newest).
const runsKept = 50

// PutSchedule stores (creates or replaces) a schedule.
func (db *DB) PutSchedule(s api.Schedule) error {
	return db.write(Command{Op: OpSchedulePut, Schedule: &s}, func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketSchedules), s.ID, s)
	})
}

// DeleteSchedule removes a schedule and its runs. Errors: ENOTFOUND.
func (db *DB) DeleteSchedule(id string) error {
	return db.write(Command{Op: OpScheduleDelete, ID: id}, func(tx *bolt.Tx) error { return deleteScheduleTx(tx, id) })
}

func deleteScheduleTx(tx *bolt.Tx, id string) error {
	b := tx.Bucket(bucketSchedules)
	if b.Get([]byte(id)) == nil {
		return universe.Errorf(universe.ENOTFOUND, "no schedule %q", id)
	}
	rb := tx.Bucket(bucketRuns)
	prefix := []byte(id + "/")
	var gone [][]byte
	c := rb.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		gone = append(gone, append([]byte(nil), k...))
	}
	for _, k := range gone {
		if err := rb.Delete(k); err != nil {
			return err
		}
	}
	return b.Delete([]byte(id))
}

// GetSchedule returns a schedule. Errors: ENOTFOUND.
func (db *DB) GetSchedule(id string) (api.Schedule, error) {
	var s api.Schedule
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSchedules).Get([]byte(id))
		if v == nil {
			return universe.Errorf(universe.ENOTFOUND, "no schedule %q", id)
		}
		return json.Unmarshal(v, &s)
	})
	return s, err
}

// Schedules lists every schedule.
func (db *DB) Schedules() ([]api.Schedule, error) {
	out := []api.Schedule{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSchedules).ForEach(func(k, v []byte) error {
			var s api.Schedule
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("decode schedule %s: %w", k, err)
			}
			out = append(out, s)
			return nil
		})
	})
	return out, err
}

func runKey(r api.ScheduleRun) []byte {
	return []byte(fmt.Sprintf("%s/%020d/%s", r.ScheduleID, r.FireTime.UnixNano(), r.ID))
}

// CreateRun stores a new run of a schedule, keeping its newest runsKept.
// Errors: ECONFLICT when the run exists (a firing runs once).
func (db *DB) CreateRun(r api.ScheduleRun) error {
	return db.write(Command{Op: OpRunCreate, Run: &r}, func(tx *bolt.Tx) error { return createRunTx(tx, r) })
}

func createRunTx(tx *bolt.Tx, r api.ScheduleRun) error {
	b := tx.Bucket(bucketRuns)
	k := runKey(r)
	if b.Get(k) != nil {
		return universe.Errorf(universe.ECONFLICT, "run %s exists", r.ID)
	}
	if tx.Bucket(bucketSchedules).Get([]byte(r.ScheduleID)) == nil {
		return universe.Errorf(universe.ENOTFOUND, "no schedule %q", r.ScheduleID)
	}
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := b.Put(k, v); err != nil {
		return err
	}
	prefix := []byte(r.ScheduleID + "/")
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for i := 0; i < len(keys)-runsKept; i++ {
		if err := b.Delete(keys[i]); err != nil {
			return err
		}
	}
	return nil
}

// PutRun replaces a run (gone already by rotation: nothing).
func (db *DB) PutRun(r api.ScheduleRun) error {
	return db.write(Command{Op: OpRunPut, Run: &r}, func(tx *bolt.Tx) error { return putRunTx(tx, r) })
}

func putRunTx(tx *bolt.Tx, r api.ScheduleRun) error {
	b := tx.Bucket(bucketRuns)
	k := runKey(r)
	if b.Get(k) == nil {
		return nil
	}
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put(k, v)
}

// Runs lists a schedule's runs newest first ("": every schedule's).
func (db *DB) Runs(scheduleID string) ([]api.ScheduleRun, error) {
	out := []api.ScheduleRun{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRuns).Cursor()
		prefix := []byte(scheduleID + "/")
		if scheduleID == "" {
			prefix = nil
		}
		var k, v []byte
		if prefix == nil {
			k, v = c.First()
		} else {
			k, v = c.Seek(prefix)
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r api.ScheduleRun
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode run %s: %w", k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}
