package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/pipeline"
	"github.com/switchyard/switchyard/switch/qr"
	"github.com/switchyard/switchyard/switch/termclient"
)

// usd is tx in US dollars (DE 49 840).
func usd(tx termclient.Txn) termclient.Txn {
	tx.Currency = "840"
	return tx
}

// TestMerchantCurrencyOverTCP: over TCP, with the demo issuer and the rules, a
// purchase in 840 at the demo grocery (no currency: any) is approved, as before.
// Once a reviewed `merchant change --currency 156` gives it one, a purchase in 840
// is declined 58 merchant-currency-mismatch (DE 48 RC names it) without reaching
// the issuer, journaled so, counted by switchyard_transactions_total under 58, and
// a purchase in 156 approved; a QR order in 840 is declined 58 too, one in 156 is
// made. Moved to yen (392), merchant show reads its limits in yen ("5000000 392 a
// transaction"), an order in yen gets a code in yen (ID 53 392, the amount in ID
// 54 without decimals), and one in 156 is declined.
func TestMerchantCurrencyOverTCP(t *testing.T) {
	f, _ := startQR(t)
	const mid = "000000000000001"
	if a := f.send(usd(pos(10000))); a.RC != "00" {
		t.Fatalf("purchase in 840 at a merchant of any currency: %+v (%s), want 00", a, f.record(a.RRN).Reason)
	}
	f.requestAndApprove("merchant", "change", mid, "--currency", "156", "--reason", "sells in yuan only")

	a := f.send(usd(pos(10000)))
	rec := f.record(a.RRN)
	if a.RC != "58" || a.Reason != pipeline.ReasonMerchantCurrency || rec.Reason != pipeline.ReasonMerchantCurrency || rec.Currency != "840" {
		t.Fatalf("purchase in 840 at a merchant of 156: %+v, record's reason %q; want 58 %s", a, rec.Reason, pipeline.ReasonMerchantCurrency)
	}
	for _, e := range rec.Events {
		if e.State == journal.StateSent {
			t.Fatalf("the purchase in 840 was sent to the issuer: %+v", rec.Events)
		}
	}
	if rec.Issuer != "" || len(rec.RuleHits) != 0 {
		t.Errorf("the purchase in 840: issuer %q, rule hits %v; want neither asked", rec.Issuer, rec.RuleHits)
	}
	if a := f.send(pos(10000)); a.RC != "00" {
		t.Fatalf("purchase in 156 at a merchant of 156: %+v (%s), want 00", a, f.record(a.RRN).Reason)
	}
	order := usd(orderTx(message.PCQROrder, 2500, ""))
	if a := f.send(order); a.RC != "58" || a.Reason != pipeline.ReasonMerchantCurrency {
		t.Fatalf("QR order in 840 at a merchant of 156: %+v, want 58", a)
	}
	if a := f.send(orderTx(message.PCQROrder, 2500, "")); a.RC != "00" || orderTLV(t, a).QRPayload == "" {
		t.Fatalf("QR order in 156: %+v", a)
	}
	resp, err := http.Get("http://" + f.s.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`switchyard_transactions_total{decided_by="switch",issuer="",mti="0200",rc="58"} 1`,
		`switchyard_transactions_total{decided_by="switch",issuer="",mti="0100",rc="58"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	f.requestAndApprove("merchant", "change", mid, "--currency", "392", "--reason", "moved to Tokyo")
	if out, code := f.cli(tokAnalyst, "merchant", "show", mid); code != 0 || !strings.Contains(out, "392 (JPY)") ||
		!strings.Contains(out, "5000000 392 a transaction") {
		t.Fatalf("merchant show of the yen merchant (exit %d):\n%s", code, out)
	}
	// An order in yen: its code in yen, the amount without decimals.
	yen := orderTx(message.PCQROrder, 2500, "")
	yen.Currency = "392"
	r := f.send(yen)
	p, err := qr.Decode(orderTLV(t, r).QRPayload)
	if r.RC != "00" || err != nil || p.Get(qr.IDCurrency) != "392" || p.Get(qr.IDAmount) != "2500" {
		t.Fatalf("order in yen at a yen merchant: %+v; code %+v, %v; want ID 53 392, ID 54 2500", r, p, err)
	}
	if a := f.send(orderTx(message.PCQROrder, 2500, "")); a.RC != "58" {
		t.Fatalf("order in 156 at a yen merchant: %+v, want 58", a)
	}
}
