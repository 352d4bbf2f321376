package server

import (
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestDiskGuardTakesBackApprovals: while the disk guard declines new transactions
// (here its look at the free space answers 10 MiB, under a minimum of 100), a void
// and a reversal of approvals made before still go through and are answered 00:
// they only take money back, and their effect (the original's reversal mark, the 0420
// queued to its issuer) comes before their own record's first write. Before, that
// write was refused: the void was answered 91 although its sale was reversed at the
// issuer, and the terminal's retry got 12 original-already-reversed, so the merchant
// kept a sale the cardholder had back; a reversal was answered 91 though done. A new
// purchase is still declined 91, and once space is back it is approved.
func TestDiskGuardTakesBackApprovals(t *testing.T) {
	cfg := demoConfig(t, t.TempDir())
	cfg.Journal.MinFreeMB = 100
	s, err := Open(cfg, zerolog.New(io.Discard), testDemoIssuer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	var free atomic.Uint64
	free.Store(1 << 40)
	s.disk.free = func(string) (uint64, error) { return free.Load(), nil }
	s.Start()
	c := dial(t, s, "ascii", message.DialectASCII)
	d := message.DialectASCII
	sale := send(t, c, d, loadPurchase(1, testCard(1), 1200))
	now := time.Now()
	toReverse := loadPurchase(1, testCard(2), 1300)
	toReverse.STAN, toReverse.Time = termclient.NextSTAN(), now
	rev := send(t, c, d, toReverse)
	if sale.RC != "00" || rev.RC != "00" {
		t.Fatalf("purchases before the disk filled: %+v %+v", sale, rev)
	}
	ready := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + s.AdminAddr() + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz %d, want %d", resp.StatusCode, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ready(http.StatusOK)
	free.Store(10 << 20)
	ready(http.StatusServiceUnavailable)

	if r := send(t, c, d, loadPurchase(1, testCard(3), 1400)); r.RC != "91" {
		t.Errorf("a new purchase on a nearly full disk: %+v, want 91", r)
	}
	void := loadPurchase(1, testCard(1), 1200)
	void.ProcCode, void.RRN, void.AuthCode = message.PCVoid, sale.RRN, sale.AuthCode
	if r := send(t, c, d, void); r.RC != "00" {
		t.Errorf("a void on a nearly full disk: %+v, want 00", r)
	}
	reversal := termclient.Txn{MTI: "0400", ProcCode: "000000", Amount: 1300, TID: toReverse.TID, MID: toReverse.MID,
		Original: termclient.OriginalData("0200", toReverse.STAN, message.FormatDE7(now))}
	if r := send(t, c, d, reversal); r.RC != "00" {
		t.Errorf("a reversal on a nearly full disk: %+v, want 00", r)
	}
	sim := s.DemoIssuer().(*issuersim.Demo).Sim
	deadline := time.Now().Add(10 * time.Second)
	for !sim.Ledger()[sale.RRN].Reversed || !sim.Ledger()[rev.RRN].Reversed {
		if time.Now().After(deadline) {
			t.Fatalf("the issuer's ledger: void's sale %+v, reversed purchase %+v", sim.Ledger()[sale.RRN], sim.Ledger()[rev.RRN])
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, rrn := range []string{sale.RRN, rev.RRN} {
		orig, err := s.Journal.Get(rrn)
		if err != nil || !orig.Reversed() {
			t.Fatalf("original %s: %+v %v", rrn, orig, err)
		}
		by, err := s.Journal.Get(orig.ReversedBy)
		if err != nil || by.RC != "00" {
			t.Errorf("original %s is reversed by %s, whose record is %+v %v", rrn, orig.ReversedBy, by, err)
		}
	}

	free.Store(1 << 40)
	ready(http.StatusOK)
	if r := send(t, c, d, loadPurchase(1, testCard(4), 1500)); r.RC != "00" {
		t.Errorf("a purchase once space is back: %+v", r)
	}
}
