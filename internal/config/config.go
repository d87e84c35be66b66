// Package config loads the agent's YAML configuration: defaults, then the
// file with ${VAR} expanded from the environment, then environment
// fallbacks for empty keys, then Validate, which names the key of every
// problem. Unknown keys and wrong types are errors too, named the same way.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the agent's configuration (ARCHITECTURE.md).
type Config struct {
	Node       Node        `yaml:"node"`
	Capture    Capture     `yaml:"capture"`
	KflPcapS3  KflPcapS3   `yaml:"kflPcapS3"`
	KFL        KFL         `yaml:"kfl"`
	Spool      Spool       `yaml:"spool"`
	Local      Local       `yaml:"local"`
	API        API         `yaml:"api"`
	Metrics    Metrics     `yaml:"metrics"`
	Triggers   []yaml.Node `yaml:"triggers"`
	Kubernetes Kubernetes  `yaml:"kubernetes"`
}

// Node identifies the node; the cluster name prefixes S3 keys.
type Node struct {
	Name    string `yaml:"name"`
	IP      string `yaml:"ip"`
	Cluster string `yaml:"cluster"`
}

// Capture configures the eBPF capture.
type Capture struct {
	Interfaces      []string `yaml:"interfaces"`
	Backend         Backend  `yaml:"backend"`
	Snaplen         int      `yaml:"snaplen"`
	RingBufferBytes Size     `yaml:"ringBufferBytes"`
	LookbackBytes   Size     `yaml:"lookbackBytes"`
}

// Capture limits. They are the BPF programs' (bpf.DefaultSnaplen,
// bpf.MaxSnaplen, bpf.DefaultRingBytes), repeated here so that config
// stays a leaf below the BPF layer; a test in package agent checks that
// they agree.
const (
	DefaultSnaplen         = 65535
	MaxSnaplen             = 262144
	DefaultRingBufferBytes = 16 << 20
)

// KflPcapS3 is the input object of Kubeshark's wrapper.kflPcapS3, with the
// same names and defaults, plus extensions.
type KflPcapS3 struct {
	KflArr             []string `yaml:"kflArr"`
	AwsRegion          string   `yaml:"awsRegion"`
	AwsAccessKeyID     Secret   `yaml:"awsAccessKeyId"`
	AwsSecretAccessKey Secret   `yaml:"awsSecretAccessKey"`
	S3Bucket           string   `yaml:"s3Bucket"`
	S3Endpoint         string   `yaml:"s3Endpoint"`
	SlackWebhook       Secret   `yaml:"slackWebhook"`
	SlackAuthToken     Secret   `yaml:"slackAuthToken"`
	SlackChannelID     string   `yaml:"slackChannelId"`
	Active             bool     `yaml:"active"`
	Verbose            bool     `yaml:"verbose"`
	MaxMinutes         int      `yaml:"maxMinutes"`
	MaxL4Streams       int      `yaml:"maxL4Streams"`
	// Extensions.
	MaxDuration Duration `yaml:"maxDuration"` // overrides maxMinutes when set
	MaxBytes    Size     `yaml:"maxBytes"`    // seal at this many packet bytes (0: no cap)
	Prefix      string   `yaml:"prefix"`      // archive name prefix
	// S3 extensions.
	SSE          string `yaml:"sse"`          // "", AES256 or aws:kms
	KMSKeyID     string `yaml:"kmsKeyId"`     // with sse: aws:kms; empty: the bucket's default key
	StorageClass string `yaml:"storageClass"` // e.g. STANDARD_IA; empty: the bucket's default
	KeepLocal    bool   `yaml:"keepLocal"`    // keep archives in the spool after every sink has them
	CreateBucket bool   `yaml:"createBucket"` // create a missing s3Bucket instead of failing
	// SlackAttachMaxBytes > 0 attaches archives up to this size to the
	// chat.postMessage announcement (needs slackAuthToken + slackChannelId).
	SlackAttachMaxBytes Size `yaml:"slackAttachMaxBytes"`
}

// KFL holds user macros for queries.
type KFL struct {
	Macros map[string]string `yaml:"macros"`
}

// Spool is where repositories are written and wait for the sinks.
type Spool struct {
	Dir      string `yaml:"dir"`
	MaxBytes Size   `yaml:"maxBytes"`
}

// Local is the local sink.
type Local struct {
	Dir string `yaml:"dir"`
}

// API is the agent's HTTP API.
type API struct {
	Listen string `yaml:"listen"`
	Token  Secret `yaml:"token"`
	// TLS (extension): PEM certificate and key files, both or neither.
	TLSCert string `yaml:"tlsCert"`
	TLSKey  string `yaml:"tlsKey"`
}

// Metrics is the Prometheus endpoint.
type Metrics struct {
	Listen string `yaml:"listen"`
}

// Kubernetes configures name resolution from the API server.
type Kubernetes struct {
	Enabled    string `yaml:"enabled"` // auto, true, false
	Kubeconfig string `yaml:"kubeconfig"`
}

//go:embed default.yaml
var defaultYAML []byte

// Default returns the embedded default configuration: capture on any,
// repositories under ./kflcap-data/, no S3, metrics on 127.0.0.1:9750.
func Default() (*Config, error) { return Parse(defaultYAML, "embedded default") }

// DefaultYAML is the embedded default configuration's text.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Load reads and checks a configuration file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b, path)
}

// defaults are what keys the file leaves out get.
func defaults() *Config {
	host, _ := os.Hostname()
	return &Config{
		Node:    Node{Name: host, Cluster: "kflcap"},
		Capture: Capture{Interfaces: []string{"any"}, Backend: BackendAuto, Snaplen: DefaultSnaplen, RingBufferBytes: DefaultRingBufferBytes, LookbackBytes: 256 << 20},
		KflPcapS3: KflPcapS3{
			Active: true, MaxMinutes: 60, MaxL4Streams: 100000, Prefix: "kflcap",
		},
		Spool:      Spool{Dir: "/var/lib/kflcap", MaxBytes: 10 << 30},
		Local:      Local{Dir: "./kflcap-data/repos"},
		API:        API{Listen: "127.0.0.1:9751"},
		Metrics:    Metrics{Listen: "127.0.0.1:9750"},
		Kubernetes: Kubernetes{Enabled: "auto"},
	}
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Parse parses configuration text. name is used in error messages.
func Parse(text []byte, name string) (*Config, error) {
	expanded := envRef.ReplaceAllFunc(text, func(m []byte) []byte {
		return []byte(os.Getenv(string(m[2 : len(m)-1])))
	})
	var root yaml.Node
	if err := yaml.Unmarshal(expanded, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := defaults()
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) { // EOF: empty file, all defaults
		return nil, fmt.Errorf("%s: %s", name, nameKeys(err, &root))
	}
	c.envFallbacks()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// nameKeys rewrites yaml's "line N: …" messages to lead with the dotted key
// at that line, so that every error names its key.
func nameKeys(err error, root *yaml.Node) string {
	keys := map[int]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				keys[k.Line] = p
				if _, ok := keys[v.Line]; !ok {
					keys[v.Line] = p
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if _, ok := keys[c.Line]; !ok {
					keys[c.Line] = p
				}
				walk(c, p)
			}
		}
	}
	walk(root, "")
	lineRE := regexp.MustCompile(`line (\d+): `)
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	for i, m := range msgs {
		msgs[i] = lineRE.ReplaceAllStringFunc(m, func(s string) string {
			n, _ := strconv.Atoi(lineRE.FindStringSubmatch(s)[1])
			if k, ok := keys[n]; ok {
				return fmt.Sprintf("%s (line %d): ", k, n)
			}
			return s
		})
		msgs[i] = strings.Replace(msgs[i], "field ", "unknown key ", 1)
	}
	return strings.Join(msgs, "; ")
}

// envFallbacks fills empty keys from the environment, as the wrapper does.
func (c *Config) envFallbacks() {
	fill := func(v *string, env string) {
		if *v == "" {
			*v = os.Getenv(env)
		}
	}
	k := &c.KflPcapS3
	fill(&k.AwsRegion, "AWS_REGION")
	fill((*string)(&k.AwsAccessKeyID), "AWS_ACCESS_KEY_ID")
	fill((*string)(&k.AwsSecretAccessKey), "AWS_SECRET_ACCESS_KEY")
	fill(&k.S3Bucket, "S3_BUCKET")
	fill((*string)(&c.API.Token), "KFLCAP_API_TOKEN")
	fill(&c.Node.Name, "NODE_NAME")
	fill(&c.Node.IP, "NODE_IP")
	if c.Node.IP == "" {
		c.Node.IP = firstIP()
	}
}

// firstIP is the node's first global unicast address, for S3 keys.
func firstIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "127.0.0.1"
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	return "127.0.0.1"
}

// Validate checks values and names the key of the first problems found.
// Queries are compiled by the agent (it owns the KFL options).
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if len(c.Capture.Interfaces) == 0 {
		bad("capture.interfaces", "empty: name interfaces or use [any]")
	}
	// Decoding checked a backend read from YAML; this checks one set in code.
	if err := new(Backend).UnmarshalText([]byte(c.Capture.Backend)); err != nil {
		bad("capture.backend", "%v", err)
	}
	if c.Capture.Snaplen < 1 || c.Capture.Snaplen > MaxSnaplen {
		bad("capture.snaplen", "%d out of range 1..%d", c.Capture.Snaplen, MaxSnaplen)
	}
	if r := c.Capture.RingBufferBytes; r < 4096 || r&(r-1) != 0 || r > 1<<30 {
		bad("capture.ringBufferBytes", "%d must be a power of two from 4Ki to 1Gi", r)
	}
	if c.Capture.LookbackBytes < 0 {
		bad("capture.lookbackBytes", "negative")
	}
	k := c.KflPcapS3
	if k.Active && len(k.KflArr) == 0 {
		bad("kflPcapS3.kflArr", "no queries (set active: false to run without jobs)")
	}
	for i, q := range k.KflArr {
		if strings.TrimSpace(q) == "" {
			bad(fmt.Sprintf("kflPcapS3.kflArr[%d]", i), "empty query")
		}
	}
	if k.MaxMinutes < 1 && k.MaxDuration == 0 {
		bad("kflPcapS3.maxMinutes", "%d: must be at least 1", k.MaxMinutes)
	}
	if k.MaxDuration < 0 {
		bad("kflPcapS3.maxDuration", "negative")
	}
	if k.MaxL4Streams < 1 {
		bad("kflPcapS3.maxL4Streams", "%d: must be at least 1", k.MaxL4Streams)
	}
	if k.MaxBytes < 0 {
		bad("kflPcapS3.maxBytes", "negative")
	}
	if !regexp.MustCompile(`^[A-Za-z0-9-]+$`).MatchString(k.Prefix) {
		bad("kflPcapS3.prefix", "%q: use letters, digits and dashes", k.Prefix)
	}
	if (k.SlackAuthToken != "") != (k.SlackChannelID != "") {
		bad("kflPcapS3.slackChannelId", "slackAuthToken and slackChannelId go together")
	}
	switch k.SSE {
	case "", "AES256", "aws:kms":
	default:
		bad("kflPcapS3.sse", "%q: want AES256 or aws:kms", k.SSE)
	}
	if k.KMSKeyID != "" && k.SSE != "aws:kms" {
		bad("kflPcapS3.kmsKeyId", "needs sse: aws:kms")
	}
	if k.S3Endpoint != "" {
		if u, err := url.Parse(k.S3Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("kflPcapS3.s3Endpoint", "%q is not an http(s) URL", k.S3Endpoint)
		}
	}
	if k.SlackAttachMaxBytes < 0 {
		bad("kflPcapS3.slackAttachMaxBytes", "negative")
	}
	if k.SlackAttachMaxBytes > 0 && k.SlackAuthToken == "" {
		bad("kflPcapS3.slackAttachMaxBytes", "attaching files needs slackAuthToken and slackChannelId")
	}
	if c.Spool.Dir == "" {
		bad("spool.dir", "empty")
	}
	if c.Spool.MaxBytes <= 0 {
		bad("spool.maxBytes", "must be positive")
	}
	if c.Local.Dir == "" {
		bad("local.dir", "empty")
	}
	for key, addr := range map[string]string{"api.listen": c.API.Listen, "metrics.listen": c.Metrics.Listen} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(key, "%q is not host:port", addr)
		}
	}
	switch c.Kubernetes.Enabled {
	case "auto", "true", "false":
	default:
		bad("kubernetes.enabled", "%q: want auto, true or false", c.Kubernetes.Enabled)
	}
	return errors.Join(errs...)
}

// RepositoryLifetime is how long a repository stays open.
func (k KflPcapS3) RepositoryLifetime() time.Duration {
	if k.MaxDuration > 0 {
		return time.Duration(k.MaxDuration)
	}
	return time.Duration(k.MaxMinutes) * time.Minute
}
