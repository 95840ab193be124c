// Package dockertest gives tests of the docker runtime a real engine and
// an image of their own: no registry is reachable, so the image is built
// here, FROM scratch, holding the static program in testdata/echo.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
)

// ImageTag is the test image; EntrypointTag the same program as the
// image's ENTRYPOINT (with "entry" as its first argument), so a
// configuration's command becomes its arguments.
const (
	ImageTag      = "universe-test-echo:latest"
	EntrypointTag = "universe-test-entry:latest"
)

var (
	once   sync.Once
	image  string
	reason string
)

// Client returns a client of the engine, or skips t when none answers
// (except in CI, where .ci/run starts one: there the test fails).
func Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = cli.Ping(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs a Docker Engine (.ci/run starts dockerd): %v", err)
		}
		t.Skipf("no Docker Engine answers (%v): the docker runtime is not tested here", err)
	}
	return cli
}

// Image builds the test image once per test binary and returns its tag.
func Image(t testing.TB) string {
	t.Helper()
	cli := Client(t)
	once.Do(func() {
		if err := Build(cli); err != nil {
			reason = err.Error()
		} else {
			image = ImageTag
		}
	})
	if image == "" {
		t.Fatalf("build the test image: %s", reason)
	}
	return image
}

// Program builds the image's program (static) to path: benchmarks run it
// as a plain process too, to compare the runtimes on the same program.
func Program(path string) error {
	_, here, _, _ := goruntime.Caller(0)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", path, ".")
	cmd.Dir = filepath.Join(filepath.Dir(here), "testdata", "echo")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v: %s", err, out)
	}
	return nil
}

// Build builds ImageTag: FROM scratch, with the program at /echo.
func Build(cli *client.Client) error {
	dir, err := os.MkdirTemp("", "universe-dockertest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "echo")
	if err := Program(bin); err != nil {
		return err
	}
	prog, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY echo /echo\nCMD [\"/echo\", \"image-default\"]\n")},
		{"Dockerfile.entry", 0o644, []byte("FROM scratch\nCOPY echo /echo\nENTRYPOINT [\"/echo\", \"entry\"]\n")},
		{"echo", 0o755, prog},
	}
	for _, f := range files {
		_ = tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))})
		_, _ = tw.Write(f.data)
	}
	_ = tw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, b := range []struct{ tag, file string }{{ImageTag, "Dockerfile"}, {EntrypointTag, "Dockerfile.entry"}} {
		resp, err := cli.ImageBuild(ctx, bytes.NewReader(ctxTar.Bytes()), build.ImageBuildOptions{Tags: []string{b.tag}, Dockerfile: b.file, Remove: true, ForceRemove: true})
		if err != nil {
			return err
		}
		err = jsonmessage.DisplayJSONMessagesStream(resp.Body, io.Discard, 0, false, nil)
		resp.Body.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
