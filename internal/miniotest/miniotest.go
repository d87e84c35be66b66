// Package miniotest runs a real MinIO server for tests: the pinned version,
// built once into a cache outside the checkout by scripts/minio.sh, started
// on 127.0.0.1 (of the root namespace, or of a given network namespace)
// with a fresh data directory, and stopped at the test's cleanup, also
// when the test fails.
package miniotest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kflcap/kflcap/internal/netnstest"
	"github.com/kflcap/kflcap/internal/toolcache"
)

// Credentials of every test server.
const (
	AccessKey = "kflcap-test"
	SecretKey = "kflcap-test-secret-key"
	Region    = "us-east-1"
)

var minio = toolcache.Tool{Env: "KFLCAP_MINIO", Script: "minio.sh", What: "MinIO server"}

// Binary returns the MinIO server binary: $KFLCAP_MINIO when set, else
// what scripts/minio.sh prints (building it on first use). It skips the
// test under -short (a real server is not a unit test), and when the
// binary cannot be had and CI is not set; on CI it fails.
func Binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("miniotest: a real MinIO server test: skipped under -short (unit tests only; make test runs it)")
	}
	return minio.Path(t)
}

// Server is a running MinIO.
type Server struct {
	// Endpoint is http://127.0.0.1:<port>, reachable from the namespace
	// the server runs in.
	Endpoint string
	Dir      string // data directory
	NS       string // network namespace ("" for the caller's)
	addr     string
	bin      string
	kms      string
	t        testing.TB

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
}

// Option changes how a server starts.
type Option func(*Server)

// InNetns runs the server inside a network namespace (ip netns exec), on
// that namespace's loopback.
func InNetns(ns string) Option { return func(s *Server) { s.NS = ns } }

// Start starts a MinIO server with a fresh data directory and waits until
// it answers. SSE-S3 (AES256) works: the server has a static KMS key.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{Dir: t.TempDir(), bin: Binary(t), t: t}
	for _, o := range opts {
		o(s)
	}
	key := make([]byte, 32)
	rand.Read(key)
	s.kms = "kflcap-test-key:" + base64.StdEncoding.EncodeToString(key)
	s.addr = "127.0.0.1:" + fmt.Sprint(s.freePort(t))
	s.Endpoint = "http://" + s.addr
	t.Cleanup(s.Stop)
	s.Restart(t)
	return s
}

// freePort picks a port nothing listens on in the server's namespace.
func (s *Server) freePort(t testing.TB) int {
	if s.NS == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	// A namespace made for the test: its ports are free, but pick at
	// random so that two servers in one namespace do not collide.
	b := make([]byte, 2)
	rand.Read(b)
	return 20000 + (int(b[0])<<8|int(b[1]))%20000
}

// Restart starts the server again (after Stop) on the same port and data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		t.Fatal("miniotest: server already running")
	}
	args := []string{"server", "--quiet", "--address", s.addr, s.Dir}
	var cmd *exec.Cmd
	if s.NS != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", s.NS, s.bin}, args...)...)
	} else {
		cmd = exec.Command(s.bin, args...)
	}
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+AccessKey, "MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_KMS_SECRET_KEY="+s.kms,
		"MINIO_CI_CD=1")
	s.log = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = lockedBuffer{&s.mu, s.log}, lockedBuffer{&s.mu, s.log}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start minio: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	done := s.done
	go func() { cmd.Wait(); close(done) }()
	s.mu.Unlock()
	err := s.waitReady(30 * time.Second)
	s.mu.Lock()
	if err != nil {
		t.Fatalf("minio on %s: %v\n%s", s.addr, err, s.log.String())
	}
}

func (s *Server) waitReady(timeout time.Duration) error {
	url := s.Endpoint + "/minio/health/cluster"
	return netnstest.Poll(timeout, func() error {
		select {
		case <-s.done:
			return netnstest.Abort(fmt.Errorf("exited"))
		default:
		}
		code, _, err := netnstest.HTTPGet(s.NS, url)
		if err != nil {
			return fmt.Errorf("not ready within %v: %v", timeout, err)
		}
		if code != http.StatusOK {
			return fmt.Errorf("not ready within %v: %s answered %d", timeout, url, code)
		}
		return nil
	})
}

// Stop kills the server and waits for it; the data directory stays.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// Log is what the server printed.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Client is an S3 client for the server (from the caller's namespace: use
// it only for servers started without InNetns).
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// MakeBucket creates a bucket (servers without InNetns).
func (s *Server) MakeBucket(t testing.TB, name string) {
	t.Helper()
	if _, err := s.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// AWS runs the AWS CLI against the server (inside its namespace, if any)
// and returns its stdout; it fails the test when the CLI fails.
func (s *Server) AWS(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, err := s.AWSResult(args...)
	if err != nil {
		t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// AWSResult runs the AWS CLI and returns stdout, stderr and the error.
func (s *Server) AWSResult(args ...string) (string, string, error) {
	full := append([]string{AWSCLI(), "--endpoint-url", s.Endpoint, "--region", Region}, args...)
	if s.NS != "" {
		full = append([]string{"ip", "netns", "exec", s.NS}, full...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+AccessKey, "AWS_SECRET_ACCESS_KEY="+SecretKey,
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// AWSCLI is the AWS CLI to run: Debian's (/usr/bin/aws, from apt's
// awscli) when installed, else the first aws on PATH.
func AWSCLI() string {
	if _, err := os.Stat("/usr/bin/aws"); err == nil {
		return "/usr/bin/aws"
	}
	return "aws"
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
