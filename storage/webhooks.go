package storage

import (
	"encoding/json"
	"fmt"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	bolt "go.etcd.io/bbolt"
)

// Webhooks: replicated state (webhook.put, webhook.delete). A record holds
// its signing secret (to sign with; never answered after creation).

// PutWebhook stores a webhook.
func (db *DB) PutWebhook(w api.Webhook) error {
	return db.write(Command{Op: OpWebhookPut, Webhook: &w}, func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketWebhooks), w.ID, w)
	})
}

// DeleteWebhook removes a webhook. Errors: ENOTFOUND.
func (db *DB) DeleteWebhook(id string) error {
	return db.write(Command{Op: OpWebhookDelete, ID: id}, func(tx *bolt.Tx) error { return deleteWebhookTx(tx, id) })
}

func deleteWebhookTx(tx *bolt.Tx, id string) error {
	b := tx.Bucket(bucketWebhooks)
	if b.Get([]byte(id)) == nil {
		return universe.Errorf(universe.ENOTFOUND, "no webhook %q", id)
	}
	return b.Delete([]byte(id))
}

// Webhooks lists every webhook, secrets included.
func (db *DB) Webhooks() ([]api.Webhook, error) {
	out := []api.Webhook{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketWebhooks).ForEach(func(k, v []byte) error {
			var w api.Webhook
			if err := json.Unmarshal(v, &w); err != nil {
				return fmt.Errorf("decode webhook %s: %w", k, err)
			}
			out = append(out, w)
			return nil
		})
	})
	return out, err
}
