package agent

import (
	"strings"
	"testing"

	"github.com/kflcap/kflcap/internal/config"
	"github.com/kflcap/kflcap/upload"
)

// Every kflPcapS3 key that concerns uploads reaches upload.Options.
func TestUploadOptions(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("S3_BUCKET", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	cfg, err := config.Parse([]byte(`node: {cluster: c1, ip: 10.0.0.1}
local: {dir: /tmp/repos}
kflPcapS3:
  kflArr: [dns]
  s3Bucket: b
  awsRegion: eu-west-1
  s3Endpoint: http://127.0.0.1:9000
  awsAccessKeyId: AKID
  awsSecretAccessKey: very-secret
  sse: aws:kms
  kmsKeyId: k1
  storageClass: STANDARD_IA
  createBucket: true
  keepLocal: true
  slackWebhook: http://127.0.0.1:1/hook
  slackAuthToken: xoxb-1
  slackChannelId: C1
  slackAttachMaxBytes: 8Mi
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	got := uploadOptions(cfg)
	want := upload.Options{
		Cluster: "c1", NodeIP: "10.0.0.1", LocalDir: "/tmp/repos",
		S3: upload.S3Options{Bucket: "b", Region: "eu-west-1", Endpoint: "http://127.0.0.1:9000", AccessKeyID: "AKID",
			SecretAccessKey: "very-secret", SSE: "aws:kms", KMSKeyID: "k1", StorageClass: "STANDARD_IA", CreateBucket: true},
		KeepLocal: true,
		Slack:     upload.SlackOptions{Webhook: "http://127.0.0.1:1/hook", Token: "xoxb-1", Channel: "C1", AttachMaxBytes: 8 << 20},
	}
	if got != want {
		t.Errorf("uploadOptions =\n%+v\nwant\n%+v", got, want)
	}
	if got.KeyPrefix() != "c1_10.0.0.1" {
		t.Errorf("key prefix %s", got.KeyPrefix())
	}

	// The embedded default: local sink only, no Slack.
	def, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	o := uploadOptions(def)
	sinks, err := upload.NewSinks(t.Context(), o, nil)
	if err != nil || len(sinks) != 1 || sinks[0].Name() != "local" || !strings.HasSuffix(o.LocalDir, "kflcap-data/repos") {
		t.Errorf("default sinks %v, %v (local dir %s)", sinks, err, o.LocalDir)
	}
	if upload.NewSlackNotifier(o, nil) != nil {
		t.Error("the default configuration announces on Slack")
	}
}
