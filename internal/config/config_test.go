package config

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDefault(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.KflPcapS3.KflArr; len(got) != 2 || got[0] != "http and response.status == 500" || got[1] != "dns" {
		t.Errorf("kflArr %q", got)
	}
	if c.Capture.Interfaces[0] != "any" || c.Local.Dir != "./kflcap-data/repos" || c.Metrics.Listen != "127.0.0.1:9750" || c.KflPcapS3.S3Bucket != "" && false {
		t.Errorf("default %+v", c)
	}
	if c.KflPcapS3.MaxMinutes != 60 || c.KflPcapS3.MaxL4Streams != 100000 || !c.KflPcapS3.Active || c.KflPcapS3.Verbose {
		t.Errorf("wrapper defaults: %+v", c.KflPcapS3)
	}
	if c.Capture.RingBufferBytes != 16<<20 || c.Capture.LookbackBytes != 256<<20 || c.Spool.MaxBytes != 10<<30 {
		t.Errorf("sizes: %+v %+v", c.Capture, c.Spool)
	}
}

func TestEnvExpansionAndFallbacks(t *testing.T) {
	t.Setenv("KT_NODE", "node-7")
	t.Setenv("S3_BUCKET", "from-env")
	t.Setenv("AWS_REGION", "eu-west-3")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
	c, err := Parse([]byte("node: {name: ${KT_NODE}, ip: 10.0.0.9, cluster: prod}\nkflPcapS3:\n  kflArr: [dns]\n  maxDuration: 6s\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Node.Name != "node-7" || c.Node.IP != "10.0.0.9" || c.Node.Cluster != "prod" {
		t.Errorf("node %+v", c.Node)
	}
	k := c.KflPcapS3
	if k.S3Bucket != "from-env" || k.AwsRegion != "eu-west-3" || string(k.AwsSecretAccessKey) != "s3cr3t" {
		t.Errorf("env fallbacks %+v", k)
	}
	if k.RepositoryLifetime() != 6*time.Second {
		t.Errorf("lifetime %v", k.RepositoryLifetime())
	}
	if s := k.AwsSecretAccessKey.String(); strings.Contains(s, "s3cr3t") {
		t.Errorf("secret printed: %s", s)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"kflPcapS3:\n  kflArr: [dns]\n  maxMinuts: 5\n", "kflPcapS3.maxMinuts (line 3): unknown key maxMinuts"},
		{"kflPcapS3:\n  kflArr: [dns]\n  maxMinutes: abc\n", "kflPcapS3.maxMinutes (line 3)"},
		{"kflPcapS3:\n  kflArr: [dns]\n  maxMinutes: -5\n", "kflPcapS3.maxMinutes: -5: must be at least 1"},
		{"kflPcapS3:\n  kflArr: [dns]\n  maxL4Streams: 0\n", "kflPcapS3.maxL4Streams: 0"},
		{"kflPcapS3:\n  kflArr: []\n", "kflPcapS3.kflArr: no queries"},
		{"kflPcapS3: {kflArr: [dns]}\ncapture:\n  backend: xdp\n", `capture.backend (line 3): unknown backend "xdp" (want auto, tcx, tc or socket)`},
		{"kflPcapS3: {kflArr: [dns]}\ncapture:\n  snaplen: 0\n", "capture.snaplen: 0 out of range"},
		{"kflPcapS3: {kflArr: [dns]}\ncapture:\n  ringBufferBytes: 3Mi\n", "capture.ringBufferBytes"},
		{"kflPcapS3: {kflArr: [dns]}\nspool:\n  maxBytes: lots\n", `spool.maxBytes (line 3): "lots" is not a size`},
		{"kflPcapS3: {kflArr: [dns], maxDuration: soon}\n", `"soon" is not a duration`},
		{"kflPcapS3: {kflArr: [dns]}\nmetrics: {listen: nowhere}\n", `metrics.listen: "nowhere" is not host:port`},
		{"kflPcapS3: {kflArr: [dns]}\nbogus: 1\n", "bogus (line 2): unknown key bogus"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.yaml), "t.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.yaml, err, tc.want)
		}
	}
}

func TestBackend(t *testing.T) {
	for _, b := range []Backend{BackendAuto, BackendTCX, BackendTC, BackendSocket} {
		c, err := Parse([]byte("kflPcapS3: {kflArr: [dns]}\ncapture: {backend: "+string(b)+"}\n"), "t.yaml")
		if err != nil || c.Capture.Backend != b {
			t.Errorf("backend %s: %v, %v", b, c, err)
		}
	}
	c, _ := Default()
	if c.Capture.Backend != BackendAuto {
		t.Errorf("default backend %q", c.Capture.Backend)
	}
	c.Capture.Backend = "xdp"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `capture.backend: unknown backend "xdp"`) {
		t.Errorf("Validate of a backend set in code: %v", err)
	}
}

func TestSize(t *testing.T) {
	for in, want := range map[string]Size{"16Mi": 16 << 20, "10Gi": 10 << 30, "512": 512, "4Ki": 4096} {
		var s Size
		if err := s.UnmarshalText([]byte(in)); err != nil || s != want {
			t.Errorf("%s: %d, %v", in, s, err)
		}
		if b, _ := s.MarshalText(); in != "512" && string(b) != in {
			t.Errorf("marshal %d: %s", s, b)
		}
	}
	// Kubernetes quantities: decimal suffixes, fractions, exponents.
	for in, want := range map[string]Size{"500M": 500_000_000, "1.5Gi": 3 << 29, "1e3": 1000, "2k": 2000, "0.5": 1, " 8Ki ": 8192} {
		var s Size
		if err := s.UnmarshalText([]byte(in)); err != nil || s != want {
			t.Errorf("%q: %d, %v; want %d", in, s, err, want)
		}
	}
	for _, in := range []string{"-1Mi", "16MB", "lots", "", "9999999Ei", "16 Mi"} {
		var s Size
		if err := s.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("%q: accepted as %d", in, s)
		}
	}
}

func TestS3Extensions(t *testing.T) {
	c, err := Parse([]byte(`kflPcapS3:
  kflArr: [dns]
  s3Bucket: b
  s3Endpoint: http://127.0.0.1:9000
  awsSecretAccessKey: very-secret
  sse: aws:kms
  kmsKeyId: arn:aws:kms:eu-west-1:1:key/k
  storageClass: STANDARD_IA
  keepLocal: true
  createBucket: true
  slackAuthToken: xoxb-secret
  slackChannelId: C1
  slackAttachMaxBytes: 8Mi
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	k := c.KflPcapS3
	if k.SSE != "aws:kms" || k.KMSKeyID == "" || k.StorageClass != "STANDARD_IA" || !k.KeepLocal || !k.CreateBucket || k.SlackAttachMaxBytes != 8<<20 {
		t.Errorf("parsed %+v", k)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"very-secret", "xoxb-secret"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("marshalled config shows %q:\n%s", secret, out)
		}
	}
	for _, tc := range []struct{ yaml, want string }{
		{"sse: aes", "kflPcapS3.sse"},
		{"kmsKeyId: k", "kflPcapS3.kmsKeyId: needs sse: aws:kms"},
		{"sse: AES256\n  kmsKeyId: k", "kflPcapS3.kmsKeyId"},
		{"s3Endpoint: minio:9000", "kflPcapS3.s3Endpoint"},
		{"slackAttachMaxBytes: 1Mi", "kflPcapS3.slackAttachMaxBytes"},
	} {
		_, err := Parse([]byte("kflPcapS3:\n  kflArr: [dns]\n  "+tc.yaml+"\n"), "test")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.yaml, err, tc.want)
		}
	}
}
