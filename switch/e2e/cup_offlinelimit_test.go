package e2e

import (
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/pipeline"
)

// TestCUPOfflineUploadOverLimit: through the switch, the upload of an offline
// approval over the cup listener's offline_max_amount is refused 61 by the adapter
// (journaled batch-upload-offline-over-limit); on a listener without a ceiling (-1),
// one over the demo grocery's per-transaction limit (50,000.00) is refused 61 by the
// pipeline (journaled offline-over-limit, decided by the switch); both are counted in
// switchyard_cup_batch_uploads_unmatched_total{reason="offline-over-limit"}, and
// nothing is advised to the issuer. At the limits, uploads are captured.
func TestCUPOfflineUploadOverLimit(t *testing.T) {
	f := startDemo(t, func(c *config.Config) {
		c.RulesDir = middayRules(t, time.Now())
		var open config.Listener
		for i := range c.Listeners {
			if c.Listeners[i].Name == "cup" {
				// SingleLengthMACKeys, as the demo's listener: the terminal signs in
				// with scheme 003.
				c.Listeners[i].CUP = &config.CUPListener{OfflineMaxAmount: 300000, SingleLengthMACKeys: true}
				open = c.Listeners[i]
			}
		}
		open.Name, open.CUP = "cup-open", &config.CUPListener{OfflineMaxAmount: -1, SingleLengthMACKeys: true}
		c.Listeners = append(c.Listeners, open)
	})
	upload := func(term *cup.Terminal, stan string, amount int64) *cup.Frame {
		t.Helper()
		fr, err := term.Build(cup.Txn{Kind: "upload", PAN: cupCard, Expiry: cupCardExp, Amount: amount, Offline: true, STAN: stan, ApprovedAt: time.Now().Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		// Each upload its own approval: the card's cryptogram differs (the same one
		// again would be the first's duplicate, 94).
		icc, _ := hex.DecodeString("9F260811223344" + stan + "00" + "9F270140" + "9F3602000C" + fmt.Sprintf("9F0206%012d", amount) + "5F2A020156")
		fr.SetBytes(55, icc)
		ans, err := term.Exchange(fr, true)
		if err != nil {
			t.Fatal(err)
		}
		return ans
	}
	refused := func(ans *cup.Frame, reason, by string) {
		t.Helper()
		if ans.Str(39) != message.RCExceedsAmountLimit || ans.Str(37) == "" {
			t.Fatalf("upload over the limit: %s, want 61", cup.Summary(ans))
		}
		r, err := f.s.Journal.Get(ans.Str(37))
		if err != nil || r.Approved() || r.Reason != reason || string(r.DecidedBy) != by || r.PANMasked != message.MaskPAN(cupCard) {
			t.Errorf("refused upload's record %+v (%v), want reason %s by %s", r, err, reason, by)
		}
		if e := f.sim().Ledger()[ans.Str(37)]; e.Advices != 0 {
			t.Errorf("the issuer was advised of a refused upload: %+v", e)
		}
	}
	counted := func() float64 {
		return testutil.ToFloat64(f.s.Metrics.CUPUploadsUnmatched.WithLabelValues(cup.UploadOfflineOverLimit))
	}

	term := cupTerminal(t, f, "003", cupHome)
	refused(upload(term, "500001", 300001), "batch-upload-"+cup.UploadOfflineOverLimit, "cup")
	if n := counted(); n != 1 {
		t.Errorf("offline-over-limit counted %v, want 1", n)
	}
	if ans := upload(term, "500002", 300000); ans.Str(39) != "00" {
		t.Errorf("upload at the listener's ceiling: %s, want captured", cup.Summary(ans))
	}
	term.Close()

	tmk, _ := hex.DecodeString(cupTMK)
	open, err := cup.DialTerminal(f.s.ListenerAddr("cup-open"), "T0000001", "000000000000001", tmk)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	open.Device = cupHome
	if ans, err := open.SignIn("003"); err != nil || ans.Str(39) != "00" {
		t.Fatalf("sign-in on the listener without a ceiling: %v", err)
	}
	refused(upload(open, "500003", 5_000_001), pipeline.ReasonOfflineOverLimit, "switch")
	if n := counted(); n != 2 {
		t.Errorf("offline-over-limit counted %v, want 2", n)
	}
	if ans := upload(open, "500004", 5_000_000); ans.Str(39) != "00" {
		t.Errorf("upload at the merchant's limit: %s, want captured", cup.Summary(ans))
	}
}
