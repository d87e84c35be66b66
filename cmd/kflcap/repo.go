package main

import (
	"context"
	"fmt"

	"github.com/kflcap/kflcap/internal/config"
	"github.com/kflcap/kflcap/repo"
)

const repoExamples = `  kflcap repo ls kfl_0_kflcap_1700000000.tar.gz
  kflcap repo ls --json kfl_0_kflcap_1700000000.tar.gz | jq -r 'select(.pcap) | .name'
  kflcap repo inspect kfl_0_kflcap_1700000000.tar.gz
  kflcap repo inspect --json trigger_shell-in-pod_1700000000.tar.gz | jq .problems
  kflcap repo extract kfl_0_kflcap_1700000000.tar.gz ./out
  kflcap repo extract --max-member-bytes 256Mi --max-total-bytes 1Gi untrusted.tar.gz ./out`

func init() {
	register("repo", command{
		summary: "list, inspect or safely extract a repository .tar.gz",
		run:     runRepo,
	})
}

func runRepo(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("repo", "repo ls REPO.tar.gz | inspect REPO.tar.gz | extract REPO.tar.gz DIR", repoExamples, e.stdout)
	asJSON := fs.Bool("json", false, "ls: one JSON object per member; inspect: content.json plus a \"problems\" array")
	maxMember := config.Size(repo.DefaultMaxMemberBytes)
	maxTotal := config.Size(repo.DefaultMaxTotalBytes)
	fs.TextVar(&maxMember, "max-member-bytes", maxMember, "refuse an archive with a member of more than `size` bytes (16Mi, 4Gi or a number)")
	fs.TextVar(&maxTotal, "max-total-bytes", maxTotal, "refuse an archive whose members hold more than `size` bytes together")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if maxMember <= 0 || maxTotal <= 0 {
		return usageErrorf("--max-member-bytes and --max-total-bytes must be positive")
	}
	lim := repo.Limits{MaxMemberBytes: int64(maxMember), MaxTotalBytes: int64(maxTotal)}
	if len(pos) == 0 {
		return usageErrorf("missing subcommand: use ls REPO.tar.gz, inspect REPO.tar.gz or extract REPO.tar.gz DIR")
	}
	sub, pos := pos[0], pos[1:]
	want := map[string]int{"ls": 1, "inspect": 1, "extract": 2}
	n, ok := want[sub]
	switch {
	case !ok:
		return usageErrorf("unknown repo subcommand %q: use ls, inspect or extract", sub)
	case len(pos) != n && sub == "extract":
		return usageErrorf("usage: kflcap repo extract REPO.tar.gz DIR")
	case len(pos) != n:
		return usageErrorf("usage: kflcap repo %s REPO.tar.gz", sub)
	case sub == "extract" && *asJSON:
		return usageErrorf("--json applies to ls and inspect, not extract")
	}
	if sub == "extract" {
		files, err := repo.Extract(ctx, pos[0], pos[1], lim)
		if err != nil {
			return fmt.Errorf("extract %s: %w; nothing was extracted", pos[0], err)
		}
		var total int64
		for _, f := range files {
			total += f.Size
		}
		fmt.Fprintf(e.stdout, "extracted %d %s (%d bytes) into %s\n", len(files), plural(len(files), "file"), total, pos[1])
		return nil
	}
	r, err := repo.Open(ctx, pos[0], lim)
	if err != nil {
		return err
	}
	if sub == "ls" {
		return r.WriteListing(e.stdout, *asJSON)
	}
	problems := r.Check()
	if err := r.WriteReport(e.stdout, problems, *asJSON); err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s is inconsistent: %d %s", pos[0], len(problems), plural(len(problems), "problem"))
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
