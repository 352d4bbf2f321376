package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestJournalDiskFull: the journal's log on a device of its own, as docs/journal.md
// advises (a tmpfs of 64 MiB mounted at data_dir/journal, the data directory on
// another of 256 MiB), and that device fills while terminals load the switch. The
// disk guard must watch it as it watches the data directory's: new transactions
// declined 91 with /readyz 503 naming the log's directory, and back by itself once
// space is freed. Until 6 December 2026 it looked at the data directory's disk
// alone: /readyz stayed 200 while the log's device filled, and once it was full
// every new transaction failed its write-ahead and was answered 96.
func TestJournalDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs for about 10 s")
	}
	p, mnt := tmpfsProc(t, 24)
	ts := startOnTmpfs(t, p, mnt, 256, `mkdir -p "$MNT/data/journal" && mount -t tmpfs -o size=64m tmpfs "$MNT/data/journal" && exec "$BIN" serve --config "$CFG"`)
	alive := ts.alive
	waitForLong(t, "the switch to serve", 30*time.Second, func() bool { alive("starting"); return p.serving(ts.log) })
	logDisk := filepath.Join(ts.disk, "data", "journal")
	get := ts.get

	load := startPhasedLoad(p.termAddr, 4, 10, 20)
	defer load.cancel()
	waitForLong(t, "approvals before the log's disk fills", 20*time.Second, load.seen(alive, 0, "00", 100))

	// Fill the log's disk, but for 8 MiB (less than journal.min_free_mb, 24).
	ballast := fillDisk(t, logDisk, 8<<20)
	load.phase.Store(1)
	var body string
	waitForLong(t, "/readyz to say the log's disk is full", 10*time.Second, func() bool {
		alive("the log's disk filled")
		var code int
		code, body = get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "journal log directory")
	})
	t.Logf("/readyz: %s", body)
	// Declines while the disk stays full, for long enough to fill the 8 MiB left
	// had the write-aheads gone on.
	waitForLong(t, "declines while the log's disk is full", 20*time.Second, load.seen(alive, 1, "91", 1000))
	if n := load.count(1, "96"); n > 0 {
		t.Errorf("%d transactions answered 96 while the log's disk was full (its writes failed): the guard did not decline them first", n)
	}
	if v := ts.metric("switchyard_data_dir_full"); v != "1" {
		t.Errorf("switchyard_data_dir_full is %s while the log's disk is full", v)
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	waitForLong(t, "/readyz to turn 200 once space is back", 10*time.Second, func() bool {
		alive("space freed")
		code, _ := get("/readyz")
		return code == http.StatusOK
	})
	load.phase.Store(2)
	waitForLong(t, "approvals once space is back", 20*time.Second, load.seen(alive, 2, "00", 100))
	counts := load.stop()
	t.Logf("answers before the fill %v, while full %v, after %v", counts[0], counts[1], counts[2])
	if err := ts.stop(); err != nil {
		t.Fatalf("the switch did not stop cleanly after the log's disk was full: %v", err)
	}
}
