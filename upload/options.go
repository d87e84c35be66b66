package upload

import (
	"context"
	"log/slog"
)

// Options configure one node's uploads: the sinks that archives go to and
// the Slack announcements of what arrived. The agent builds them from its
// configuration (kflPcapS3, local, node); upload knows no configuration file.
type Options struct {
	// Cluster and NodeIP name the node: S3 keys start with
	// <Cluster>_<NodeIP>/ (KeyPrefix).
	Cluster string
	NodeIP  string
	// LocalDir is the local sink's directory.
	LocalDir string
	// S3 configures the S3 sink; without S3.Bucket the local sink is the
	// only sink. NewSinks sets S3.Prefix and S3.Log.
	S3 S3Options
	// KeepLocal adds the local sink when there is a bucket: a copy of
	// every archive stays on the node.
	KeepLocal bool
	// Slack configures the announcements; with neither a webhook nor a
	// token and channel there are none. NewSlackNotifier sets Slack.Sink
	// and Slack.Log.
	Slack SlackOptions
}

// KeyPrefix is the S3 key prefix of the node, <cluster>_<nodeIP>.
func (o Options) KeyPrefix() string { return o.Cluster + "_" + o.NodeIP }

// NewSinks builds the sinks o names: the local sink without a bucket; with
// one, the S3 sink, plus the local sink when KeepLocal is set. It checks
// settings only; it does not contact the store: a missing bucket or bad
// credentials show as delivery errors, and the archives wait.
func NewSinks(ctx context.Context, o Options, log *slog.Logger) ([]Sink, error) {
	local := &LocalSink{Dir: o.LocalDir}
	if o.S3.Bucket == "" {
		return []Sink{local}, nil
	}
	so := o.S3
	so.Prefix, so.Log = o.KeyPrefix(), log
	s3, err := NewS3Sink(ctx, so)
	if err != nil {
		return nil, err
	}
	sinks := []Sink{s3}
	if o.KeepLocal {
		sinks = append(sinks, local)
	}
	return sinks, nil
}

// NewSlackNotifier builds the Slack notifier from o.Slack; it is nil (and
// sends nothing) when o names no Slack destination. It announces the S3
// sink's deliveries, or the local sink's when there is no bucket. Run it,
// and pass its OnDelivery to the outbox.
func NewSlackNotifier(o Options, log *slog.Logger) *Notifier {
	so := o.Slack
	so.Sink, so.Log = "local", log
	if o.S3.Bucket != "" {
		so.Sink = "s3"
	}
	return NewNotifier(so)
}
