package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/universe-orchestrator/universe/api"
)

// CreateBackup starts a backup of an instance (POST
// /api/instances/{id}/backups); the record answered is PENDING: Backup
// follows it.
func (c *Client) CreateBackup(ctx context.Context, instanceID string, req api.BackupRequest) (api.Backup, error) {
	var out api.Backup
	return out, c.do(ctx, "POST", "/api/instances/"+seg(instanceID)+"/backups", nil, req, &out)
}

// Backups lists an instance's backups, oldest first.
func (c *Client) Backups(ctx context.Context, instanceID string) ([]api.Backup, error) {
	var out []api.Backup
	return out, c.do(ctx, "GET", "/api/instances/"+seg(instanceID)+"/backups", nil, nil, &out)
}

// ConfigurationBackups lists the backups of a configuration's instances.
func (c *Client) ConfigurationBackups(ctx context.Context, configuration string) ([]api.Backup, error) {
	var out []api.Backup
	return out, c.do(ctx, "GET", "/api/configurations/"+seg(configuration)+"/backups", nil, nil, &out)
}

// Backup returns one backup's record.
func (c *Client) Backup(ctx context.Context, id string) (api.Backup, error) {
	var out api.Backup
	return out, c.do(ctx, "GET", "/api/backups/"+seg(id), nil, nil, &out)
}

// DeleteBackup deletes a backup and its archive (refused while locked).
func (c *Client) DeleteBackup(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/api/backups/"+seg(id), nil, nil, nil)
}

// LockBackup locks (or unlocks) a backup: a locked one is never rotated
// nor deleted.
func (c *Client) LockBackup(ctx context.Context, id string, locked bool) (api.Backup, error) {
	op := "/unlock"
	if locked {
		op = "/lock"
	}
	var out api.Backup
	return out, c.do(ctx, "POST", "/api/backups/"+seg(id)+op, nil, nil, &out)
}

// RestoreBackup restores a backup into its instance, which must be
// stopped; the instance's log says when it is done. It returns the
// backup's record.
func (c *Client) RestoreBackup(ctx context.Context, id string, truncate bool) (api.Backup, error) {
	var out api.Backup
	return out, c.do(ctx, "POST", "/api/backups/"+seg(id)+"/restore", nil, api.RestoreRequest{Truncate: truncate}, &out)
}

// DownloadBackup writes a backup's archive (tar + zstd) to w, checking it
// against the SHA-256 the master sends; it returns the bytes written.
func (c *Client) DownloadBackup(ctx context.Context, id string, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, "GET", "/api/backups/"+seg(id)+"/download", nil, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), resp.Body)
	if err != nil {
		return n, err
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("the archive broke off: %d of %d bytes", n, resp.ContentLength)
	}
	if want := resp.Header.Get("X-Checksum-Sha256"); want != "" && want != hex.EncodeToString(h.Sum(nil)) {
		return n, fmt.Errorf("the archive does not match its SHA-256 %s", want)
	}
	return n, nil
}
