package upload

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/kflcap/kflcap/internal/miniotest"
	"github.com/kflcap/kflcap/repo"
)

// makeArchive writes a sealed-looking archive: content.json first, then
// payload bytes of random data (incompressible, so the size is known).
func makeArchive(t testing.TB, dir, name string, index int, query string, payload int) Archive {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	gz, _ := gzip.NewWriterLevel(f, gzip.NoCompression)
	tw := tar.NewWriter(gz)
	content, _ := json.Marshal(map[string]any{
		"kfl_index": index, "kfl_query": query, "l4_streams": []string{"000000000001_tcp.pcap"},
		"pcap_file_name": "1.pcap", "time": "Tue, 14 Mar 2023 15:38:26 GMT", "opened": "2023-03-14T15:38:20Z",
		"node": map[string]string{"name": "n1", "ip": "10.0.0.1", "cluster": "c1"},
	})
	tw.WriteHeader(&tar.Header{Name: "content.json", Mode: 0o644, Size: int64(len(content))})
	tw.Write(content)
	data := make([]byte, payload)
	rand.Read(data)
	tw.WriteHeader(&tar.Header{Name: "1.pcap", Mode: 0o644, Size: int64(len(data))})
	tw.Write(data)
	if err := errors.Join(tw.Close(), gz.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
	a, err := ReadArchive(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func newTestSink(t testing.TB, srv *miniotest.Server, bucket string, mod func(*S3Options)) *S3Sink {
	t.Helper()
	o := S3Options{
		Bucket: bucket, Endpoint: srv.Endpoint, AccessKeyID: miniotest.AccessKey, SecretAccessKey: miniotest.SecretKey,
		Prefix: "c1_10.0.0.1",
	}
	if mod != nil {
		mod(&o)
	}
	s, err := NewS3Sink(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func getObject(t testing.TB, c *s3.Client, bucket, key string) ([]byte, *s3.GetObjectOutput) {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b, out
}

func progressLog(t testing.TB, c *s3.Client, bucket, key string) []ProgressEntry {
	t.Helper()
	b, _ := getObject(t, c, bucket, key)
	var entries []ProgressEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		t.Fatalf("progress log: %v\n%s", err, b)
	}
	return entries
}

func TestS3Deliver(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "pcaps")
	s := newTestSink(t, srv, "pcaps", nil)
	c := srv.Client()
	dir := t.TempDir()
	queries := []string{"http and response.status == 500", "dns", `http and request.path == "/ünïcode"`}
	var archives []Archive
	for i, q := range queries {
		archives = append(archives, makeArchive(t, dir, fmt.Sprintf("kfl_%d_kflcap_%d.tar.gz", i, 1678808288+i), i, q, 50_000))
	}
	for _, a := range archives {
		u, err := s.Deliver(context.Background(), a)
		if err != nil {
			t.Fatalf("deliver %s: %v", a.Name, err)
		}
		if want := srv.Endpoint + "/pcaps/c1_10.0.0.1/" + a.Name; u != want {
			t.Errorf("url %s, want %s", u, want)
		}
		got, out := getObject(t, c, "pcaps", "c1_10.0.0.1/"+a.Name)
		want, _ := os.ReadFile(a.Path)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: object differs from the archive (%d vs %d bytes)", a.Name, len(got), len(want))
		}
		if out.Metadata["kfl-index"] != fmt.Sprint(a.Content.KFLIndex) || out.Metadata["kfl-query"] != headerSafe(a.Content.KFLQuery) {
			t.Errorf("%s: metadata %v", a.Name, out.Metadata)
		}
		if aws.ToString(out.ContentType) != "application/gzip" {
			t.Errorf("%s: content type %v", a.Name, aws.ToString(out.ContentType))
		}
	}
	entries := progressLog(t, c, "pcaps", "c1_10.0.0.1/progress_log.json")
	if len(entries) != len(archives) {
		t.Fatalf("progress log has %d entries, want %d: %+v", len(entries), len(archives), entries)
	}
	for i, e := range entries {
		a := archives[i]
		if e.File != a.Name || e.KFLIndex != a.Content.KFLIndex || e.KFLQuery != a.Content.KFLQuery || e.S3URL != s.URL(s.Key(a.Name)) {
			t.Errorf("entry %d: %+v", i, e)
		}
		if _, err := time.Parse(repo.TimeFormat, e.Time); err != nil || !strings.HasSuffix(e.Time, " GMT") {
			t.Errorf("entry %d: time %q", i, e.Time)
		}
	}
	// The raw log has the wrapper's field names.
	raw, _ := getObject(t, c, "pcaps", "c1_10.0.0.1/progress_log.json")
	var generic []map[string]any
	json.Unmarshal(raw, &generic)
	for _, k := range []string{"file", "kfl_index", "kfl_query", "s3_url", "time"} {
		if _, ok := generic[0][k]; !ok {
			t.Errorf("progress entry lacks %q: %s", k, raw)
		}
	}

	// Delivering again (a crash after upload, before the outbox's marker)
	// neither uploads again nor logs again. A same-size stand-in at the key
	// proves the upload is skipped.
	a := archives[1]
	standIn := bytes.Repeat([]byte{'x'}, int(a.Size))
	key := s.Key(a.Name)
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("pcaps"), Key: &key, Body: bytes.NewReader(standIn)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if got, _ := getObject(t, c, "pcaps", key); !bytes.Equal(got, standIn) {
		t.Errorf("an object already present was uploaded again")
	}
	if n := len(progressLog(t, c, "pcaps", "c1_10.0.0.1/progress_log.json")); n != len(archives) {
		t.Errorf("after a repeated delivery the log has %d entries, want %d", n, len(archives))
	}
	// An object of another size (not ours) is replaced.
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("pcaps"), Key: &key, Body: strings.NewReader("short")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(a.Path)
	if got, _ := getObject(t, c, "pcaps", key); !bytes.Equal(got, want) {
		t.Errorf("a different object at the key was not replaced")
	}
}

// Archives above the part size go up in parts, with checksums, and arrive whole.
func TestS3Multipart(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "pcaps")
	s := newTestSink(t, srv, "pcaps", func(o *S3Options) { o.PartSize = 5 << 20; o.Concurrency = 3 })
	a := makeArchive(t, t.TempDir(), "kfl_0_kflcap_1.tar.gz", 0, "dns", 23<<20)
	if _, err := s.Deliver(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	head, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("pcaps"), Key: aws.String(s.Key(a.Name)), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if etag := aws.ToString(head.ETag); !strings.HasSuffix(strings.Trim(etag, `"`), "-5") {
		t.Errorf("ETag %s: want a 5-part multipart upload", etag)
	}
	if head.ChecksumCRC32C == nil {
		t.Errorf("no CRC32C checksum stored with the object")
	}
	got, _ := getObject(t, c, "pcaps", s.Key(a.Name))
	want, _ := os.ReadFile(a.Path)
	if !bytes.Equal(got, want) {
		t.Errorf("multipart object differs from the archive")
	}
}

// Several agents (sinks with their own clients) on one node, each
// delivering from two goroutines at once: every entry survives.
func TestS3ProgressLogRace(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "pcaps")
	dir := t.TempDir()
	const perWriter, writers = 8, 6
	var wg sync.WaitGroup
	errs := make(chan error, perWriter*writers)
	// Three sinks (separate clients: separate agents), each delivering from
	// two goroutines (their log appends share writes).
	var sinks []*S3Sink
	for range writers / 2 {
		sinks = append(sinks, newTestSink(t, srv, "pcaps", nil))
	}
	for w := range writers {
		s := sinks[w/2]
		var archives []Archive
		for i := range perWriter {
			archives = append(archives, makeArchive(t, dir, fmt.Sprintf("kfl_%d_kflcap_%d.tar.gz", w, 1000+i), w, "dns", 100))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, a := range archives {
				if _, err := s.Deliver(context.Background(), a); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	entries := progressLog(t, srv.Client(), "pcaps", "c1_10.0.0.1/progress_log.json")
	count := map[string]int{}
	for _, e := range entries {
		count[e.File]++
	}
	if len(entries) != perWriter*writers || len(count) != perWriter*writers {
		t.Errorf("progress log has %d entries (%d distinct), want %d", len(entries), len(count), perWriter*writers)
	}
}

// The store's answer to a stale conditional write is what isConflict
// recognises (MinIO answers 412, as S3 does).
func TestS3ConditionalWriteConflict(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "pcaps")
	c := srv.Client()
	ctx := context.Background()
	put := func(body string, mod func(*s3.PutObjectInput)) error {
		in := &s3.PutObjectInput{Bucket: aws.String("pcaps"), Key: aws.String("k"), Body: strings.NewReader(body)}
		mod(in)
		_, err := c.PutObject(ctx, in)
		return err
	}
	if err := put("1", func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }); err != nil {
		t.Fatal(err)
	}
	if err := put("2", func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }); !isConflict(err) {
		t.Errorf("If-None-Match: * on an existing key: %v, want a conflict", err)
	}
	if err := put("3", func(in *s3.PutObjectInput) { in.IfMatch = aws.String(`"0123456789abcdef0123456789abcdef"`) }); !isConflict(err) {
		t.Errorf("If-Match on a stale ETag: %v, want a conflict", err)
	}
}

func TestConditionalUnsupported(t *testing.T) {
	notImpl := &smithy.GenericAPIError{Code: "NotImplemented", Message: "A header you provided implies functionality that is not implemented"}
	if !conditionalUnsupported(notImpl) {
		t.Error("NotImplemented not recognised")
	}
	if conditionalUnsupported(&smithy.GenericAPIError{Code: "PreconditionFailed"}) {
		t.Error("PreconditionFailed taken for unsupported")
	}
	var re *smithyhttp.ResponseError
	if errors.As(notImpl, &re) {
		t.Fatal("unexpected")
	}
}

func TestS3Errors(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "pcaps")
	a := makeArchive(t, t.TempDir(), "kfl_0_kflcap_1.tar.gz", 0, "dns", 1000)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("bad credentials", func(t *testing.T) {
		const wrong = "wrong-secret-do-not-print"
		s := newTestSink(t, srv, "pcaps", func(o *S3Options) { o.SecretAccessKey = wrong })
		_, err := s.Deliver(ctx, a)
		if err == nil {
			t.Fatal("delivery with a wrong secret succeeded")
		}
		t.Log(err)
		if Reason(err) != "bad credentials" || !strings.Contains(err.Error(), "bad credentials") {
			t.Errorf("reason %q: %v", Reason(err), err)
		}
		if strings.Contains(err.Error(), wrong) {
			t.Errorf("the error shows the secret: %v", err)
		}
	})
	t.Run("missing bucket", func(t *testing.T) {
		s := newTestSink(t, srv, "nosuch", nil)
		_, err := s.Deliver(ctx, a)
		t.Log(err)
		if Reason(err) != "missing bucket" || !strings.Contains(err.Error(), "createBucket") {
			t.Errorf("reason %q: %v", Reason(err), err)
		}
		if _, err := srv.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("nosuch")}); err == nil {
			t.Error("the bucket was created without createBucket")
		}
	})
	t.Run("createBucket", func(t *testing.T) {
		s := newTestSink(t, srv, "created", func(o *S3Options) { o.CreateBucket = true })
		if _, err := s.Deliver(ctx, a); err != nil {
			t.Fatal(err)
		}
		got, _ := getObject(t, srv.Client(), "created", s.Key(a.Name))
		if int64(len(got)) != a.Size {
			t.Errorf("object of %d bytes, want %d", len(got), a.Size)
		}
	})
	t.Run("check at start", func(t *testing.T) {
		if err := Check(ctx, []Sink{newTestSink(t, srv, "pcaps", nil), &LocalSink{Dir: t.TempDir()}}); err != nil {
			t.Errorf("good settings: %v", err)
		}
		err := newTestSink(t, srv, "absent", nil).Check(ctx)
		if Reason(err) != "missing bucket" || !strings.Contains(err.Error(), "createBucket") {
			t.Errorf("missing bucket: reason %q: %v", Reason(err), err)
		}
		err = newTestSink(t, srv, "pcaps", func(o *S3Options) { o.SecretAccessKey = "wrong-secret" }).Check(ctx)
		if err == nil || !strings.Contains(err.Error(), "bad credentials") || strings.Contains(err.Error(), "wrong-secret") {
			t.Errorf("wrong secret: %v", err)
		}
		if err := newTestSink(t, srv, "made-at-start", func(o *S3Options) { o.CreateBucket = true }).Check(ctx); err != nil {
			t.Errorf("createBucket: %v", err)
		}
		if _, err := srv.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("made-at-start")}); err != nil {
			t.Errorf("createBucket: no bucket after Check: %v", err)
		}
	})
	t.Run("network", func(t *testing.T) {
		s, err := NewS3Sink(ctx, S3Options{Bucket: "pcaps", Endpoint: "http://127.0.0.1:1", AccessKeyID: "a", SecretAccessKey: "b", Prefix: "p"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Deliver(ctx, a)
		t.Log(err)
		if Reason(err) != "network" {
			t.Errorf("reason %q: %v", Reason(err), err)
		}
	})
}

func TestS3EncryptionAndStorageClass(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "pcaps")
	s := newTestSink(t, srv, "pcaps", func(o *S3Options) { o.SSE = "AES256"; o.StorageClass = "REDUCED_REDUNDANCY" })
	a := makeArchive(t, t.TempDir(), "kfl_0_kflcap_1.tar.gz", 0, "dns", 1000)
	if _, err := s.Deliver(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{s.Key(a.Name), s.ProgressKey()} {
		head, err := srv.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("pcaps"), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		if head.ServerSideEncryption != types.ServerSideEncryptionAes256 {
			t.Errorf("%s: server-side encryption %q, want AES256", key, head.ServerSideEncryption)
		}
		if key == s.Key(a.Name) && head.StorageClass != types.StorageClassReducedRedundancy {
			t.Errorf("%s: storage class %q", key, head.StorageClass)
		}
	}
}

func TestS3URLAndOptions(t *testing.T) {
	ctx := context.Background()
	s, err := NewS3Sink(ctx, S3Options{Bucket: "kubeshark-helper-test", Region: "us-east-2", AccessKeyID: "a", SecretAccessKey: "b", Prefix: "my-cluster_192.168.49.2"})
	if err != nil {
		t.Fatal(err)
	}
	want := "https://kubeshark-helper-test.s3.us-east-2.amazonaws.com/my-cluster_192.168.49.2/kfl_0_kubeshark_1678808288.tar.gz"
	if got := s.URL(s.Key("kfl_0_kubeshark_1678808288.tar.gz")); got != want {
		t.Errorf("url %s, want %s", got, want)
	}
	s, _ = NewS3Sink(ctx, S3Options{Bucket: "b", Endpoint: "http://minio:9000/", Prefix: "c_1.2.3.4", AccessKeyID: "a", SecretAccessKey: "b"})
	if got := s.URL(s.Key("x.tar.gz")); got != "http://minio:9000/b/c_1.2.3.4/x.tar.gz" {
		t.Errorf("custom endpoint url %s", got)
	}
	if s.ProgressKey() != "c_1.2.3.4/progress_log.json" {
		t.Errorf("progress key %s", s.ProgressKey())
	}
	for _, o := range []S3Options{
		{Bucket: "b", Region: "r", SSE: "aes"},
		{Bucket: "b", Region: "r", KMSKeyID: "k"},
		{Bucket: "b", Endpoint: "minio:9000"},
		{},
	} {
		if _, err := NewS3Sink(ctx, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	if _, err := NewS3Sink(ctx, S3Options{Bucket: "b"}); err == nil || !strings.Contains(err.Error(), "awsRegion") {
		t.Errorf("no region: %v", err)
	}
}
