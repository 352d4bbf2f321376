package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestDiskFullAtStart starts the switch on a disk that is already nearly full, in a
// private mount namespace like TestDiskFullDeclinesAndRecovers, on a copy of the data
// directory of a first run that approved purchases on an ordinary disk:
//
//   - below journal.min_free_mb (48 MiB) but above a quarter of it (24 MiB free): the
//     switch starts, /readyz is 503 saying why, switchyard_data_dir_full is 1,
//     purchases are declined 91 and the first run's approvals stay readable; once
//     the ballast is removed it approves again by itself, without a restart, and
//     stops cleanly;
//   - with 2 MiB free for a new data directory, and with none for the first run's:
//     it does not start (the first killed it with SIGBUS in Badger's memTable.Put as
//     it loaded the demo fleet; the second failed on Badger's LOCK file with an error
//     that asked whether another switch used the directory), but exits 1 with an
//     error that names the data directory, its free space and journal.min_free_mb;
//     once space is freed, a restart serves, with the first run's approvals there.
func TestDiskFullAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs for about 20 s")
	}
	needTmpfs(t)
	bin := switchyardBinary(t)
	sim, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0", Cards: issuersim.DemoCards})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	dir := t.TempDir()
	config := func(name, dataDir string) string {
		t.Helper()
		cfg := fmt.Sprintf(`demo: true
demo_load_terminals: 200
data_dir: %s
rules_dir: ../../rules
log: {txn_lines: false}
listeners: [{name: ascii, addr: "127.0.0.1:0"}]
admin: {addr: "127.0.0.1:0"}
demo_issuer: {external: "%s", timeout: 300ms}
journal: {min_free_mb: 48}
security: {card_hash_key_hex: "5357495443485941524444454d4f2d4b45592d464f522d504154482d48415348"}
`, dataDir, sim.Addr())
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	// The first run, on an ordinary disk, approves purchases and stops cleanly.
	data := filepath.Join(dir, "data")
	first := &switchProc{t: t, bin: bin, dir: dir, cfg: config("first.yaml", data)}
	first.start()
	var approved []string // their RRNs
	for i := range 5 {
		if rc, rrn := buyOnce(t, first.termAddr, "LT000001", i); rc != "00" {
			t.Fatalf("first run: purchase %d answered %s", i, rc)
		} else {
			approved = append(approved, rrn)
		}
	}
	if err := first.stop(); err != nil {
		t.Fatalf("first run: %v", err)
	}
	// copyData puts the first run's data directory on the tmpfs; fill leaves free MiB
	// free on it (none: dd writes until the disk is full).
	const copyData = `cp -a --sparse=always "$DATA" "$MNT/data" && `
	fill := func(free int) string {
		if free == 0 {
			return `{ dd if=/dev/zero of="$MNT/ballast" bs=1M 2>/dev/null; true; } && `
		}
		return fmt.Sprintf(`dd if=/dev/zero of="$MNT/ballast" bs=1M count=$(( $(df -Pk "$MNT" | awk 'NR==2 {print $4}') / 1024 - %d )) 2>/dev/null && `, free)
	}
	readable := func(ts *tmpfsSwitch, when string) {
		t.Helper()
		for _, rrn := range approved {
			code, body := ts.getAs(tokAnalyst, "/api/v1/journal/"+rrn)
			var rec struct{ RRN, RC string }
			if code != http.StatusOK || json.Unmarshal([]byte(body), &rec) != nil || rec.RRN != rrn || rec.RC != "00" {
				t.Errorf("%s: the first run's approval %s reads %d %.300s", when, rrn, code, body)
			}
		}
	}
	t.Setenv("DATA", data)

	t.Run("below the minimum", func(t *testing.T) {
		mnt := filepath.Join(dir, "disk1")
		if err := os.Mkdir(mnt, 0o700); err != nil {
			t.Fatal(err)
		}
		p := &switchProc{t: t, bin: bin, dir: dir, cfg: config("below.yaml", filepath.Join(mnt, "data"))}
		ts := startOnTmpfs(t, p, mnt, 128, copyData+fill(24)+`exec "$BIN" serve --config "$CFG"`)
		waitForLong(t, "the switch to listen", 30*time.Second, func() bool { ts.alive("starting"); return p.listening(ts.log) })
		if code, body := ts.get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "journal.min_free_mb") {
			t.Errorf("/readyz on a nearly full disk: %d %q", code, body)
		}
		if v := ts.metric("switchyard_data_dir_full"); v != "1" {
			t.Errorf("switchyard_data_dir_full is %s on a nearly full disk", v)
		}
		for i := range 5 {
			if rc, _ := buyOnce(t, p.termAddr, "LT000002", i); rc != "91" {
				t.Errorf("purchase %d on a nearly full disk answered %s, want 91", i, rc)
			}
		}
		readable(ts, "on a nearly full disk")
		ts.alive("declining")

		if err := os.Remove(filepath.Join(ts.disk, "ballast")); err != nil {
			t.Fatal(err)
		}
		waitForLong(t, "/readyz to turn 200 once space is back", 10*time.Second, func() bool {
			ts.alive("space freed")
			code, _ := ts.get("/readyz")
			return code == http.StatusOK
		})
		if v := ts.metric("switchyard_data_dir_full"); v != "0" {
			t.Errorf("switchyard_data_dir_full is %s once space is back", v)
		}
		for i := range 5 {
			if rc, _ := buyOnce(t, p.termAddr, "LT000002", 10+i); rc != "00" {
				t.Errorf("purchase %d once space is back answered %s, want 00", i, rc)
			}
		}
		readable(ts, "once space is back")
		// The log is written behind (a buffered writer): its lines come a little later.
		waitForLong(t, "the disk guard's two lines in the log", 10*time.Second, func() bool {
			out := ts.output()
			return strings.Contains(out, "disk nearly full") && strings.Contains(out, "disk space back")
		})
		if err := ts.stop(); err != nil {
			t.Fatalf("the switch did not stop cleanly: %v", err)
		}
	})

	for _, c := range []struct {
		name  string
		free  int  // MiB
		fresh bool // a new data directory, not the first run's
	}{{"2 MiB free, a new data directory", 2, true}, {"full, the first run's data", 0, false}} {
		free := c.free
		t.Run(c.name, func(t *testing.T) {
			mnt := filepath.Join(dir, fmt.Sprintf("disk-%d", free))
			if err := os.Mkdir(mnt, 0o700); err != nil {
				t.Fatal(err)
			}
			p := &switchProc{t: t, bin: bin, dir: dir, cfg: config(fmt.Sprintf("full%d.yaml", free), filepath.Join(mnt, "data"))}
			// The first start must fail; the script then frees the disk and starts the
			// switch again, as its supervisor would.
			prep := copyData
			if c.fresh {
				prep = ""
			}
			ts := startOnTmpfs(t, p, mnt, 128, prep+fill(free)+
				`df -Pk "$MNT"; "$BIN" serve --config "$CFG"; echo "first start exited $?"; rm "$MNT/ballast" && exec "$BIN" serve --config "$CFG"`)
			waitForLong(t, "the first start to exit", 30*time.Second, func() bool {
				ts.alive("the first start")
				return strings.Contains(ts.output(), "first start exited")
			})
			out := ts.output()
			for _, bad := range []string{"fatal error", "panic", "SIGBUS", "goroutine "} {
				if strings.Contains(out, bad) {
					t.Fatalf("the switch crashed on a full disk (%q):\n%s", bad, tail(out, 3000))
				}
			}
			for _, want := range []string{"first start exited 1", "switch did not start", filepath.Join(mnt, "data"), "KiB free", "journal.min_free_mb"} {
				if !strings.Contains(out, want) {
					t.Errorf("the failed start's output lacks %q:\n%s", want, tail(out, 3000))
				}
			}
			waitForLong(t, "the restart to serve once space is freed", 30*time.Second, func() bool { ts.alive("restarting"); return p.serving(ts.log) })
			if rc, _ := buyOnce(t, p.termAddr, "LT000003", 20+free); rc != "00" {
				t.Errorf("purchase after the restart answered %s, want 00", rc)
			}
			if !c.fresh {
				readable(ts, "after the restart")
			}
			if err := ts.stop(); err != nil {
				t.Fatalf("the switch did not stop cleanly: %v", err)
			}
		})
	}
}

// buyOnce sends one purchase from terminal tid (its seq-th, STAN seq+1) to the
// switch at addr on a connection of its own, and returns its response code and RRN.
func buyOnce(t *testing.T, addr, tid string, seq int) (rc, rrn string) {
	t.Helper()
	c, err := termclient.Dial(addr, message.DialectASCII, nil)
	if err != nil {
		t.Fatalf("terminal %s: %v", tid, err)
	}
	defer c.Close()
	// Amounts never end in 05, 51 or 91 (the demo issuer's own declines).
	tx := termclient.Txn{PAN: testPAN(900000 + seq), Amount: int64(1000 + seq*100), Expiry: "2912", TID: tid,
		MID: "000000000000003", STAN: fmt.Sprintf("%06d", seq+1), Time: time.Now()}
	m, err := termclient.Build(tx, message.DialectASCII)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Send(ctx, m, nil)
	if err != nil {
		t.Fatalf("terminal %s purchase %d: %v", tid, seq, err)
	}
	r, err := termclient.Decode(resp)
	if err != nil {
		t.Fatalf("terminal %s purchase %d: %v", tid, seq, err)
	}
	return r.RC, r.RRN
}
