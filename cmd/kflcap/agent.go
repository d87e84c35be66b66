package main

import (
	"context"
	"errors"
	"time"

	"github.com/kflcap/kflcap/agent"
	"github.com/kflcap/kflcap/internal/config"
	"gopkg.in/yaml.v3"
)

func init() {
	register("agent", command{summary: "run the node agent: continuous KFL jobs into pcap repositories", run: runAgent})
}

const agentExamples = `  kflcap agent                                   # embedded default: HTTP 500s and DNS into ./kflcap-data/
  kflcap agent --config /etc/kflcap/config.yaml
  kflcap agent --kfl 'http and response.status == 500' --kfl dns
  kflcap agent --config c.yaml --print-config   # the effective configuration, secrets masked`

func runAgent(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("agent", "agent [--config FILE] [--kfl QUERY]...", agentExamples, e.stdout)
	cfgPath := fs.String("config", "", "configuration `FILE` (YAML; default: the embedded default)")
	var queries stringList
	fs.Var(&queries, "kfl", "a KFL query for a job (repeatable; replaces kflPcapS3.kflArr)")
	printConfig := fs.Bool("print-config", false, "print the effective configuration (secrets masked) and exit")
	grace := fs.Duration("grace", 20*time.Second, "on SIGTERM, how long sealing and delivery may take before exit")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected argument %q", pos[0])
	}
	var cfg *config.Config
	if *cfgPath == "" {
		cfg, err = config.Default()
	} else {
		cfg, err = config.Load(*cfgPath)
	}
	if err != nil {
		return usageErrorf("config: %v", err)
	}
	opts := agent.Options{ConfigPath: *cfgPath, Grace: *grace, Version: version, Logger: e.log}
	if len(queries) > 0 {
		cfg.KflPcapS3.KflArr, cfg.KflPcapS3.Active = queries, true
		opts.ConfigPath = "" // --kfl replaced the file's jobs: a reload would lose them
	}
	if *printConfig {
		out, err := yaml.Marshal(cfg)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(out)
		return err
	}
	a, err := agent.New(cfg, opts)
	if err == nil {
		err = a.Run(ctx)
	}
	if ce := (*agent.ConfigError)(nil); errors.As(err, &ce) {
		return usageError{err}
	}
	return err
}
