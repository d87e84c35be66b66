package upload

import (
	"context"
	"log/slog"

	"github.com/kflcap/kflcap/internal/config"
)

// Sinks builds the sinks the configuration names. Without kflPcapS3.s3Bucket
// that is the local sink (local.dir). With a bucket it is the S3 sink, plus
// the local sink when kflPcapS3.keepLocal is true (a copy stays on the
// node). It checks settings only; it does not contact the store: a missing
// bucket or bad credentials show as delivery errors, and the archives wait.
func Sinks(ctx context.Context, cfg *config.Config, log *slog.Logger) ([]Sink, error) {
	k := cfg.KflPcapS3
	local := &LocalSink{Dir: cfg.Local.Dir}
	if k.S3Bucket == "" {
		return []Sink{local}, nil
	}
	s3, err := NewS3Sink(ctx, S3Options{
		Bucket:          k.S3Bucket,
		Region:          k.AwsRegion,
		Endpoint:        k.S3Endpoint,
		AccessKeyID:     string(k.AwsAccessKeyID),
		SecretAccessKey: string(k.AwsSecretAccessKey),
		Prefix:          KeyPrefix(cfg.Node),
		SSE:             k.SSE,
		KMSKeyID:        k.KMSKeyID,
		StorageClass:    k.StorageClass,
		CreateBucket:    k.CreateBucket,
		Log:             log,
	})
	if err != nil {
		return nil, err
	}
	sinks := []Sink{s3}
	if k.KeepLocal {
		sinks = append(sinks, local)
	}
	return sinks, nil
}

// KeyPrefix is the S3 key prefix of a node, <cluster>_<nodeIP>.
func KeyPrefix(n config.Node) string { return n.Cluster + "_" + n.IP }

// SlackNotifier builds the Slack notifier from kflPcapS3's Slack keys; it
// is nil (and sends nothing) when none is set. It announces the S3 sink's
// deliveries, or the local sink's when there is no bucket. Run it, and
// pass its OnDelivery to the outbox.
func SlackNotifier(cfg *config.Config, log *slog.Logger) *Notifier {
	k := cfg.KflPcapS3
	sink := "local"
	if k.S3Bucket != "" {
		sink = "s3"
	}
	return NewNotifier(SlackOptions{
		Webhook:        string(k.SlackWebhook),
		Token:          string(k.SlackAuthToken),
		Channel:        k.SlackChannelID,
		AttachMaxBytes: int64(k.SlackAttachMaxBytes),
		Sink:           sink,
		Log:            log,
	})
}
