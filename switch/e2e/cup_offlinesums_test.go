package e2e

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/pipeline"
	"github.com/switchyard/switchyard/switch/qr"
	"github.com/switchyard/switchyard/switch/server"
	"github.com/switchyard/switchyard/switch/termclient"
	"github.com/switchyard/switchyard/switch/wallet"
)

// grocery is the demo merchant of T0000001, the cup and ASCII terminal.
const grocery = "000000000000001"

// offlineSums is a demo switch (real journal and registry on disk) with the QR
// connectors, T0000001 signed in over cup (scheme 003) and its ASCII connection.
type offlineSums struct {
	*fixture
	cfg  *config.Config
	term *cup.Terminal
	seq  int // the uploads' STANs, and their cryptograms' (each its own approval)
}

func startOfflineSums(t *testing.T) *offlineSums {
	t.Helper()
	o := &offlineSums{fixture: &fixture{t: t, dir: t.TempDir(), logs: &testswitch.SyncBuffer{}}, seq: 600000}
	c := demoConfig(t, o.dir)
	c.RulesDir = middayRules(t, time.Now())
	c.QR.Connectors = nil
	for _, n := range []string{qr.UnionPay, qr.WeChat, qr.Alipay} {
		c.QR.Connectors = append(c.QR.Connectors, config.QRConnector{ID: n, Network: n, URL: config.DemoWalletURL,
			Timeout: config.Duration(time.Second), Poll: config.Duration(20 * time.Millisecond), RequestTimeout: config.Duration(time.Second)})
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	o.cfg = c
	o.start()
	tmk, _ := hex.DecodeString(cupTMK)
	term, err := cup.DialTerminal(o.s.ListenerAddr("cup"), "T0000001", grocery, tmk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { term.Close() })
	term.Device = cupHome
	if ans, err := term.SignIn("003"); err != nil || ans.Str(39) != "00" {
		t.Fatalf("sign-in: %v", err)
	}
	o.term = term
	return o
}

// start starts the switch on o's data directory and dials its ASCII listener.
func (o *offlineSums) start() {
	t := o.t
	t.Helper()
	s, err := server.New(o.cfg, zerolog.New(o.logs), demoIssuer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	o.s = s
	o.c, err = termclient.Dial(s.ListenerAddr("ascii"), message.DialectASCII, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := o.c
	t.Cleanup(func() { c.Close() })
}

// restart closes the switch and starts another on the same data directory, its
// clock 10 s on (no DE 7 equal to one of the first's), the cup terminal reconnected
// with its keys.
func (o *offlineSums) restart() {
	o.t.Helper()
	o.c.Close()
	o.s.Close()
	o.cfg.Clock = func() time.Time { return time.Now().Add(10 * time.Second) }
	o.start()
	if err := o.term.Redial(o.s.ListenerAddr("cup")); err != nil {
		o.t.Fatal(err)
	}
	if ans, err := o.term.SignIn("003"); err != nil || ans.Str(39) != "00" {
		o.t.Fatalf("sign-in after the restart: %v", err)
	}
}

// limits sets the grocery's limits (four eyes).
func (o *offlineSums) limits(txn, daily, count int64) {
	o.t.Helper()
	o.requestAndApprove("merchant", "change", grocery, "--limit-txn", strconv.FormatInt(txn, 10),
		"--limit-daily", strconv.FormatInt(daily, 10), "--limit-count", strconv.FormatInt(count, 10))
}

// upload uploads an offline approval of amount by the demo card, its own (a
// cryptogram of its own), approved an hour ago, and returns the answer.
func (o *offlineSums) upload(amount int64) *cup.Frame {
	t := o.t
	t.Helper()
	o.seq++
	stan := fmt.Sprintf("%06d", o.seq)
	fr, err := o.term.Build(cup.Txn{Kind: "upload", PAN: cupCard, Expiry: cupCardExp, Amount: amount, Offline: true, STAN: stan, ApprovedAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	icc, _ := hex.DecodeString("9F260811223344" + stan + "00" + "9F270140" + fmt.Sprintf("9F3602%04X", o.seq%0x10000) +
		fmt.Sprintf("9F0206%012d", amount) + "5F2A020156")
	fr.SetBytes(55, icc)
	ans, err := o.term.Exchange(fr, true)
	if err != nil {
		t.Fatal(err)
	}
	return ans
}

// captured fails unless ans captured the upload (00, journaled approved).
func (o *offlineSums) captured(ans *cup.Frame, what string) {
	o.t.Helper()
	if ans.Str(39) != "00" {
		o.t.Fatalf("%s: %s, want captured", what, cup.Summary(ans))
	}
	if r, err := o.s.Journal.Get(ans.Str(37)); err != nil || !r.Approved() || !r.Offline {
		o.t.Fatalf("%s: record %+v (%v)", what, r, err)
	}
}

// refused fails unless ans refused the upload with rc and reason: journaled as a
// refusal by the switch, nothing advised to the issuer.
func (o *offlineSums) refused(ans *cup.Frame, rc, reason, what string) {
	o.t.Helper()
	if ans.Str(39) != rc || ans.Str(37) == "" {
		o.t.Fatalf("%s: %s, want %s %s", what, cup.Summary(ans), rc, reason)
	}
	r, err := o.s.Journal.Get(ans.Str(37))
	if err != nil || r.Approved() || r.Reason != reason || string(r.DecidedBy) != "switch" || !r.Offline {
		o.t.Fatalf("%s: record %+v (%v), want refused %s by the switch", what, r, err, reason)
	}
	if e := o.sim().Ledger()[ans.Str(37)]; e.Advices != 0 {
		o.t.Errorf("%s: the issuer was advised of a refused upload: %+v", what, e)
	}
}

// qrPaid makes an order of amount on T0000001 and has the network notify its
// payment; it reports whether the payment was taken (else it was refused: the
// order refunded).
func (o *offlineSums) qrPaid(amount int64, tx string) bool {
	t := o.t
	t.Helper()
	a := o.send(orderTx(message.PCQROrder, amount, ""))
	if a.RC != "00" {
		t.Fatalf("order of %d: %+v", amount, a)
	}
	id := orderTLV(t, a).QROrder
	body, _ := json.Marshal(wallet.Notification{Network: qr.WeChat, OrderID: id, TransactionID: tx, TotalFee: amount})
	if code, res := o.notify(body); code != http.StatusOK || res.Result != wallet.Success {
		t.Fatalf("notification of %d: HTTP %d %+v", amount, code, res)
	}
	switch st := orderTLV(t, o.send(orderTx(message.PCQRInquiry, 0, id))).QRState; st {
	case "paid":
		return true
	case "refunded":
		return false
	default:
		t.Fatalf("order %s after its notification: %s", id, st)
		return false
	}
}

// TestCUPOfflineUploadDailyLimit: offline captures count toward the merchant's
// daily limit (its last 24 hours), with its merchant-presented QR payments and its
// card purchases: uploads up to the limit are captured, the one that would pass it
// is refused 61 offline-over-daily-limit (journaled, not captured, not advised); a
// QR payment that the captures take over the limit is refused, one that fits is
// taken, and the captures that follow see it; after a restart the sums, read back
// from the journal, still refuse. Before, an offline capture was bounded by the
// per-transaction limit alone: every upload here was captured.
func TestCUPOfflineUploadDailyLimit(t *testing.T) {
	o := startOfflineSums(t)
	o.limits(5_000_000, 10_000, 0)

	o.captured(o.upload(4000), "first upload (4000 of 10000)")
	if !o.qrPaid(3000, "4200000000000000000001") {
		t.Fatal("a QR payment within the daily limit (7000 of 10000) was refused")
	}
	o.refused(o.upload(3001), message.RCExceedsAmountLimit, pipeline.ReasonOfflineDailyLimit, "upload past the daily limit (10001)")
	o.captured(o.upload(2000), "upload to 9000")
	if o.qrPaid(1001, "4200000000000000000002") {
		t.Fatal("a QR payment past the daily limit (10001) after the captures was taken")
	}
	o.captured(o.upload(1000), "upload to the daily limit (10000)")
	o.refused(o.upload(1), message.RCExceedsAmountLimit, pipeline.ReasonOfflineDailyLimit, "upload past the daily limit")

	o.restart()
	o.refused(o.upload(1), message.RCExceedsAmountLimit, pipeline.ReasonOfflineDailyLimit, "upload past the daily limit after a restart")
	if o.qrPaid(1, "4200000000000000000003") {
		t.Fatal("a QR payment past the daily limit after a restart was taken")
	}
	o.limits(5_000_000, 10_500, 0)
	o.captured(o.upload(500), "upload to the raised limit after a restart")
}

// TestCUPOfflineUploadDailyCount: offline captures count toward the merchant's
// daily count limit, answered 65 offline-over-daily-count once it is reached
// (journaled, not captured); a QR payment then is refused too.
func TestCUPOfflineUploadDailyCount(t *testing.T) {
	o := startOfflineSums(t)
	o.limits(5_000_000, 0, 3)
	o.captured(o.upload(100), "first upload")
	if !o.qrPaid(100, "4200000000000000000011") {
		t.Fatal("a QR payment within the count limit (2 of 3) was refused")
	}
	o.captured(o.upload(100), "third of three")
	o.refused(o.upload(100), message.RCExceedsFrequency, pipeline.ReasonOfflineDailyCount, "fourth upload of a count limit of 3")
	if o.qrPaid(100, "4200000000000000000012") {
		t.Fatal("a QR payment past the count limit was taken")
	}
}
