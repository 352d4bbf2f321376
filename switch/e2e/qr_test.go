package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/qr"
	"github.com/switchyard/switchyard/switch/termclient"
	"github.com/switchyard/switchyard/switch/wallet"
)

// qrCodes are payment codes of each network of the default table.
var qrCodes = map[string]string{
	qr.UnionPay: "6225880123456789012",
	qr.WeChat:   "134567890123456789",
	qr.Alipay:   "28123456789012345678",
}

// startQR is the demo switch with its wallet simulator, and connectors that give up
// after a second (the silent wallet's test waits for that).
func startQR(t *testing.T) (*fixture, *wallet.Sim) {
	t.Helper()
	return startQRWith(t, nil)
}

func startQRWith(t *testing.T, mutate func(*config.Config)) (*fixture, *wallet.Sim) {
	t.Helper()
	f := startDemo(t, func(c *config.Config) {
		if mutate != nil {
			mutate(c)
		}
		c.QR.Connectors = nil
		for _, n := range []string{qr.UnionPay, qr.WeChat, qr.Alipay} {
			c.QR.Connectors = append(c.QR.Connectors, config.QRConnector{ID: n, Network: n, URL: config.DemoWalletURL,
				Timeout: config.Duration(time.Second), Poll: config.Duration(20 * time.Millisecond), RequestTimeout: config.Duration(time.Second)})
		}
	})
	sim, ok := f.s.DemoWallet().(*wallet.Sim)
	if !ok {
		t.Fatal("demo mode started no wallet simulator")
	}
	return f, sim
}

func qrPay(code string, amount int64) termclient.Txn {
	tx := pos(amount)
	tx.PAN, tx.Expiry, tx.QRCode = "", "", code
	return tx
}

func (f *fixture) record(rrn string) *journal.Record {
	f.t.Helper()
	rec, err := f.s.Journal.Get(rrn)
	if err != nil {
		f.t.Fatalf("journal %s: %v", rrn, err)
	}
	return rec
}

// TestQRConsumerPresented runs, over TCP for each network of the default table
// through its wallet connector: a payment; a payment the payer confirms late
// (USERPAYING, then paid); a wallet that goes silent (answered 91, the payment
// cancelled at the wallet through the store-and-forward queue: nothing left paid);
// a refund. The code is never in the journal or the logs in clear.
func TestQRConsumerPresented(t *testing.T) {
	f, sim := startQR(t)
	for network, code := range qrCodes {
		t.Run(network, func(t *testing.T) {
			paid := f.send(qrPay(code, 1000))
			if paid.RC != "00" || len(paid.AuthCode) != 6 {
				t.Fatalf("pay: %+v", paid)
			}
			rec := f.record(paid.RRN)
			if rec.QR != network || rec.Issuer != network || rec.PANMasked != qr.Mask(code) || rec.Type != "purchase" {
				t.Fatalf("record: qr %q issuer %q pan %q type %q", rec.QR, rec.Issuer, rec.PANMasked, rec.Type)
			}
			if tr, ok := sim.Trade(paid.RRN); !ok || tr.State != wallet.Success || tr.TotalFee != 1000 {
				t.Fatalf("wallet trade %+v", tr)
			}

			late := f.send(qrPay(code, 1062))
			if late.RC != "00" {
				t.Fatalf("late confirmation: %+v", late)
			}
			if tr, _ := sim.Trade(late.RRN); tr.State != wallet.Success || tr.Queries < 2 {
				t.Fatalf("late confirmation's trade %+v", tr)
			}

			silent := f.send(qrPay(code, 1091))
			if silent.RC != "91" || silent.Reason != "issuer-timeout" {
				t.Fatalf("silent wallet: %+v", silent)
			}
			waitFor(t, "the silent wallet's payment cancelled", func() bool {
				tr, ok := sim.Trade(silent.RRN)
				return ok && tr.State == wallet.Revoked
			})
			if rec := f.record(silent.RRN); rec.ReversedBy != "switch:timeout" {
				t.Fatalf("silent wallet's record reversed by %q", rec.ReversedBy)
			}

			ref := pos(400)
			ref.PAN, ref.Expiry, ref.QRRefund = "", "", true
			ref.ProcCode, ref.RRN = "200000", paid.RRN
			if r := f.send(ref); r.RC != "00" {
				t.Fatalf("refund: %+v", r)
			}
			if tr, _ := sim.Trade(paid.RRN); tr.Refunded != 400 {
				t.Fatalf("refunded at the wallet: %+v", tr)
			}
			if got := f.record(paid.RRN).Refunded; got != 400 {
				t.Fatalf("journal: refunded %d", got)
			}
		})
	}
	if logs := f.logs.String(); strings.Contains(logs, qrCodes[qr.WeChat]) || strings.Contains(logs, qrCodes[qr.Alipay]) || strings.Contains(logs, qrCodes[qr.UnionPay]) {
		t.Fatal("a payment code is in the logs in clear")
	}
	var clear bool
	_ = f.s.Journal.Scan(t.Context(), journal.Query{}, func(r *journal.Record) bool {
		for _, c := range qrCodes {
			clear = clear || strings.Contains(r.PANMasked+r.CardHash, c)
		}
		return true
	})
	if clear {
		t.Fatal("a payment code is in the journal in clear")
	}
}

// TestQRCUPDialect: a UnionPay-style terminal scans a payer's code (F22 = 031, the
// code in F59 tag A3) and is paid through the same wallet connector as the ASCII
// dialects; the QR payment is refunded without a card; a QR sale without a code is a
// format error; the code is not in the journal in clear.
func TestQRCUPDialect(t *testing.T) {
	f, sim := startQR(t)
	term := cupTerminal(t, f, "003", cupHome)
	code := qrCodes[qr.WeChat]
	paid := cupDo(t, term, cup.Txn{Kind: "sale", QRCode: code, Amount: 1000})
	if paid.Str(39) != "00" || paid.Str(38) == "" {
		t.Fatalf("QR sale: %s", cup.Summary(paid))
	}
	rec := f.record(paid.Str(37))
	if rec.QR != qr.WeChat || rec.PANMasked != qr.Mask(code) {
		t.Fatalf("record: qr %q pan %q", rec.QR, rec.PANMasked)
	}
	if tr, ok := sim.Trade(paid.Str(37)); !ok || tr.State != wallet.Success || tr.TotalFee != 1000 {
		t.Fatalf("wallet trade %+v", tr)
	}
	ref := cupDo(t, term, cup.Txn{Kind: "refund", QR: true, Amount: 400, RRN: paid.Str(37), Auth: paid.Str(38)})
	if ref.Str(39) != "00" {
		t.Fatalf("QR refund: %s", cup.Summary(ref))
	}
	if tr, _ := sim.Trade(paid.Str(37)); tr.Refunded != 400 {
		t.Fatalf("refunded at the wallet: %+v", tr)
	}
	f0, err := term.Build(cup.Txn{Kind: "sale", QR: true, Amount: 500})
	if err != nil {
		t.Fatal(err)
	}
	if bad, err := term.Exchange(f0, true); err != nil || bad.Str(39) != "30" {
		t.Fatalf("QR sale without a code: %v %s, want 30", err, cup.Summary(bad))
	}
	if strings.Contains(f.logs.String(), code) {
		t.Error("the payment code is in the logs in clear")
	}
}
