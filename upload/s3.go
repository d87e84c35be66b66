package upload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3Options configure an S3Sink.
type S3Options struct {
	Bucket string
	// Region is required on AWS; with an Endpoint it defaults to us-east-1.
	Region string
	// Endpoint is an S3-compatible store's URL (MinIO): path-style
	// addressing, and s3_url is <Endpoint>/<bucket>/<key>.
	Endpoint string
	// AccessKeyID and SecretAccessKey, when set, are the credentials;
	// otherwise the SDK's default chain (environment, shared config, web
	// identity/IRSA, instance role) provides them.
	AccessKeyID     string
	SecretAccessKey string
	// Prefix is the key prefix, <cluster>_<nodeIP>.
	Prefix string
	// SSE is "", "AES256" or "aws:kms" (with KMSKeyID, or the bucket's
	// default key when empty).
	SSE          string
	KMSKeyID     string
	StorageClass string
	// CreateBucket creates a missing bucket instead of failing.
	CreateBucket bool
	// PartSize and Concurrency tune multipart uploads (archives larger than
	// PartSize). Defaults 16 MiB and 4.
	PartSize    int64
	Concurrency int
	Log         *slog.Logger
}

// S3Sink uploads archives to <bucket>/<prefix>/<name> and appends each to
// <prefix>/progress_log.json in the same bucket.
//
// Deliver is safe for concurrent use, also by several agents on one
// progress log: the log is rewritten with conditional writes (If-Match on
// the ETag read, If-None-Match: * when creating it) and re-read on a
// conflict, so no writer loses another's entry. A store that rejects
// conditional writes gets plain ones, with one warning.
type S3Sink struct {
	opts     S3Options
	client   *s3.Client
	uploader *manager.Uploader
	log      *slog.Logger

	plainWrites atomic.Bool // the store rejected a conditional write
	warnOnce    sync.Once

	mu         sync.Mutex
	logEntries []ProgressEntry // the progress log as this sink last wrote it
	logETag    string
	logCached  bool

	gmu     sync.Mutex // group commit of progress entries
	pending []logRequest
	writing bool
}

// NewS3Sink makes the client; it does not contact the store.
func NewS3Sink(ctx context.Context, o S3Options) (*S3Sink, error) {
	if o.Bucket == "" {
		return nil, errors.New("s3 sink: no bucket")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("s3 sink: endpoint %q is not an http(s) URL", o.Endpoint)
		}
		o.Endpoint = strings.TrimRight(o.Endpoint, "/")
		if o.Region == "" {
			o.Region = "us-east-1"
		}
	}
	switch o.SSE {
	case "", string(types.ServerSideEncryptionAes256), string(types.ServerSideEncryptionAwsKms):
	default:
		return nil, fmt.Errorf("s3 sink: sse %q: want AES256 or aws:kms", o.SSE)
	}
	if o.KMSKeyID != "" && o.SSE != string(types.ServerSideEncryptionAwsKms) {
		return nil, errors.New("s3 sink: kmsKeyId needs sse: aws:kms")
	}
	if o.PartSize <= 0 {
		o.PartSize = 16 << 20
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	loadOpts := []func(*awsconfig.LoadOptions) error{}
	if o.Region != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(o.Region))
	}
	if o.AccessKeyID != "" || o.SecretAccessKey != "" {
		loadOpts = append(loadOpts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, "")))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3 sink: load aws config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("s3 sink: no region: set kflPcapS3.awsRegion or AWS_REGION")
	}
	o.Region = cfg.Region
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
			so.UsePathStyle = true
		}
	})
	s := &S3Sink{opts: o, client: client, log: o.Log}
	s.uploader = manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = o.PartSize
		u.Concurrency = o.Concurrency
	})
	return s, nil
}

// Name implements Sink.
func (s *S3Sink) Name() string { return "s3" }

// Key is the object key of an archive.
func (s *S3Sink) Key(name string) string { return s.opts.Prefix + "/" + name }

// ProgressKey is the progress log's object key.
func (s *S3Sink) ProgressKey() string { return s.opts.Prefix + "/progress_log.json" }

// URL is an object's s3_url: virtual-hosted on AWS, <endpoint>/<bucket>/<key>
// on a custom endpoint.
func (s *S3Sink) URL(key string) string {
	if s.opts.Endpoint != "" {
		return s.opts.Endpoint + "/" + s.opts.Bucket + "/" + key
	}
	return "https://" + s.opts.Bucket + ".s3." + s.opts.Region + ".amazonaws.com/" + key
}

// Deliver implements Sink: it uploads the archive unless the bucket holds
// it already (same key and size: objects appear whole or not at all), then
// makes sure the progress log lists it once.
func (s *S3Sink) Deliver(ctx context.Context, a Archive) (string, error) {
	key := s.Key(a.Name)
	u := s.URL(key)
	err := s.upload(ctx, a, key)
	var ae smithy.APIError
	if err != nil && s.opts.CreateBucket && errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
		if err := s.createBucket(ctx); err != nil {
			return "", err
		}
		err = s.upload(ctx, a, key)
	}
	if err != nil {
		return "", err
	}
	if err := s.logDelivery(ctx, NewProgressEntry(a, u, time.Now())); err != nil {
		return "", err
	}
	return u, nil
}

// logDelivery appends e to the progress log. Concurrent deliveries share
// log writes (group commit): the first caller writes, for itself and for
// everyone who arrives meanwhile, so a log write per archive does not
// serialise them.
func (s *S3Sink) logDelivery(ctx context.Context, e ProgressEntry) error {
	req := logRequest{e: e, done: make(chan error, 1)}
	s.gmu.Lock()
	s.pending = append(s.pending, req)
	if s.writing {
		s.gmu.Unlock()
		select {
		case err := <-req.done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.writing = true
	for len(s.pending) > 0 {
		batch := s.pending
		s.pending = nil
		s.gmu.Unlock()
		entries := make([]ProgressEntry, len(batch))
		for i, r := range batch {
			entries[i] = r.e
		}
		err := s.appendProgress(ctx, entries...)
		for _, r := range batch {
			r.done <- err
		}
		s.gmu.Lock()
	}
	s.writing = false
	s.gmu.Unlock()
	return <-req.done
}

type logRequest struct {
	e    ProgressEntry
	done chan error
}

// upload puts the archive at key unless an object of its size is there.
// An archive smaller than a part goes in one conditional request
// (If-None-Match: *), so the usual case costs no HEAD; a larger one is
// checked with HEAD first, then sent in parts.
func (s *S3Sink) upload(ctx context.Context, a Archive, key string) error {
	if a.Size < s.opts.PartSize && !s.plainWrites.Load() {
		err := s.put(ctx, a, key, true)
		switch {
		case err == nil:
			return nil
		case isConflict(err):
			// Something is at the key: ours from an earlier attempt, or not.
		case conditionalUnsupported(err):
			s.noConditionals(err)
		default:
			return err
		}
	}
	have, err := s.has(ctx, key, a.Size)
	if err != nil || have {
		return err
	}
	return s.put(ctx, a, key, false)
}

// Check asks the store whether the bucket exists and the credentials are
// good (HeadBucket), creating a missing bucket when CreateBucket is set.
// The agent calls it at start so that a misconfiguration shows at once,
// not at the first seal; it is advice only, archives wait either way.
func (s *S3Sink) Check(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.opts.Bucket})
	if err == nil {
		return nil
	}
	// HEAD answers have no body, hence no error code: name the status.
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusNotFound:
			if s.opts.CreateBucket {
				return s.createBucket(ctx)
			}
			return &S3Error{Op: "head bucket", Bucket: s.opts.Bucket, Reason: "missing bucket", Err: err}
		case http.StatusForbidden:
			return &S3Error{Op: "head bucket", Bucket: s.opts.Bucket, Reason: "access denied or bad credentials", Err: err}
		}
	}
	return s.wrap("head bucket", "", err)
}

// Check runs the Check of every sink that has one.
func Check(ctx context.Context, sinks []Sink) error {
	var errs []error
	for _, s := range sinks {
		if c, ok := s.(interface{ Check(context.Context) error }); ok {
			if err := c.Check(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// has reports whether key exists with the given size. A 403 on HEAD is
// not an answer (a policy may allow PutObject without GetObject): the
// upload that follows reports the real reason.
func (s *S3Sink) has(ctx context.Context, key string, size int64) (bool, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.opts.Bucket, Key: &key})
	if err != nil {
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusNotFound || re.HTTPStatusCode() == http.StatusForbidden) {
			return false, nil
		}
		return false, s.wrap("head", key, err)
	}
	return aws.ToInt64(out.ContentLength) == size, nil
}

func (s *S3Sink) put(ctx context.Context, a Archive, key string, ifAbsent bool) error {
	f, err := os.Open(a.Path)
	if err != nil {
		return fmt.Errorf("s3 sink: %w", err)
	}
	defer f.Close()
	in := &s3.PutObjectInput{
		Bucket:            &s.opts.Bucket,
		Key:               &key,
		Body:              f,
		ContentType:       aws.String("application/gzip"),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		Metadata: map[string]string{
			"kfl-index": strconv.Itoa(a.Content.KFLIndex),
			"kfl-query": headerSafe(a.Content.KFLQuery),
		},
	}
	s.encryption(in)
	if s.opts.StorageClass != "" {
		in.StorageClass = types.StorageClass(s.opts.StorageClass)
	}
	if ifAbsent {
		in.IfNoneMatch = aws.String("*")
		if _, err := s.client.PutObject(ctx, in); err != nil {
			return s.wrap("put", key, err)
		}
		return nil
	}
	if _, err := s.uploader.Upload(ctx, in); err != nil {
		return s.wrap("put", key, err)
	}
	return nil
}

func (s *S3Sink) encryption(in *s3.PutObjectInput) {
	if s.opts.SSE != "" {
		in.ServerSideEncryption = types.ServerSideEncryption(s.opts.SSE)
		if s.opts.KMSKeyID != "" {
			in.SSEKMSKeyId = &s.opts.KMSKeyID
		}
	}
}

// noConditionals switches to plain writes, saying so once.
func (s *S3Sink) noConditionals(err error) {
	s.plainWrites.Store(true)
	s.warnOnce.Do(func() {
		s.log.Warn("the store rejects conditional writes: falling back to plain writes; two agents writing one progress log at once may lose an entry",
			"bucket", s.opts.Bucket, "err", err)
	})
}

func (s *S3Sink) createBucket(ctx context.Context) error {
	in := &s3.CreateBucketInput{Bucket: &s.opts.Bucket}
	if s.opts.Region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(s.opts.Region)}
	}
	_, err := s.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return s.wrap("create bucket", "", err)
	}
	s.log.Info("created bucket (createBucket: true)", "bucket", s.opts.Bucket)
	return nil
}

// headerSafe keeps printable ASCII as is and encodes anything else as an
// RFC 2047 word, since metadata travels in HTTP headers.
func headerSafe(v string) string {
	for _, r := range v {
		if r < 0x20 || r > 0x7e {
			return mime.QEncoding.Encode("utf-8", v)
		}
	}
	return v
}

// appendProgress adds entries to the progress log, except those whose
// file it lists already.
// The log and ETag this sink last wrote are remembered, so that a lone
// writer needs no GET per archive: a stale copy costs one 412 and a re-read.
func (s *S3Sink) appendProgress(ctx context.Context, add ...ProgressEntry) error {
	key := s.ProgressKey()
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		conditional := !s.plainWrites.Load()
		s.mu.Lock()
		entries, etag, cached := s.logEntries, s.logETag, s.logCached && conditional
		s.mu.Unlock()
		if !cached {
			var err error
			if entries, etag, err = s.readProgress(ctx, key); err != nil {
				return err
			}
		}
		listed := make(map[string]bool, len(entries))
		for _, x := range entries {
			listed[x.File] = true
		}
		next := entries[:len(entries):len(entries)]
		for _, e := range add {
			if !listed[e.File] {
				next = append(next, e)
				listed[e.File] = true
			}
		}
		if len(next) == len(entries) {
			return nil
		}
		body, err := json.MarshalIndent(next, "", "  ")
		if err != nil {
			return err
		}
		body = append(body, '\n')
		in := &s3.PutObjectInput{
			Bucket: &s.opts.Bucket, Key: &key, Body: bytes.NewReader(body),
			ContentType: aws.String("application/json"),
		}
		s.encryption(in)
		if conditional {
			if etag == "" {
				in.IfNoneMatch = aws.String("*")
			} else {
				in.IfMatch = aws.String(etag)
			}
		}
		out, err := s.client.PutObject(ctx, in)
		switch {
		case err == nil:
			s.mu.Lock()
			s.logEntries, s.logETag, s.logCached = next, aws.ToString(out.ETag), out.ETag != nil
			s.mu.Unlock()
			return nil
		case conditional && isConflict(err):
			// Another writer got there first: read again.
			s.mu.Lock()
			s.logCached = false
			s.mu.Unlock()
			if cached {
				continue // our copy was stale: no need to wait
			}
			if attempt >= 50 {
				return fmt.Errorf("s3 sink: progress log %s: still conflicting after %d attempts: %w", key, attempt, err)
			}
			d := backoff/2 + rand.N(backoff)
			backoff = min(backoff*2, 2*time.Second)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		case conditional && conditionalUnsupported(err):
			s.noConditionals(err)
		default:
			s.mu.Lock()
			s.logCached = false
			s.mu.Unlock()
			return s.wrap("put", key, err)
		}
	}
}

// readProgress returns the log's entries and ETag ("" when it does not
// exist yet).
func (s *S3Sink) readProgress(ctx context.Context, key string) ([]ProgressEntry, string, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.opts.Bucket, Key: &key})
	if err != nil {
		var nk *types.NoSuchKey
		if errors.As(err, &nk) {
			return nil, "", nil
		}
		return nil, "", s.wrap("get", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, 256<<20))
	if err != nil {
		return nil, "", s.wrap("get", key, err)
	}
	var entries []ProgressEntry
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &entries); err != nil {
			return nil, "", fmt.Errorf("s3 sink: progress log s3://%s/%s is not a JSON array of entries: %w", s.opts.Bucket, key, err)
		}
	}
	return entries, aws.ToString(out.ETag), nil
}

// isConflict: a conditional write lost to another writer.
func isConflict(err error) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusPreconditionFailed, http.StatusConflict:
			return true
		}
	}
	return false
}

// conditionalUnsupported: the store refused the If-Match/If-None-Match
// header itself.
func conditionalUnsupported(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NotImplemented" {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotImplemented
}

// Reason says why an upload failed, in a word or two fit for a metric
// label: "bad credentials", "access denied", "missing bucket", "network",
// "canceled" or "other".
func Reason(err error) string {
	var se *S3Error
	if errors.As(err, &se) {
		return se.Reason
	}
	return reason(err)
}

func reason(err error) string {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "canceled"
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "InvalidClientTokenId":
			return "bad credentials"
		case "AccessDenied", "Forbidden", "AllAccessDisabled":
			return "access denied"
		case "NoSuchBucket":
			return "missing bucket"
		}
	}
	if strings.Contains(err.Error(), "failed to retrieve credentials") || strings.Contains(err.Error(), "no EC2 IMDS role found") {
		return "no credentials"
	}
	var ne net.Error
	var re *smithyhttp.RequestSendError
	if errors.As(err, &re) || errors.As(err, &ne) {
		return "network"
	}
	return "other"
}

// S3Error is a failed S3 operation with the reason in words.
type S3Error struct {
	Op, Bucket, Key string
	Reason          string
	Err             error
}

func (e *S3Error) Error() string {
	where := "s3://" + e.Bucket
	if e.Key != "" {
		where += "/" + e.Key
	}
	hint := ""
	switch e.Reason {
	case "missing bucket":
		hint = " (create it, or set kflPcapS3.createBucket: true)"
	case "bad credentials", "access denied or bad credentials":
		hint = " (check kflPcapS3.awsAccessKeyId/awsSecretAccessKey or the default credential chain)"
	}
	return fmt.Sprintf("s3 %s %s: %s%s: %v", e.Op, where, e.Reason, hint, e.Err)
}

func (e *S3Error) Unwrap() error { return e.Err }

func (s *S3Sink) wrap(op, key string, err error) error {
	return &S3Error{Op: op, Bucket: s.opts.Bucket, Key: key, Reason: reason(err), Err: err}
}
