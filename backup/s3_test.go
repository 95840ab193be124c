package backup_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/backup"
	"github.com/universe-orchestrator/universe/backup/s3test"
)

// targetsFile writes a targets file naming endpoint, with key files; all
// 0600.
func targetsFile(t *testing.T, endpoint string) string {
	t.Helper()
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "access"), []byte(s3test.AccessKey+"\n"), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "secret"), []byte(s3test.SecretKey+"\n"), 0o600)
	b, _ := json.Marshal(map[string]any{"offsite": map[string]any{
		"type": "s3", "endpoint": endpoint, "bucket": s3test.Bucket, "prefix": "universe", "region": "us-east-1",
		"pathStyle": true, "accessKeyFile": "access", "secretKeyFile": "secret",
	}})
	p := filepath.Join(dir, "targets.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// randomStream is n bytes of incompressible data and its SHA-256.
func randomStream(n int64, seed uint64) (io.Reader, string) {
	h := sha256.New()
	r := rand.NewChaCha8([32]byte{byte(seed)})
	_, _ = io.CopyN(h, r, n)
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed)}), n), hex.EncodeToString(h.Sum(nil))
}

func TestTargetsFileMustBePrivate(t *testing.T) {
	p := targetsFile(t, "http://127.0.0.1:1")
	if _, err := backup.LoadTargets(p); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(p, 0o644)
	if _, err := backup.LoadTargets(p); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Errorf("a targets file others may read: %v", err)
	}
	_ = os.Chmod(p, 0o600)
	_ = os.Chmod(filepath.Join(filepath.Dir(p), "secret"), 0o640)
	_, err := backup.LoadTargets(p)
	if err == nil || !strings.Contains(err.Error(), "0600") {
		t.Errorf("a secret key file others may read: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), s3test.SecretKey) {
		t.Error("the error shows the secret")
	}
}

// Uploads to a real S3 server (SeaweedFS) through a proxy that breaks
// parts: three broken parts are retried and the archive arrives whole; a
// server that fails every part ends the upload with an error and leaves
// no multipart upload open.
func TestS3UploadSurvivesBrokenParts(t *testing.T) {
	srv := s3test.Start(t)
	faults := s3test.NewFaults(t, srv.Endpoint)
	targets, err := backup.LoadTargets(targetsFile(t, faults.URL))
	if err != nil {
		t.Fatal(err)
	}
	direct, err := backup.LoadTargets(targetsFile(t, srv.Endpoint))
	if err != nil {
		t.Fatal(err)
	}
	tgt, s3 := targets["offsite"], direct["offsite"].(*backup.S3)
	ctx := context.Background()

	const size = 3*backup.PartSize + 5<<20
	faults.Fail.Store(3)
	r, sum := randomStream(size, 1)
	if err := tgt.Put(ctx, backup.Key("i1", "b1"), r); err != nil {
		t.Fatalf("upload with 3 broken parts: %v", err)
	}
	if faults.Broken.Load() != 3 {
		t.Errorf("%d parts broken, want 3", faults.Broken.Load())
	}
	rc, err := s3.Open(ctx, backup.Key("i1", "b1"))
	if err != nil {
		t.Fatal(err)
	}
	h := backup.NewHashingReader(rc)
	_, _ = io.Copy(io.Discard, h)
	rc.Close()
	if h.N != size || h.Sum() != sum {
		t.Fatalf("stored %d bytes %s, sent %d %s", h.N, h.Sum(), int64(size), sum)
	}

	faults.Always.Store(true)
	start := time.Now()
	r, _ = randomStream(2*backup.PartSize, 2)
	if err := tgt.Put(ctx, backup.Key("i1", "b2"), r); err == nil {
		t.Fatal("an upload every part of which failed succeeded")
	} else if strings.Contains(err.Error(), s3test.SecretKey) || strings.Contains(err.Error(), "X-Amz-Signature") {
		t.Errorf("the error shows a secret: %v", err)
	}
	t.Logf("a permanently failing upload gave up after %s (%d part attempts)", time.Since(start).Round(time.Millisecond), faults.Parts.Load())
	if n, err := s3.Uploads(ctx); err != nil || n != 0 {
		t.Errorf("multipart uploads left open: %d (%v)", n, err)
	}
	if _, err := s3.Open(ctx, backup.Key("i1", "b2")); err == nil {
		t.Error("the failed upload's object exists")
	}
	if err := s3.Delete(ctx, backup.Key("i1", "b1")); err != nil {
		t.Fatal(err)
	}
}
