package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/bench"
	"github.com/switchyard/switchyard/internal/sparse"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/internal/seal"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/server"
)

// The demo terminal T0000001: its TMK (docs/demo-fleet.md) and its bound identity.
const (
	cupTMK     = "2315208C9110AD40F5B83C4A6E1D7F92"
	cupHome    = "DI011SN-T0000001SI02089860000000000000001IM015860000000000001GL02039.904200,116.407400"
	cupAway    = "DI011SN-T0000001SI02089860000000000000001IM015860000000000001GL02031.230400,121.473700"
	cupCard    = "4761739001010119"
	cupCardExp = "2912"
)

func startCUP(t *testing.T) *fixture {
	t.Helper()
	return startDemo(t, func(c *config.Config) { c.RulesDir = middayRules(t, time.Now()) })
}

// cupTerminal connects T0000001 to the fixture's cup listener and signs it in with
// scheme (the terminal decrypts the keys under its TMK and checks their check values).
func cupTerminal(t *testing.T, f *fixture, scheme, device string) *cup.Terminal {
	t.Helper()
	tmk, _ := hex.DecodeString(cupTMK)
	term, err := cup.DialTerminal(f.s.ListenerAddr("cup"), "T0000001", "000000000000001", tmk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { term.Close() })
	term.Device = device
	ans, err := term.SignIn(scheme)
	if err != nil {
		t.Fatalf("sign-in %s: %v", scheme, err)
	}
	if ans.Str(39) != "00" {
		t.Fatalf("sign-in %s: %s", scheme, cup.Summary(ans))
	}
	return term
}

func cupDo(t *testing.T, term *cup.Terminal, tx cup.Txn) *cup.Frame {
	t.Helper()
	ans, err := term.Do(tx)
	if err != nil {
		t.Fatalf("%s: %v", tx.Kind, err)
	}
	return ans
}

func TestCUPSignInEachScheme(t *testing.T) {
	f := startDemo(t, func(c *config.Config) {
		// The lists' rules alone: one card's dozen attempts within a minute, a
		// third of them wrong PINs, are what the velocity rules decline.
		c.RulesDir = listRulesOnly(t)
		for i := range c.Listeners {
			if c.Listeners[i].Dialect == "cup" {
				if c.Listeners[i].CUP == nil {
					c.Listeners[i].CUP = &config.CUPListener{}
				}
				c.Listeners[i].CUP.SingleLengthPINKeys = true // scheme 001
				// Every sign-in makes new keys, so that the grace of the previous
				// ones is seen below (by default one within the key lifetime
				// sends the same keys again: TestCUPReplayedSignIn).
				c.Listeners[i].CUP.KeyLifetime = -1
			}
		}
	})
	for i, scheme := range []string{"001", "003", "004"} {
		t.Run(scheme, func(t *testing.T) {
			term := cupTerminal(t, f, scheme, cupHome)
			// One terminal signing in again: its STANs go on from the last
			// scheme's (a sale reusing a STAN and amount with another card
			// reading is another transaction, refused 94).
			term.SetSTAN(100 * (i + 1))
			if term.Batch() != "000002" {
				t.Errorf("batch after sign-in %s, want 000002 (the one after the terminal's)", term.Batch())
			}
			if req := term.Answers.ProcessingRequirement(); req != cup.ReqNone {
				t.Errorf("sign-in answer's processing requirement %d", req)
			}
			tx := cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1200, PIN: "1234"}
			if scheme == "004" { // track 2 encrypted under the TDK
				tx = cup.Txn{Kind: "sale", Track2: cupCard + "=29121010000000000", EncryptTrack: true, Amount: 1200, PIN: "1234"}
			}
			ans := cupDo(t, term, tx)
			if ans.Str(39) != "00" || ans.Str(37) == "" || ans.Str(38) == "" || !ans.Has(64) {
				t.Fatalf("sale after sign-in %s: %s %+v", scheme, cup.Summary(ans), f.record(ans.Str(37)).RuleHits)
			}
			if ans.MTI() != "0210" || ans.TPDU != (cup.TPDU{0x60, 0, 0, 0, 3}) {
				t.Errorf("answer MTI %s TPDU %X, want 0210 and the addresses swapped", ans.MTI(), ans.TPDU)
			}
			wrong := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1300, PIN: "9999"})
			if wrong.Str(39) != "55" {
				t.Errorf("wrong PIN: %s, want 55 (the PIN reached the issuer under its key)", cup.Summary(wrong))
			}
			// A PIN block formed without the PAN (53.1 = 1) is re-bound in the HSM.
			noPAN := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1400, PIN: "1234", PINWithoutPAN: true})
			wrongNoPAN := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1500, PIN: "4321", PINWithoutPAN: true})
			if noPAN.Str(39) != "00" || wrongNoPAN.Str(39) != "55" {
				t.Errorf("PIN without PAN: right PIN %s, wrong PIN %s", cup.Summary(noPAN), cup.Summary(wrongNoPAN))
			}
		})
	}
	// The previous keys stay valid for the grace period: a MAC and PIN under the
	// keys of the first sign-in still work after a second sign-in on another
	// connection; the answer (which only the current MAK may MAC) has no F64 and
	// asks the terminal to sign in again.
	first := cupTerminal(t, f, "003", cupHome)
	cupTerminal(t, f, "003", cupHome)
	ans := cupDo(t, first, cup.Txn{Kind: "balance", PAN: cupCard, Expiry: cupCardExp, PIN: "1234", STAN: "500001"})
	if ans.Str(39) != "00" || ans.Has(64) || ans.Header.ProcessingRequirement() != cup.ReqSignIn {
		t.Fatalf("balance under the previous keys in their grace period: %s MAC %v", cup.Summary(ans), ans.Has(64))
	}
}

// TestCUPSingleLengthRefused: a sign-in asking for single-length keys (60.3 = 001, an
// 8-byte PIK) is refused 63 unless the listener allows it (PCI PIN: PIN keys are
// double-length TDES at least).
func TestCUPSingleLengthRefused(t *testing.T) {
	f := startCUP(t)
	tmk, _ := hex.DecodeString(cupTMK)
	term, err := cup.DialTerminal(f.s.ListenerAddr("cup"), "T0000001", "000000000000001", tmk)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	term.Device = cupHome
	ans, err := term.SignIn("001")
	if err == nil && ans.Str(39) != "63" {
		t.Fatalf("sign-in 001 on a listener without single_length_pin_keys: %s, want 63", cup.Summary(ans))
	}
	if err != nil && !strings.Contains(err.Error(), "63") {
		t.Fatalf("sign-in 001: %v, want an answer 63", err)
	}
}

// TestCUPSingleLengthMAKRefused: on a listener without cup.single_length_mac_keys (the
// default; the demo's sets it for its terminals' scheme 003), a sign-in whose scheme
// issues a single-length MAK (60.3 = 003, an 8-byte MAK) is refused 63 with no keys,
// and one asking for 004 (double-length PIK, MAK and TDK) signs in and trades.
func TestCUPSingleLengthMAKRefused(t *testing.T) {
	f := startDemo(t, func(c *config.Config) {
		c.RulesDir = middayRules(t, time.Now())
		for i := range c.Listeners {
			if c.Listeners[i].Dialect == "cup" {
				c.Listeners[i].CUP = &config.CUPListener{}
			}
		}
	})
	tmk, _ := hex.DecodeString(cupTMK)
	term, err := cup.DialTerminal(f.s.ListenerAddr("cup"), "T0000001", "000000000000001", tmk)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	term.Device = cupHome
	ans, err := term.SignIn("003")
	if err != nil || ans.Str(39) != "63" || ans.Has(62) {
		t.Fatalf("sign-in 003 on a listener without single_length_mac_keys: %s, %v; want 63 without keys", cup.Summary(ans), err)
	}
	if !strings.Contains(f.logs.String(), "single-length-mac-key-refused") {
		t.Errorf("the refusal's reason is not in the log")
	}
	term = cupTerminal(t, f, "004", cupHome)
	if ans := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1200, PIN: "1234"}); ans.Str(39) != "00" || !ans.Has(64) {
		t.Fatalf("sale after sign-in 004: %s", cup.Summary(ans))
	}
}

func TestCUPVoidRefundReversal(t *testing.T) {
	f := startCUP(t)
	term := cupTerminal(t, f, "003", cupHome)
	sale := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 5000, PIN: "1234"})
	if sale.Str(39) != "00" {
		t.Fatalf("sale: %s", cup.Summary(sale))
	}
	void := cupDo(t, term, cup.Txn{Kind: "void", PAN: cupCard, Expiry: cupCardExp, Amount: 5000, RRN: sale.Str(37), Auth: sale.Str(38), OrigSTAN: sale.Str(11)})
	if void.Str(39) != "00" {
		t.Fatalf("void: %s", cup.Summary(void))
	}
	again := cupDo(t, term, cup.Txn{Kind: "void", PAN: cupCard, Expiry: cupCardExp, Amount: 5000, RRN: sale.Str(37), Auth: sale.Str(38), OrigSTAN: sale.Str(11)})
	if again.Str(39) == "00" {
		t.Errorf("second void of the same sale approved: %s", cup.Summary(again))
	}

	sale2 := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 8000, PIN: "1234"})
	refund := cupDo(t, term, cup.Txn{Kind: "refund", PAN: cupCard, Expiry: cupCardExp, Amount: 3000, RRN: sale2.Str(37), OrigSTAN: sale2.Str(11)})
	if sale2.Str(39) != "00" || refund.Str(39) != "00" || refund.MTI() != "0230" {
		t.Fatalf("sale %s, refund %s", cup.Summary(sale2), cup.Summary(refund))
	}
	over := cupDo(t, term, cup.Txn{Kind: "refund", PAN: cupCard, Expiry: cupCardExp, Amount: 6000, RRN: sale2.Str(37), OrigSTAN: sale2.Str(11)})
	if over.Str(39) == "00" {
		t.Errorf("refunds beyond the original approved: %s", cup.Summary(over))
	}

	// Reversal: the terminal repeats the original's STAN (and names it in F61).
	sale3 := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 7000, PIN: "1234"})
	rev := cupDo(t, term, cup.Txn{Kind: "reversal", PAN: cupCard, Expiry: cupCardExp, Amount: 7000, STAN: sale3.Str(11), OrigSTAN: sale3.Str(11)})
	if sale3.Str(39) != "00" || rev.Str(39) != "00" || rev.MTI() != "0410" {
		t.Fatalf("sale %s, reversal %s", cup.Summary(sale3), cup.Summary(rev))
	}
	rec, err := f.s.Journal.Get(sale3.Str(37))
	if err != nil {
		t.Fatal(err)
	}
	if rec.ReversedBy == "" {
		t.Errorf("the reversed sale's record is not marked reversed: %+v", rec)
	}
}

func TestCUPSettlement(t *testing.T) {
	f := startCUP(t)
	term := cupTerminal(t, f, "003", cupHome)
	for _, amt := range []int64{1000, 2500} {
		if ans := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: amt, PIN: "1234"}); ans.Str(39) != "00" {
			t.Fatalf("sale: %s", cup.Summary(ans))
		}
	}
	ok := cupDo(t, term, cup.Txn{Kind: "settlement", Totals: message.BatchTotals{PurchaseCount: 2, PurchaseSum: 3500}})
	if ok.Str(39) != "00" || ok.MTI() != "0510" || ok.Str(48)[30] != '1' {
		t.Fatalf("balanced settlement: %s F48 %s", cup.Summary(ok), ok.Str(48))
	}
	if ans := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 4000, PIN: "1234"}); ans.Str(39) != "00" {
		t.Fatalf("sale: %s", cup.Summary(ans))
	}
	bad := cupDo(t, term, cup.Txn{Kind: "settlement", Totals: message.BatchTotals{PurchaseCount: 2, PurchaseSum: 8000}})
	if bad.Str(39) != "95" || bad.Str(48)[30] != '2' {
		t.Fatalf("unbalanced settlement: %s F48 %s", cup.Summary(bad), bad.Str(48))
	}
	// After the 95, the terminal uploads its batch: the journaled sale is 00, and an
	// amount the journal has not for that STAN is 25 (the terminal keeps it).
	last := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 700, PIN: "1234"})
	if last.Str(39) != "00" {
		t.Fatalf("sale: %s", cup.Summary(last))
	}
	if up := cupDo(t, term, cup.Txn{Kind: "upload", PAN: cupCard, Expiry: cupCardExp, Amount: 700, OrigSTAN: last.Str(11), RRN: last.Str(37)}); up.Str(39) != "00" || up.MTI() != "0330" || up.Str(37) != last.Str(37) {
		t.Fatalf("batch upload of a journaled sale: %s", cup.Summary(up))
	}
	if up := cupDo(t, term, cup.Txn{Kind: "upload", PAN: cupCard, Expiry: cupCardExp, Amount: 701, OrigSTAN: last.Str(11)}); up.Str(39) != "25" {
		t.Fatalf("batch upload of a sale the journal lacks: %s", cup.Summary(up))
	}
}

// TestCUPOfflineUploadCaptured: the upload of an EMV offline approval (0320, 60.1 =
// 36) is captured: answered 00, journaled once as an approved purchase the card
// decided (offline), advised to the issuer (0220, which the issuer simulator gets
// without being asked to authorize), and counted by the next settlement. The same
// upload sent again (its answer lost) is 00 with the same RRN, without a second
// record or advice. One without a valid time of the card's approval is refused 30,
// journaled as a refusal and counted.
func TestCUPOfflineUploadCaptured(t *testing.T) {
	f := startCUP(t)
	term := cupTerminal(t, f, "003", cupHome)
	sale := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1000, PIN: "1234"})
	if sale.Str(39) != "00" {
		t.Fatalf("sale: %s", cup.Summary(sale))
	}
	tx := cup.Txn{Kind: "upload", PAN: cupCard, Expiry: cupCardExp, Amount: 1200, Offline: true, STAN: "400001", ApprovedAt: time.Now().Add(-3 * time.Hour)}
	// The card's chip data, with its transaction certificate (9F27 40) and its track
	// 2 equivalent (57), which the advice must not carry.
	const tc = "9F26081122334455667788" + "9F270140" + "9F3602000C" + "9F0206000000001200" + "5F2A020156"
	upload, err := term.Build(tx)
	if err != nil {
		t.Fatal(err)
	}
	icc, _ := hex.DecodeString(tc + "5710" + cupCard + "D" + cupCardExp + "2010000000F")
	upload.SetBytes(55, icc)
	off, err := term.Exchange(upload, true)
	if err != nil {
		t.Fatal(err)
	}
	if off.Str(39) != "00" || off.MTI() != "0330" || off.Str(37) == "" || !off.Has(64) {
		t.Fatalf("batch upload of an offline approval: %s", cup.Summary(off))
	}
	rec, err := f.s.Journal.Get(off.Str(37))
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Offline || rec.DecidedBy != "card" || rec.Type != "purchase" || !rec.Approved() || rec.Amount != 1200 ||
		rec.PANMasked != message.MaskPAN(cupCard) || rec.STAN != "400001" {
		t.Errorf("offline capture's record %+v", rec)
	}
	if e := waitAdvice(t, f, off.Str(37), "offline approval advice", func(e issuersim.Entry) bool { return e.Advices >= 1 }); e.Requests != 0 || e.Amount != 1200 {
		t.Errorf("the issuer's ledger of the offline approval: %+v, want one advice of 1200 and no authorization", e)
	} else if e.AdviceICC != tc || e.AdviceExpiry != cupCardExp {
		t.Errorf("the advice's DE 55 %q, DE 14 %q: want the card's cryptogram %q without its track, its expiry %s", e.AdviceICC, e.AdviceExpiry, tc, cupCardExp)
	}
	// Sent again as the terminal sends it, with its chip data (the card's key finds
	// the capture; the STAN lookup finds only captures journaled before that key).
	resend, err := term.Build(tx)
	if err != nil {
		t.Fatal(err)
	}
	resend.SetBytes(55, icc)
	again, err := term.Exchange(resend, true)
	if err != nil {
		t.Fatal(err)
	}
	if again.Str(39) != "00" || again.Str(37) != off.Str(37) {
		t.Errorf("the same upload again: %s, want 00 with RRN %s", cup.Summary(again), off.Str(37))
	}
	n := 0
	if err := f.s.Journal.Scan(t.Context(), journal.Query{TID: "T0000001"}, func(r *journal.Record) bool {
		if r.Offline && r.Approved() {
			n++
		}
		return true
	}); err != nil || n != 1 {
		t.Errorf("%d approved offline records (%v), want one", n, err)
	}
	if e := f.sim().Ledger()[off.Str(37)]; e.Advices != 1 {
		t.Errorf("the issuer got %d advices of the offline approval, want one", e.Advices)
	}
	// Unreadable: no valid time of the card's approval.
	bad, err := term.Build(cup.Txn{Kind: "upload", PAN: cupCard, Expiry: cupCardExp, Amount: 800, Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	bad.Set(13, "1340")
	ans, err := term.Exchange(bad, true)
	if err != nil {
		t.Fatal(err)
	}
	if ans.Str(39) != "30" || ans.Str(37) == "" {
		t.Fatalf("offline upload without a valid approval time: %s", cup.Summary(ans))
	}
	if r, err := f.s.Journal.Get(ans.Str(37)); err != nil || r.Approved() || r.Reason != "batch-upload-"+cup.UploadUnreadable {
		t.Errorf("refused upload's record %+v (%v)", r, err)
	}
	if n := testutil.ToFloat64(f.s.Metrics.CUPUploadsUnmatched.WithLabelValues(cup.UploadUnreadable)); n != 1 {
		t.Errorf("switchyard_cup_batch_uploads_unmatched_total{reason=unreadable} = %v, want 1", n)
	}
	// Settlement counts the sale and the offline capture.
	if ok := cupDo(t, term, cup.Txn{Kind: "settlement", Totals: message.BatchTotals{PurchaseCount: 2, PurchaseSum: 2200}}); ok.Str(39) != "00" {
		t.Errorf("settlement with the offline capture: %s F48 %s", cup.Summary(ok), ok.Str(48))
	}
}

func TestCUPRelocatedTerminalDeclined(t *testing.T) {
	f := startCUP(t)
	// A sign-in 1000 km from the terminal's location gets no working keys.
	tmk, _ := hex.DecodeString(cupTMK)
	away, err := cup.DialTerminal(f.s.ListenerAddr("cup"), "T0000001", "000000000000001", tmk)
	if err != nil {
		t.Fatal(err)
	}
	defer away.Close()
	away.Device = cupAway
	ans, err := away.SignIn("003")
	if err != nil || ans.Str(39) != "59" || len(ans.Bytes(62)) != 0 {
		t.Fatalf("a terminal signing in 1000 km from its location: %v %s", err, cup.Summary(ans))
	}
	if !strings.Contains(f.logs.String(), "T0000001") {
		t.Error("no log line names the terminal")
	}
	// Signed in at home, then a sale whose F59 puts the terminal in Shanghai.
	home := cupTerminal(t, f, "003", cupHome)
	if ans := cupDo(t, home, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1100, PIN: "1234", STAN: "300001"}); ans.Str(39) != "00" {
		t.Fatalf("sale at home: %s", cup.Summary(ans))
	}
	moved := cupDo(t, home, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1200, PIN: "1234", STAN: "300002",
		TermInfo: "1722BD31.230400,121.473700"})
	if message.Approved(moved.Str(39)) {
		t.Fatalf("a sale whose F59 location is 1000 km away was approved: %s", cup.Summary(moved))
	}
}

// TestCUPBadMACRefused: a sale with a bad MAC is answered A0, nothing is forwarded,
// and it is journaled (with the RRN in the answer's F37) like an ASCII MAC failure.
func TestCUPBadMACRefused(t *testing.T) {
	f := startCUP(t)
	term := cupTerminal(t, f, "003", cupHome)
	req, err := term.Build(cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1000, PIN: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	body, err := req.Encode(term.MACOf)
	if err != nil {
		t.Fatal(err)
	}
	body[len(body)-1] ^= 0x01
	ans, _, err := term.RoundTrip(body)
	if err != nil {
		t.Fatal(err)
	}
	if ans.Str(39) != cup.RCMACFailure || ans.Str(37) == "" || ans.Has(64) {
		t.Fatalf("bad MAC: %s, want A0 with the RRN of its record, no MAC", cup.Summary(ans))
	}
	// Journaled as an ASCII terminal's bad MAC is (63 there), the card masked.
	rec, err := f.s.Journal.Get(ans.Str(37))
	if err != nil {
		t.Fatalf("the refused request's record: %v", err)
	}
	if rec.RC != cup.RCMACFailure || rec.Reason != "mac-invalid" || rec.DecidedBy != "cup" || rec.Type != "purchase" ||
		rec.TID != "T0000001" || rec.Amount != 1000 || rec.PANMasked != message.MaskPAN(cupCard) || rec.CardHash == "" {
		t.Errorf("record of the bad MAC: %+v", rec)
	}
	if ans.Header.ProcessingRequirement() != cup.ReqSignIn {
		t.Errorf("bad MAC answer asks for processing requirement %d, want %d (sign in again)", ans.Header.ProcessingRequirement(), cup.ReqSignIn)
	}
	if n := len(f.sim().Ledger()); n != 0 {
		t.Errorf("the issuer saw %d requests", n)
	}
}

func TestCUPMalformedFrame(t *testing.T) {
	f := startCUP(t)
	good := cupTerminal(t, f, "003", cupHome)
	for _, body := range [][]byte{
		{0x60, 0, 3, 0, 0, 0x60, 0x31, 0, 0x31, 0, 0, 0x02, 0x00, 0xff}, // bitmap cut short
		[]byte("not a cup message at all, just text"),
	} {
		c, err := net.Dial("tcp", f.s.ListenerAddr("cup"))
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(frontend.AppendFrame(nil, body)); err != nil {
			t.Fatal(err)
		}
		if _, err := frontend.ReadFrame(bufio.NewReader(c), nil, 8192); err == nil {
			t.Errorf("malformed frame %X answered; want the connection closed", body)
		}
		c.Close()
	}
	if ans := cupDo(t, good, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1000, PIN: "1234"}); ans.Str(39) != "00" {
		t.Fatalf("the other connection after the malformed frames: %s", cup.Summary(ans))
	}
}

// TestCUPTermCommand: `switchyard term --dialect cup` signs in and buys, reverses
// a purchase of the open batch, then settles, from the shell; a reversal of a
// purchase of the batch it settled is declined 12 (reversal-batch-closed).
func TestCUPTermCommand(t *testing.T) {
	f := startCUP(t)
	addr := f.s.ListenerAddr("cup")
	out, code := cliLocal("term", "purchase", "--dialect", "cup", "--addr", addr, "--pan", cupCard, "--amount", "10.00", "--pin", "1234", "--stan", "000101")
	if code != 0 || !strings.Contains(out, "sign-in") || !strings.Contains(out, "0210 rc=00") {
		t.Fatalf("term purchase --dialect cup: exit %d\n%s", code, out)
	}
	if strings.Contains(out, cupCard) {
		t.Errorf("the clear PAN was printed:\n%s", out)
	}
	out, code = cliLocal("term", "purchase", "--dialect", "cup", "--addr", addr, "--pan", cupCard, "--amount", "5.00", "--pin", "1234", "--stan", "000102")
	if code != 0 || !strings.Contains(out, "0210 rc=00") {
		t.Fatalf("second term purchase --dialect cup: exit %d\n%s", code, out)
	}
	out, code = cliLocal("term", "reversal", "--dialect", "cup", "--addr", addr, "--orig-stan", "000102", "--amount", "5.00", "--pan", cupCard)
	if code != 0 || !strings.Contains(out, "0410 rc=00") {
		t.Fatalf("term reversal --dialect cup: exit %d\n%s", code, out)
	}
	out, code = cliLocal("term", "settle", "--dialect", "cup", "--addr", addr, "--totals", "1,1000,0,0", "--scheme", "004")
	if code != 0 || !strings.Contains(out, "0510 rc=00") {
		t.Fatalf("term settle --dialect cup: exit %d\n%s", code, out)
	}
	out, code = cliLocal("term", "reversal", "--dialect", "cup", "--addr", addr, "--orig-stan", "000101", "--amount", "10.00", "--pan", cupCard)
	if !strings.Contains(out, "0410 rc=12") {
		t.Fatalf("term reversal --dialect cup of a purchase of the settled batch: exit %d\n%s\nwant 0410 rc=12 (reversal-batch-closed)", code, out)
	}
}

// TestCUPOverHTTPS: a listener of kind https takes the same bytes as the body of a
// POST with Content-Type x-ISO-TPDU/x-auth, with or without the 2-byte length, and
// refuses another content type.
func TestCUPOverHTTPS(t *testing.T) {
	certFile, keyFile := selfSignedCert(t)
	f := startDemo(t, func(c *config.Config) {
		c.RulesDir = middayRules(t, time.Now())
		c.Listeners = append(c.Listeners, config.Listener{Name: "cup-https", Addr: "127.0.0.1:0", Dialect: "cup", Kind: "https",
			TLS: &config.TLS{CertFile: certFile, KeyFile: keyFile}})
	})
	tcp := cupTerminal(t, f, "003", cupHome) // keys for the terminal, over TCP
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	url := "https://" + f.s.ListenerAddr("cup-https") + "/"
	req, err := tcp.Build(cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1500, PIN: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	body, err := req.Encode(tcp.MACOf)
	if err != nil {
		t.Fatal(err)
	}
	for i, payload := range [][]byte{body, frontend.AppendFrame(nil, body)} {
		// The second is the same STAN again, framed: the duplicate's first answer.
		resp, err := client.Post(url, frontend.ContentTypeTPDU, bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != frontend.ContentTypeTPDU {
			t.Fatalf("POST: %s %q", resp.Status, got)
		}
		if i == 1 {
			got = got[2:]
		}
		ans, err := cup.Decode(got)
		if err != nil {
			t.Fatal(err)
		}
		if ans.Str(39) != "00" || ans.MTI() != "0210" {
			t.Fatalf("sale over HTTPS: %s", cup.Summary(ans))
		}
	}
	resp, err := client.Post(url, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("another content type: %s", resp.Status)
	}
}

// selfSignedCert writes a self-signed certificate for 127.0.0.1 and its key.
func selfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestCUPNoCardDataInTheClear: after cup sales with a PIN and an encrypted track 2,
// neither the logs nor any file of the data directory hold the clear PAN or track.
func TestCUPNoCardDataInTheClear(t *testing.T) {
	f := startCUP(t)
	term := cupTerminal(t, f, "004", cupHome)
	var secrets []string
	for i := 0; i < 3; i++ {
		pan := testPAN(800 + i)
		track := pan + "=29121010000012345"
		secrets = append(secrets, pan, track, strings.Replace(track, "=", "D", 1))
		if ans := cupDo(t, term, cup.Txn{Kind: "sale", Track2: track, EncryptTrack: true, Amount: 1000 + int64(i), PIN: "1234"}); ans.Str(39) != "00" {
			t.Fatalf("sale: %s", cup.Summary(ans))
		}
	}
	term.Close()
	if err := f.s.Drain(); err != nil {
		t.Fatal(err)
	}
	check := func(where string, b []byte) {
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("card data %.6s... in the clear in %s", s, where)
			}
		}
	}
	check("the log", []byte(f.logs.String()))
	_ = filepath.Walk(f.dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := sparse.ReadData(path) // Badger's files are mostly holes
		if err == nil {
			check(path, b)
		}
		return err
	})
}

// TestCUPBenchShare: the bench's load can run some load terminals as UnionPay-style
// terminals (sign-in under the load terminals' demo TMK, MAC'd sales) beside the
// ASCII connections; their answers are approvals and count in the figures.
func TestCUPBenchShare(t *testing.T) {
	f := startCUP(t)
	cupAddr := f.s.ListenerAddr("cup")
	res, err := bench.RunLoad(context.Background(), bench.LoadOptions{Addr: f.s.ListenerAddr("ascii"), Terminals: 20, Conns: 2, Depth: 2,
		Duration: time.Second, Warmup: 300 * time.Millisecond, CUPTerminals: 3, CUPAddr: cupAddr})
	if err != nil {
		t.Fatal(err)
	}
	if res.ByAddr[cupAddr] == 0 || res.Codes["00"] == 0 {
		t.Fatalf("cup share answered %d in the window; codes %v", res.ByAddr[cupAddr], res.Codes)
	}
	for code, n := range res.Codes {
		if strings.HasPrefix(code, "cup-") {
			t.Errorf("%d cup terminals failed: %s", n, code)
		}
	}
}

// TestCUPReversalAfterRestart: a terminal's reversal that comes after the switch
// restarted (its session, and the DE 7 of the original's STAN, gone) still reverses
// the original, found in the journal; the answer asks the terminal to sign in again.
// cupRestartable starts a demo switch with T0000001 signed in over cup (scheme
// 003), and returns it with the terminal. restart closes that switch, starts another on the same data directory with
// its clock 10 s on (so that no DE 7 it gives equals one of the first switch's by
// chance) and reconnects the terminal to it, keeping its keys, batch and STANs.
func cupRestartable(t *testing.T) (*cup.Terminal, *server.Server, func() *server.Server) {
	t.Helper()
	c := demoConfig(t, t.TempDir())
	c.RulesDir = middayRules(t, time.Now())
	s1, err := server.New(c, zerolog.Nop(), demoIssuer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s1.Close) // Close is idempotent: restart closes it first
	tmk, _ := hex.DecodeString(cupTMK)
	term, err := cup.DialTerminal(s1.ListenerAddr("cup"), "T0000001", "000000000000001", tmk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { term.Close() })
	term.Device = cupHome
	if ans, err := term.SignIn("003"); err != nil || ans.Str(39) != "00" {
		t.Fatalf("sign-in: %v", err)
	}
	return term, s1, func() *server.Server {
		t.Helper()
		s1.Close()
		c.Clock = func() time.Time { return time.Now().Add(10 * time.Second) }
		s2, err := server.New(c, zerolog.Nop(), demoIssuer)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s2.Close)
		if err := term.Redial(s2.ListenerAddr("cup")); err != nil {
			t.Fatal(err)
		}
		return s2
	}
}

func TestCUPReversalAfterRestart(t *testing.T) {
	term, _, restart := cupRestartable(t)
	sale := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 6100, PIN: "1234"})
	if sale.Str(39) != "00" {
		t.Fatalf("sale: %s", cup.Summary(sale))
	}
	s2 := restart()
	rev := cupDo(t, term, cup.Txn{Kind: "reversal", PAN: cupCard, Expiry: cupCardExp, Amount: 6100, STAN: sale.Str(11)})
	if rev.Str(39) != "00" || rev.Header.ProcessingRequirement() != cup.ReqSignIn {
		t.Fatalf("reversal after the restart: %s", cup.Summary(rev))
	}
	rec, err := s2.Journal.Get(sale.Str(37))
	if err != nil {
		t.Fatal(err)
	}
	if rec.ReversedBy == "" {
		t.Fatalf("the sale before the restart is not reversed: %+v", rec)
	}
}

// TestCUPResendAfterRestart: a terminal that had no answer before the switch
// restarted resends the same sale to the restarted switch. The dialect carries no
// DE 7, so the adapter restores the terminal's session from the journal and gives
// the resend the DE 7 of its first try: the first answer comes back (same RRN) and
// the card is authorized once.
func TestCUPResendAfterRestart(t *testing.T) {
	term, _, restart := cupRestartable(t)
	other := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 6200, PIN: "1234"})
	f, err := term.Build(cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 6300, PIN: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := term.Exchange(f, true)
	if err != nil || first.Str(39) != "00" || other.Str(39) != "00" {
		t.Fatalf("sales before the restart: %v %s / %s", err, cup.Summary(other), cup.Summary(first))
	}
	restart()
	again, err := term.Exchange(f, true)
	if err != nil {
		t.Fatal(err)
	}
	if again.Str(39) != "00" || again.Str(37) != first.Str(37) || again.Str(38) != first.Str(38) {
		t.Fatalf("resend after the restart: %s, want the first answer (RRN %s, approval %s)", cup.Summary(again), first.Str(37), first.Str(38))
	}
}

// TestCUPSTANReusedAfterRestart: two chip sales of the same card, STAN and amount
// (the terminal's STAN counter started again) with a restart between them. The
// restarted switch reads the first back from the journal, with the fingerprint of
// its content (journal.Record.ContentSum, keyed from the card hash key): the second,
// another cryptogram in F55, is another transaction and is answered 94
// duplicate-stan-other-content, nothing authorized; the first sent again still gets
// its first answer. Until the fix the journal kept no fingerprint, the entry mode and
// the card matched, and the second got the first's approval: goods handed over
// unpaid.
func TestCUPSTANReusedAfterRestart(t *testing.T) {
	term, s1, restart := cupRestartable(t)
	chip := func(arqc string) *cup.Frame {
		t.Helper()
		f, err := term.Build(cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 6400, PIN: "1234", STAN: "000777"})
		if err != nil {
			t.Fatal(err)
		}
		f.Set(22, "051")
		icc, _ := hex.DecodeString("9F2608" + arqc + "9F270180" + "9F3602000C" + "9F0206000000006400")
		f.SetBytes(55, icc)
		return f
	}
	first := chip("1111111111111111")
	ans1, err := term.Exchange(first, true)
	if err != nil || ans1.Str(39) != "00" {
		t.Fatalf("first chip sale: %v %s", err, cup.Summary(ans1))
	}
	if rec, err := s1.Journal.Get(ans1.Str(37)); err != nil || rec.ContentSum == 0 {
		t.Fatalf("the first sale's record carries no content fingerprint (%v)", err)
	}
	s2 := restart()
	ans2, err := term.Exchange(chip("2222222222222222"), true)
	if err != nil {
		t.Fatal(err)
	}
	if ans2.Str(39) != "94" || ans2.Str(38) != "" || ans2.Str(37) == ans1.Str(37) {
		t.Fatalf("after the restart, the same card's next chip sale under STAN 000777 and the same amount: %s; want 94, not the first's approval (RRN %s)",
			cup.Summary(ans2), ans1.Str(37))
	}
	if rec, err := s2.Journal.Get(ans2.Str(37)); err != nil || rec.RC != "94" || rec.Reason != "duplicate-stan-other-content" {
		t.Errorf("the second sale's record: %+v, %v; want 94 duplicate-stan-other-content", rec, err)
	}
	again, err := term.Exchange(first, true)
	if err != nil {
		t.Fatal(err)
	}
	if again.Str(39) != "00" || again.Str(37) != ans1.Str(37) || again.Str(38) != ans1.Str(38) {
		t.Fatalf("the first sale resent after the restart: %s, want the first answer (RRN %s, approval %s)", cup.Summary(again), ans1.Str(37), ans1.Str(38))
	}
}

// TestCUPSignInAnswerRRN: the sign-in's answer (0810) carries F37, the switch's RRN,
// as the shared spec lists it; a second sign-in gets another. Until 5 December 2026
// it had none.
func TestCUPSignInAnswerRRN(t *testing.T) {
	f := startCUP(t)
	tmk, _ := hex.DecodeString(cupTMK)
	term, err := cup.DialTerminal(f.s.ListenerAddr("cup"), "T0000001", "000000000000001", tmk)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	term.Device = cupHome
	var rrns []string
	for range 2 {
		ans, err := term.SignIn("003")
		if err != nil {
			t.Fatal(err)
		}
		if rrn := ans.Str(37); ans.Str(39) != "00" || len(rrn) != 12 || !isDigits(rrn) {
			t.Fatalf("0810 %s: F37 %q, want the switch's 12-digit RRN", cup.Summary(ans), rrn)
		}
		rrns = append(rrns, ans.Str(37))
	}
	if rrns[0] == rrns[1] {
		t.Errorf("two sign-ins answered with the same RRN %s", rrns[0])
	}
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// TestCUPOfflineAdviceOwedRestart: an offline capture whose advice the switch owed
// when it stopped (the queue had refused it: an advice_owed event, the card, its
// expiry and its chip data sealed in the record) is advised after the restart by
// recovery, from the record as the journal stored it: the issuer gets the repeat
// (0221) with the card's expiry (DE 14) and its filtered chip data (DE 55), as the
// first try would have carried them. The owed state is the pipeline's, written as
// it writes it (pipeline.TestCaptureOfflineAdviceOwed makes it with a refusing
// queue, which a single switch's disk queue does not offer a test); here the
// capture's own advice goes first, and the record is then written back to owing it.
func TestCUPOfflineAdviceOwedRestart(t *testing.T) {
	term, s1, restart := cupRestartable(t)
	const tc = "9F26081122334455667788" + "9F270140" + "9F3602000C" + "9F0206000000001300" + "5F2A020156"
	upload, err := term.Build(cup.Txn{Kind: "upload", PAN: cupCard, Expiry: cupCardExp, Amount: 1300, Offline: true, STAN: "400002", ApprovedAt: time.Now().Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	icc, _ := hex.DecodeString(tc + "5710" + cupCard + "D" + cupCardExp + "2010000000F")
	upload.SetBytes(55, icc)
	off, err := term.Exchange(upload, true)
	if err != nil || off.Str(39) != "00" {
		t.Fatalf("batch upload of an offline approval: %v %s", err, cup.Summary(off))
	}
	rrn := off.Str(37)
	// The record as the pipeline writes it when the queue refuses the advice: the
	// card, its expiry and its chip data sealed as in the queue (the PAN seal's key,
	// pipeline/seal.go: a format that must not change), and an advice_owed event.
	key, err := hex.DecodeString(config.DemoCardHashKey)
	if err != nil {
		t.Fatal(err)
	}
	sl, err := seal.New(key, "switchyard pan seal v1")
	if err != nil {
		t.Fatal(err)
	}
	sealed := func(v, ad string) []byte {
		b, err := sl.Seal([]byte(v), []byte(ad))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rec, err := s1.Journal.Get(rrn)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Offline || !rec.Approved() || rec.SealedPAN != nil || rec.SealedExpiry != nil {
		t.Fatalf("the capture's record once its advice is queued %+v: want approved, nothing sealed in it", rec)
	}
	rec.SealedPAN, rec.SealedExpiry, rec.SealedICC = sealed(cupCard, "pan"), sealed(cupCardExp, "expiry"), sealed(tc, "icc")
	rec.AddEvent(journal.StateAdviceOwed, time.Now().UTC(), "offline advice not queued (test); left to recovery at a restart")
	if err := s1.Journal.Write(t.Context(), rec, false, true); err != nil {
		t.Fatal(err)
	}
	s2 := restart()
	sim := s2.DemoIssuer().(*issuersim.Demo).Sim // the restarted switch's issuer: a new ledger
	deadline := time.Now().Add(40 * time.Second)
	var e issuersim.Entry
	for e = sim.Ledger()[rrn]; e.Advices == 0; e = sim.Ledger()[rrn] {
		if time.Now().After(deadline) {
			t.Fatalf("the owed advice of %s did not reach the issuer after the restart: %+v", rrn, e)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e.FirstMTI != "0221" || e.Amount != 1300 || e.AdviceExpiry != cupCardExp || e.AdviceICC != tc {
		t.Errorf("the issuer's ledger of the recovered advice %+v (DE 14 %q): want a 0221 of 1300 with DE 14 %s and DE 55 %s", e, e.AdviceExpiry, cupCardExp, tc)
	}
	got, err := s2.Journal.Get(rrn)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Approved() || got.Reversed() || got.SealedPAN != nil || got.SealedExpiry != nil || got.SealedICC != nil {
		t.Errorf("the record after recovery %+v: want approved, nothing sealed left in it", got)
	}
}

// listRulesOnly is a rule directory holding the rule pack's lists file alone (its
// time zone and the deny and allow lists' rules): for tests of the dialect whose
// many attempts of one card the velocity rules would decline.
func listRulesOnly(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../rules/00-deny.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "00-deny.yaml"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}
