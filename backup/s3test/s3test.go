// Package s3test gives tests a real S3-compatible server: SeaweedFS's
// "weed mini" on loopback ports, a process of its own with a data folder
// of the test's, and a proxy in front of it that breaks uploads' parts on
// demand.
package s3test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Credentials of the test server's one identity.
const (
	AccessKey = "UNIVERSETESTKEY"
	SecretKey = "universe-test-secret-key-0123456789"
	Bucket    = "backups"
)

// Server is a running weed with its S3 endpoint.
type Server struct {
	Endpoint string // http://127.0.0.1:port
	Dir      string
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// Weed returns the weed binary: $WEED, else one built from its module
// (.ci/build-weed) into the user's cache folder, once per machine.
func Weed() (string, error) {
	if p := os.Getenv("WEED"); p != "" {
		return p, nil
	}
	buildOnce.Do(func() {
		_, file, _, _ := goruntime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if p := filepath.Join(root, ".ci", "bin", "weed"); isExec(p) {
			binary = p
			return
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		binary = filepath.Join(cache, "universe", "weed-7506e5f91cd6", "weed")
		if isExec(binary) {
			return
		}
		// One build at a time on the machine (test packages run at once).
		_ = os.MkdirAll(filepath.Dir(binary), 0o755)
		lock, err := os.OpenFile(binary+".lock", os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			buildErr = err
			return
		}
		defer lock.Close()
		_ = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX)
		if isExec(binary) {
			return
		}
		out, err := exec.Command("bash", filepath.Join(root, ".ci", "build-weed"), binary).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build weed: %v\n%s", err, out)
		}
	})
	return binary, buildErr
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// freePort returns a loopback port p with p+10000 free too (weed's gRPC
// ports are its HTTP ports + 10000).
func freePort() (int, error) {
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		if p+10000 > 65535 {
			l.Close()
			continue
		}
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000))
		l.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no free port pair")
}

// Start runs a weed mini for the test, with the bucket made, and stops it
// at the test's end.
func Start(t testing.TB) *Server {
	t.Helper()
	s, stop, err := StartIn(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return s
}

// StartIn runs a weed mini with its data in dir (the bucket made); stop
// kills it.
func StartIn(dir string) (srv *Server, stop func(), err error) {
	bin, err := Weed()
	if err != nil {
		return nil, nil, err
	}
	conf := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(conf, []byte(`{"identities":[{"name":"universe","credentials":[{"accessKey":"`+AccessKey+`","secretKey":"`+SecretKey+`"}],"actions":["Admin","Read","Write","List","Tagging"]}]}`), 0o600); err != nil {
		return nil, nil, err
	}
	data := filepath.Join(dir, "data")
	_ = os.Mkdir(data, 0o700)
	for attempt := 0; ; attempt++ {
		ports := []int{}
		for len(ports) < 6 {
			p, err := freePort()
			if err != nil {
				return nil, nil, err
			}
			ok := true
			for _, q := range ports {
				ok = ok && q != p
			}
			if ok {
				ports = append(ports, p)
			}
		}
		logf, err := os.Create(filepath.Join(dir, "weed.log"))
		if err != nil {
			return nil, nil, err
		}
		cmd := exec.Command(bin, "mini", "-dir="+data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
			"-s3.config="+conf, "-s3.port="+strconv.Itoa(ports[0]), "-master.port="+strconv.Itoa(ports[1]),
			"-volume.port="+strconv.Itoa(ports[2]), "-filer.port="+strconv.Itoa(ports[3]),
			"-admin.ui=false", "-admin.port="+strconv.Itoa(ports[4]), "-admin.port.legacy=0",
			"-metricsPort="+strconv.Itoa(ports[5]), "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
			"-bucket="+Bucket)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		cmd.Env = append(os.Environ(), "HOME="+dir)
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, nil, err
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		stop := func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			logf.Close()
		}
		if ready(ports[0], done, 90*time.Second) {
			return &Server{Endpoint: "http://127.0.0.1:" + strconv.Itoa(ports[0]), Dir: dir}, stop, nil
		}
		stop()
		if attempt == 2 {
			b, _ := os.ReadFile(filepath.Join(dir, "weed.log"))
			return nil, nil, fmt.Errorf("weed did not serve S3 on :%d:\n%s", ports[0], tail(b, 4000))
		}
	}
}

// ready waits for the bucket to exist, asked with the credentials.
func ready(port int, done <-chan struct{}, within time.Duration) bool {
	cl, err := minio.New("127.0.0.1:"+strconv.Itoa(port), &minio.Options{
		Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""), BucketLookup: minio.BucketLookupPath, MaxRetries: 1,
	})
	if err != nil {
		return false
	}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return false
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ok, err := cl.BucketExists(ctx, Bucket)
		cancel()
		if err == nil && ok {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Faults is a proxy in front of an S3 endpoint that breaks the uploads'
// parts (PUT with a partNumber): the first Fail of them, or every one
// while Always is set, alternately answered 500 and cut off in the
// middle of their body.
type Faults struct {
	URL    string
	Fail   atomic.Int64 // parts still to break
	Always atomic.Bool
	Broken atomic.Int64 // parts broken so far
	Parts  atomic.Int64 // part requests seen
}

// NewFaults starts a fault proxy to endpoint for the test.
func NewFaults(t testing.TB, endpoint string) *Faults {
	f, stop, err := StartFaults(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return f
}

// StartFaults starts a fault proxy to endpoint; stop ends it.
func StartFaults(endpoint string) (*Faults, func(), error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, nil, err
	}
	f := &Faults{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Query().Get("partNumber") != "" {
			f.Parts.Add(1)
			if f.Always.Load() || f.Fail.Add(-1) >= 0 {
				n := f.Broken.Add(1)
				// Read some of the part, then fail.
				_, _ = io.CopyN(io.Discard, r.Body, 1<<20)
				if n%2 == 1 {
					w.Header().Set("Content-Type", "application/xml")
					w.WriteHeader(http.StatusInternalServerError)
					_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected</Message></Error>`)
					return
				}
				if hj, ok := w.(http.Hijacker); ok {
					if c, _, err := hj.Hijack(); err == nil {
						_ = c.Close() // the connection dropped mid-part
						return
					}
				}
				w.WriteHeader(http.StatusBadGateway)
				return
			}
		}
		rp.ServeHTTP(w, r)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	f.URL = "http://" + l.Addr().String()
	return f, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
