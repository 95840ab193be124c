package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/sys/unix"
)

// Target keeps archives under keys ("<instance>/<backup>.tar.zst").
type Target interface {
	// Put stores what r yields under key; on failure nothing is left
	// under key (nor a partial upload).
	Put(ctx context.Context, key string, r io.Reader) error
	// Open reads the archive under key. Errors: fs.ErrNotExist.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes key (absent: no error).
	Delete(ctx context.Context, key string) error
}

// LocalTarget is the name of the master's own folder target.
const LocalTarget = "local"

// Local keeps archives in a folder (files 0600, folders 0700). An archive
// is written as "<key>.partial" and renamed when whole, so a partial file
// is never taken for an archive; Sweep removes those a crash left.
type Local struct{ Dir string }

func (l Local) path(key string) (string, error) {
	if c, err := cleanName(key); err != nil || c == "." || c != key {
		return "", fmt.Errorf("bad archive key %q", key)
	}
	return filepath.Join(l.Dir, filepath.FromSlash(key)), nil
}

// Put implements Target.
func (l Local) Put(ctx context.Context, key string, r io.Reader) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	part := p + ".partial"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(&flushingWriter{f: f}, ctxReader{ctx, r}, make([]byte, 1<<20))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, p)
	}
	if err != nil {
		_ = os.Remove(part)
		return err
	}
	return nil
}

// flushingWriter starts the write-back of every 32 MiB written (without
// waiting for it), so that the fsync at the end finds little left to do,
// and the archive does not pile up in the page cache.
type flushingWriter struct {
	f       *os.File
	n, sent int64
}

func (w *flushingWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.n += int64(n)
	if w.n-w.sent >= 32<<20 {
		_ = unix.SyncFileRange(int(w.f.Fd()), w.sent, w.n-w.sent, unix.SYNC_FILE_RANGE_WRITE)
		w.sent = w.n
	}
	return n, err
}

// Open implements Target.
func (l Local) Open(_ context.Context, key string) (io.ReadCloser, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Delete implements Target.
func (l Local) Delete(_ context.Context, key string) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Sweep removes the partial archives an interrupted backup left, except
// those of the backups under way (their ids); it returns how many.
func (l Local) Sweep(underWay map[string]bool) int {
	n := 0
	_ = filepath.WalkDir(l.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !strings.HasSuffix(p, ".partial") {
			return nil
		}
		if underWay[strings.TrimSuffix(d.Name(), ".tar.zst.partial")] {
			return nil
		}
		if os.Remove(p) == nil {
			n++
		}
		return nil
	})
	return n
}

// S3Config is one S3-compatible target of the targets file.
type S3Config struct {
	Type          string `json:"type"`
	Endpoint      string `json:"endpoint"`
	Bucket        string `json:"bucket"`
	Prefix        string `json:"prefix"`
	Region        string `json:"region"`
	PathStyle     bool   `json:"pathStyle"`
	AccessKeyFile string `json:"accessKeyFile"`
	SecretKeyFile string `json:"secretKeyFile"`
}

// PartSize is the size of an S3 upload's parts: one part is held in memory
// while it is sent (and sent again when it fails).
const PartSize = 16 << 20

// S3 keeps archives in a bucket of an S3-compatible store, through
// minio-go: multipart uploads of PartSize parts, each retried with backoff,
// aborted on the server when the upload fails for good.
type S3 struct {
	client *minio.Client // reads, deletes, lists: minio-go's own retries
	// upload sends the parts, once each (MaxRetries 1): Put retries
	// them itself, each attempt with a reader of its own (minio-go seeks
	// a part's reader back for a retry while the HTTP transport may still
	// be reading it, a data race, when a server answers before the body
	// is sent).
	upload minio.Core
	bucket string
	prefix string
}

// NewS3 makes the target of c. The credentials come from c's files (each
// 0600) or, when c names none, from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY; they are never logged nor put in a URL.
func NewS3(c S3Config, baseDir string) (*S3, error) {
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" && u.Path != "/" || u.User != nil {
		return nil, fmt.Errorf("endpoint must be http(s)://host[:port], without credentials or a path")
	}
	if c.Bucket == "" {
		return nil, fmt.Errorf("bucket is required")
	}
	var ak, sk string
	switch {
	case c.AccessKeyFile != "" || c.SecretKeyFile != "":
		if ak, err = readSecret(c.AccessKeyFile, baseDir); err != nil {
			return nil, fmt.Errorf("accessKeyFile: %w", err)
		}
		if sk, err = readSecret(c.SecretKeyFile, baseDir); err != nil {
			return nil, fmt.Errorf("secretKeyFile: %w", err)
		}
	default:
		ak, sk = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
		if ak == "" || sk == "" {
			return nil, fmt.Errorf("no credentials: give accessKeyFile and secretKeyFile, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
		}
	}
	lookup := minio.BucketLookupAuto
	if c.PathStyle {
		lookup = minio.BucketLookupPath
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	opts := func(retries int) *minio.Options {
		return &minio.Options{
			Creds:        credentials.NewStaticV4(ak, sk, ""),
			Secure:       u.Scheme == "https",
			Region:       c.Region,
			BucketLookup: lookup,
			Transport:    tr,
			MaxRetries:   retries,
		}
	}
	cl, err := minio.New(u.Host, opts(6))
	if err != nil {
		return nil, fmt.Errorf("s3 client: %w", err)
	}
	up, err := minio.New(u.Host, opts(1))
	if err != nil {
		return nil, fmt.Errorf("s3 client: %w", err)
	}
	return &S3{client: cl, upload: minio.Core{Client: up}, bucket: c.Bucket, prefix: strings.Trim(c.Prefix, "/")}, nil
}

// readSecret reads a credential file, refused unless it is a regular file
// only its owner may read.
func readSecret(name, baseDir string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("missing")
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(baseDir, name)
	}
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", fmt.Errorf("cannot read it (%s)", errors.Unwrap(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file")
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("its mode is %04o: make it 0600", st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("empty")
	}
	return s, nil
}

func (s *S3) key(key string) string {
	if s.prefix == "" {
		return key
	}
	return s.prefix + "/" + key
}

// Put implements Target: a multipart upload of PartSize parts read from
// r one at a time, each part tried up to partAttempts times with backoff;
// an upload that fails for good is aborted on the server.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) (err error) {
	key = s.key(key)
	var id string
	if err := retry(ctx, func() (e error) {
		id, e = s.upload.NewMultipartUpload(ctx, s.bucket, key, minio.PutObjectOptions{ContentType: "application/zstd"})
		return e
	}); err != nil {
		return fmt.Errorf("upload to S3: %s", s3Reason(err))
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_ = retry(actx, func() error { return s.upload.AbortMultipartUpload(actx, s.bucket, key, id) })
		}
	}()
	var parts []minio.CompletePart
	buf := make([]byte, PartSize)
	for n := 1; ; n++ {
		size, rerr := io.ReadFull(r, buf)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return rerr
		}
		if size == 0 && n > 1 {
			break
		}
		tainted := false
		perr := retry(ctx, func() error {
			if tainted {
				// An attempt that failed may still be read by its
				// request: the next one gets a copy.
				buf = append(make([]byte, 0, PartSize), buf[:size]...)[:PartSize]
			}
			p, e := s.upload.PutObjectPart(ctx, s.bucket, key, id, n, bytes.NewReader(buf[:size]), int64(size), minio.PutObjectPartOptions{})
			if e != nil {
				tainted = true
				return e
			}
			parts = append(parts, minio.CompletePart{PartNumber: p.PartNumber, ETag: p.ETag})
			return nil
		})
		if perr != nil {
			return fmt.Errorf("upload to S3: part %d: %s", n, s3Reason(perr))
		}
		if tainted {
			buf = make([]byte, PartSize) // the failed attempts' buffer is theirs
		}
		if rerr != nil { // the last, short part
			break
		}
	}
	if err := retry(ctx, func() error {
		_, e := s.upload.CompleteMultipartUpload(ctx, s.bucket, key, id, parts, minio.PutObjectOptions{})
		return e
	}); err != nil {
		return fmt.Errorf("upload to S3: %s", s3Reason(err))
	}
	return nil
}

// partAttempts is how often a request of an upload is tried.
const partAttempts = 6

// retry calls f until it succeeds, partAttempts times at most, waiting
// 250 ms, 500 ms, 1 s, ... (at most 4 s) between tries; an error S3 says
// is the caller's (403, 404, 400) is not tried again.
func retry(ctx context.Context, f func() error) error {
	var err error
	wait := 250 * time.Millisecond
	for attempt := 0; attempt < partAttempts; attempt++ {
		if err = f(); err == nil {
			return nil
		}
		if st := minio.ToErrorResponse(err).StatusCode; st >= 400 && st < 500 && st != 408 && st != 429 {
			return err
		}
		if attempt == partAttempts-1 {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 4*time.Second)
	}
	return err
}

// Open implements Target.
func (s *S3) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	o, err := s.client.GetObject(ctx, s.bucket, s.key(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("read from S3: %s", s3Reason(err))
	}
	if _, err := o.Stat(); err != nil {
		o.Close()
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, fs.ErrNotExist
		}
		return nil, fmt.Errorf("read from S3: %s", s3Reason(err))
	}
	return o, nil
}

// Size is the size of the object under key, as the store has it.
func (s *S3) Size(ctx context.Context, key string) (int64, error) {
	st, err := s.client.StatObject(ctx, s.bucket, s.key(key), minio.StatObjectOptions{})
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return 0, fs.ErrNotExist
		}
		return 0, fmt.Errorf("stat on S3: %s", s3Reason(err))
	}
	return st.Size, nil
}

// Delete implements Target.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := s.client.RemoveObject(ctx, s.bucket, s.key(key), minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("delete from S3: %s", s3Reason(err))
	}
	return nil
}

// Uploads lists the multipart uploads open under the target's prefix
// (what a failed upload must not leave behind).
func (s *S3) Uploads(ctx context.Context) (int, error) {
	n := 0
	for u := range s.client.ListIncompleteUploads(ctx, s.bucket, s.prefix, true) {
		if u.Err != nil {
			return n, u.Err
		}
		n++
	}
	return n, nil
}

// s3Reason is an S3 error for a record or a client: its code and message,
// never a URL (which could carry a signature).
func s3Reason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	if r := minio.ToErrorResponse(err); r.Code != "" {
		return r.Code + ": " + r.Message
	}
	return err.Error()
}

// LoadTargets reads the targets file (JSON {"name": S3Config}), refused
// unless it is a regular file of mode 0600 (or stricter); relative key
// file names are taken from its folder.
func LoadTargets(file string) (map[string]Target, error) {
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("backup targets: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("backup targets: %s is not a regular file", file)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("backup targets: %s has mode %04o: make it 0600 (it names credentials)", file, st.Mode().Perm())
	}
	var conf map[string]S3Config
	dec := json.NewDecoder(io.LimitReader(f, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&conf); err != nil {
		return nil, fmt.Errorf("backup targets: %s: %w", file, err)
	}
	names := make([]string, 0, len(conf))
	for n := range conf {
		names = append(names, n)
	}
	sort.Strings(names)
	out := map[string]Target{}
	for _, name := range names {
		c := conf[name]
		if name == LocalTarget || name == "" || len(name) > 64 || strings.ContainsAny(name, "/ \t\n") {
			return nil, fmt.Errorf("backup targets: %q is not a target name (local is the master's folder)", name)
		}
		if c.Type != "s3" {
			return nil, fmt.Errorf("backup targets: %s: type must be \"s3\"", name)
		}
		t, err := NewS3(c, filepath.Dir(file))
		if err != nil {
			return nil, fmt.Errorf("backup targets: %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// Key is where a backup's archive is kept on its target.
func Key(instanceID, backupID string) string {
	return path.Join(instanceID, backupID+".tar.zst")
}
