package agent

import (
	"github.com/kflcap/kflcap/internal/config"
	"github.com/kflcap/kflcap/upload"
)

// uploadOptions are the upload package's options from the agent's
// configuration: kflPcapS3's S3 and Slack keys, local.dir, and node's
// cluster and IP (the S3 key prefix). The names of the configuration stop
// here; upload does not import config.
func uploadOptions(cfg *config.Config) upload.Options {
	k := cfg.KflPcapS3
	return upload.Options{
		Cluster:  cfg.Node.Cluster,
		NodeIP:   cfg.Node.IP,
		LocalDir: cfg.Local.Dir,
		S3: upload.S3Options{
			Bucket:          k.S3Bucket,
			Region:          k.AwsRegion,
			Endpoint:        k.S3Endpoint,
			AccessKeyID:     string(k.AwsAccessKeyID),
			SecretAccessKey: string(k.AwsSecretAccessKey),
			SSE:             k.SSE,
			KMSKeyID:        k.KMSKeyID,
			StorageClass:    k.StorageClass,
			CreateBucket:    k.CreateBucket,
		},
		KeepLocal: k.KeepLocal,
		Slack: upload.SlackOptions{
			Webhook:        string(k.SlackWebhook),
			Token:          string(k.SlackAuthToken),
			Channel:        k.SlackChannelID,
			AttachMaxBytes: int64(k.SlackAttachMaxBytes),
		},
	}
}
