package upload

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// An archive whose content.json is missing is set aside, never delivered;
// one that a shutdown interrupts stays for the next start.
func TestOutboxUnreadableAndShutdown(t *testing.T) {
	dir := t.TempDir()
	local := &LocalSink{Dir: filepath.Join(dir, "repos")}
	ob, err := NewOutbox(filepath.Join(dir, "outbox"), []Sink{local}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a := makeArchive(t, ob.Dir, "kfl_0_kflcap_1700000000.tar.gz", 0, "dns", 100)
	if a.Content.KFLQuery != "dns" || a.Content.Node == nil || a.Content.Node.IP != "10.0.0.1" || a.Content.Opened.IsZero() {
		t.Fatalf("ReadArchive: %+v", a)
	}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ob.deliver(cancelled, a.Name); err == nil {
		t.Error("an interrupted delivery reported success")
	}
	if _, err := os.Stat(a.Path); err != nil {
		t.Fatalf("the archive left the outbox on shutdown: %v", err)
	}

	bad := filepath.Join(ob.Dir, "kfl_0_kflcap_1700000001.tar.gz")
	if err := os.WriteFile(bad, []byte("not a repository"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !ob.Drain(context.Background()) {
		t.Fatal("not drained")
	}
	if _, err := os.Stat(bad + ".unreadable"); err != nil {
		t.Errorf("unreadable archive not set aside: %v", err)
	}
	if got, _ := filepath.Glob(filepath.Join(local.Dir, "*.tar.gz")); len(got) != 1 || filepath.Base(got[0]) != a.Name {
		t.Errorf("delivered %v, want only %s", got, a.Name)
	}
}
