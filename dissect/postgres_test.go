package dissect_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/internal/netnstest"
)

const pgBin = "/usr/lib/postgresql/15/bin/"

// pgTraffic runs a throw-away PostgreSQL cluster (initdb, then postgres as
// the postgres user) in B, and psql and pgbench in A: DDL, inserts,
// selects, a multi-statement query, errors (an unknown table, an unknown
// database), and pgbench with the extended and prepared protocols.
func pgTraffic(t *testing.T, p *netnstest.Pair) {
	netnstest.RequireTool(t, "psql", "pgbench", "runuser", pgBin+"initdb", pgBin+"postgres")
	dir, err := os.MkdirTemp("", "kflcap-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if out, err := exec.Command("chown", "postgres:postgres", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	data := filepath.Join(dir, "data")
	if out, err := exec.Command("runuser", "-u", "postgres", "--", pgBin+"initdb", "-D", data, "-A", "trust", "-U", "postgres").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v %s", err, out)
	}
	hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(hba, "host all all 10.99.0.0/24 trust")
	hba.Close()
	netnstest.Start(t, p.B, "runuser", "-u", "postgres", "--", pgBin+"postgres", "-D", data, "-k", dir,
		"-c", "listen_addresses=*", "-c", "port=5432", "-c", "fsync=off")
	netnstest.WaitListening(t, p.B, "tcp", 5432)
	psql := func(args ...string) (string, error) {
		return netnstest.Output(p.A, "psql", append([]string{"-h", p.IPB, "-U", "postgres", "-X", "-v", "ON_ERROR_STOP=0"}, args...)...)
	}
	for _, sql := range []string{
		"CREATE TABLE items (id int PRIMARY KEY, name text)",
		"INSERT INTO items VALUES (1, 'apple'), (2, 'pear'), (3, 'plum')",
		"SELECT * FROM items ORDER BY id",
		"SELECT count(*) FROM items; UPDATE items SET name = 'fig' WHERE id = 3",
	} {
		if out, err := psql("-c", sql); err != nil {
			t.Fatalf("psql %q: %v %s", sql, err, out)
		}
	}
	if _, err := psql("-c", "SELECT * FROM nosuchtable"); err == nil {
		t.Fatal("the query on a missing table succeeded")
	}
	if _, err := psql("-d", "nosuchdb", "-c", "SELECT 1"); err == nil {
		t.Fatal("the connection to a missing database succeeded")
	}
	script := filepath.Join(dir, "bench.sql")
	os.WriteFile(script, []byte("SELECT name FROM items WHERE id = 2;\n"), 0o644)
	for _, mode := range []string{"extended", "prepared"} {
		netnstest.Exec(t, p.A, "pgbench", "-h", p.IPB, "-U", "postgres", "-n", "-M", mode, "-c", "2", "-t", "10", "-f", script, "postgres")
	}
}

func TestPostgresAgainstTshark(t *testing.T) {
	path, entries, st := captureClean(t, "postgres", func(p *netnstest.Pair) { pgTraffic(t, p) })
	checkPGAgainstTshark(t, path, entries)
	t.Logf("stats %+v", st)
	checkPGDetails(t, entries)
}

func checkPGAgainstTshark(t *testing.T, path string, entries []*dissect.Entry) {
	ranks := streamRanks(entries)
	var sqls, tags, codes []string
	seenSQL := map[string]bool{}
	for _, e := range entries {
		x := e.Postgres
		if x == nil {
			continue
		}
		if q := x.Request.SQL; q != "" {
			k := fmt.Sprintf("%d %s", ranks[e.StreamID], q)
			if !seenSQL[k] {
				seenSQL[k] = true
				sqls = append(sqls, k)
			}
		}
		for _, tag := range x.Response.Tags {
			tags = append(tags, fmt.Sprintf("%d %s", ranks[e.StreamID], tag))
		}
		if x.Response.Error {
			codes = append(codes, fmt.Sprintf("%d %s", ranks[e.StreamID], x.Response.SQLState))
		}
	}
	var wantSQL, wantTags, wantCodes []string
	seen := map[string]bool{}
	const sep = "\x1f"
	for _, r := range tsharkAgg(t, path, "pgsql", sep, "tcp.stream", "pgsql.query", "pgsql.tag", "pgsql.code") {
		for i, dst := range []*[]string{&wantSQL, &wantTags, &wantCodes} {
			if r[1+i] == "" {
				continue
			}
			for _, v := range strings.Split(r[1+i], sep) {
				k := r[0] + " " + v
				if i == 0 {
					if seen[k] {
						continue
					}
					seen[k] = true
				}
				*dst = append(*dst, k)
			}
		}
	}
	if len(wantTags) < 40 {
		t.Fatalf("tshark saw only %d CommandComplete tags", len(wantTags))
	}
	diffSets(t, "PostgreSQL SQL texts (stream, sql)", sqls, wantSQL)
	diffSets(t, "PostgreSQL CommandComplete tags", tags, wantTags)
	diffSets(t, "PostgreSQL SQLSTATE codes", codes, wantCodes)
	t.Logf("%d SQL texts, %d tags, %d errors equal to tshark's", len(sqls), len(tags), len(codes))
}

func checkPGDetails(t *testing.T, entries []*dissect.Entry) {
	seen := map[string]bool{}
	prepared := 0
	for _, e := range entries {
		x := e.Postgres
		if x == nil {
			continue
		}
		if e.Dst.Port != 5432 {
			t.Errorf("entry towards %v", e.Dst)
		}
		q, r := &x.Request, &x.Response
		switch {
		case q.Type == "startup" && q.Database == "nosuchdb":
			seen["fatal"] = r.Error && r.SQLState == "3D000" && r.Severity == "FATAL" && q.User == "postgres"
		case q.Type == "startup":
			seen["startup"] = x.HasResponse && !r.Error && q.User == "postgres" && q.Database != ""
		case q.SQL == "SELECT * FROM nosuchtable":
			seen["error"] = r.Error && r.SQLState == "42P01" && strings.Contains(r.Message, "nosuchtable")
		case q.SQL == "SELECT * FROM items ORDER BY id":
			seen["select"] = r.Rows == 3 && len(r.Tags) == 1 && r.Tags[0] == "SELECT 3"
		case strings.HasPrefix(q.SQL, "SELECT count(*)"):
			seen["multi"] = len(r.Tags) == 2 && r.Tags[1] == "UPDATE 1"
		case q.Type == "extended" && q.SQL == "SELECT name FROM items WHERE id = 2;":
			if r.Rows == 1 && len(r.Tags) == 1 && r.Tags[0] == "SELECT 1" {
				prepared++
			} else {
				t.Logf("pgbench cycle on %s: %+v", e.Stream, x)
			}
		case q.Type == "extended" || q.Type == "sync":
			t.Logf("other extended cycle on %s: %+v", e.Stream, x)
		case q.Type == "ssl":
			t.Errorf("SSL accepted? %+v", x)
		}
	}
	for _, k := range []string{"fatal", "startup", "error", "select", "multi"} {
		if !seen[k] {
			t.Errorf("%s: no entry or wrong", k)
		}
	}
	if prepared != 40 {
		t.Errorf("%d pgbench transactions with their SQL and one row, want 40", prepared)
	}
}

// TestPostgresCommittedCapture repeats the checks on the committed capture.
func TestPostgresCommittedCapture(t *testing.T) {
	entries, _ := dissectFile(t, "testdata/postgres.pcap", dissect.Config{})
	checkPGDetails(t, entries)
	checkPGAgainstTshark(t, "testdata/postgres.pcap", entries)
}
