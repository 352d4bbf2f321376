package cli

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// demoTMK is the demo fleet's terminal master key (T0000001, T0000003, T0000009).
const demoTMK = "2315208C9110AD40F5B83C4A6E1D7F92"

// cupTermArgs are the flags only `term --dialect cup` reads.
type cupTermArgs struct {
	tmk, scheme, totals, origSTAN, mac, reverses *string
	track                                        *bool
}

func cupTermFlags(fs *flag.FlagSet) cupTermArgs {
	return cupTermArgs{
		tmk:      fs.String("tmk", "", "cup: the terminal master key, hex (default: the demo TMK)"),
		scheme:   fs.String("scheme", "003", "cup: sign-in key scheme 001, 003 (single-length MAK: the listener must allow it, cup.single_length_mac_keys; the demo's does) or 004"),
		totals:   fs.String("totals", "", "settle: the terminal's totals since its last batch PURCHASECOUNT,PURCHASESUM,REFUNDCOUNT,REFUNDSUM (sums in minor units)"),
		origSTAN: fs.String("orig-stan", "", "cup: the original's STAN (F61.2 of a void, refund or reversal; a reversal's own STAN defaults to it)"),
		mac:      fs.String("mac", "ecb", "cup: MAC algorithm, ecb or x919 (as the listener is configured for the terminal)"),
		reverses: fs.String("reverses", "sale", "reversal: the kind of request it takes back: sale, refund, preauth, completion, balance (its DE 3 is sent, and with --dialect cup its F25 and 60.1, as a terminal's reversal repeats them; cup also void, preauth-void, completion-void)"),
		track:    fs.Bool("track", false, "cup: send the card as track 2 (encrypted under the TDK with --scheme 004)"),
	}
}

// cupTermCommon are the flags term shares with the other dialects.
type cupTermCommon struct {
	addr, pan, amount, currency, expiry, tid, mid, stan, rrn, auth, pin string
	tags                                                                []string
	timeout                                                             time.Duration
	json                                                                bool
	// qrCode pays with a payer's code (F22 031, F59 A3); qrOriginal marks a void or
	// refund of a QR payment (docs/cup-dialect.md).
	qrCode     string
	qrOriginal bool
}

// runTermCUP signs the terminal in on one connection (working keys decrypted under
// the TMK, their check values checked), then sends the transaction, MAC'd.
func runTermCUP(env *Env, kind string, a cupTermArgs, c cupTermCommon) int {
	if c.addr == "127.0.0.1:8583" {
		c.addr = "127.0.0.1:8585"
	}
	tmkHex := *a.tmk
	if tmkHex == "" {
		tmkHex = demoTMK
	}
	tmk, err := hex.DecodeString(tmkHex)
	if err != nil || (len(tmk) != 8 && len(tmk) != 16) {
		return fail(env, "term: --tmk: want 16 or 32 hex digits")
	}
	macAlg, err := cup.ParseMAC(*a.mac)
	if err != nil {
		return fail(env, "term: --mac: %v", err)
	}
	amt, err := termclient.ParseAmount(c.amount, c.currency)
	if err != nil {
		return failUsage(env, "term: --amount %s --currency %s: %v", c.amount, c.currency, err)
	}
	if c.mid == "" {
		if c.mid = demoMerchant[c.tid]; c.mid == "" {
			c.mid = "000000000000003"
		}
	}
	device := ""
	if len(c.tags) > 0 {
		pairs, err := termclient.ParseTags(c.tags...)
		if err != nil {
			return fail(env, "term: --tlv: %v", err)
		}
		for _, p := range pairs {
			b, err := message.AppendTLV([]byte(device), p[0], p[1])
			if err != nil {
				return fail(env, "term: --tlv: %v", err)
			}
			device = string(b)
		}
	} else {
		for _, p := range demoIdentity[c.tid] {
			b, _ := message.AppendTLV([]byte(device), p[0], p[1])
			device = string(b)
		}
	}
	t, err := cup.DialTerminal(c.addr, c.tid, c.mid, tmk)
	if err != nil {
		return fail(env, "term: %v", err)
	}
	defer t.Close()
	t.Timeout, t.MAC, t.Device = c.timeout, macAlg, device
	// Each run is a new Terminal: its STANs start from the clock (a hundred a
	// second), so that runs a moment apart do not repeat one, as the ASCII dialects'.
	t.SetSTAN(int(time.Now().UnixMilli()/10) % 999000)
	out := func(label string, f *cup.Frame, start time.Time) {
		if c.json {
			b, _ := json.Marshal(map[string]any{"step": label, "mti": f.MTI(), "rc": f.Str(39), "stan": f.Str(11), "rrn": f.Str(37),
				"auth": f.Str(38), "batch": cup.ParseF60(f.Str(60)).Batch, "processing_requirement": f.Header.ProcessingRequirement()})
			fmt.Fprintln(env.Stdout, string(b))
			return
		}
		fmt.Fprintf(env.Stdout, "%-8s %s  (%s, %s)\n", label, kit.ForTerminal(cup.Summary(f)), describeRC(f.Str(39)), time.Since(start).Round(time.Microsecond))
	}
	start := time.Now()
	ans, err := t.SignIn(*a.scheme)
	if err != nil {
		return fail(env, "term: sign-in: %v", err)
	}
	out("sign-in", ans, start)
	if ans.Str(39) != message.RCApproved {
		return 1
	}
	tx := cup.Txn{PAN: c.pan, Expiry: c.expiry, Amount: amt, Currency: c.currency, PIN: c.pin, RRN: c.rrn, Auth: c.auth, OrigSTAN: *a.origSTAN, STAN: c.stan,
		QRCode: c.qrCode, QR: c.qrOriginal}
	if tx.QRCode != "" || tx.QR {
		tx.PAN, tx.Expiry = "", ""
	}
	if tx.Expiry == "" && tx.PAN != "" {
		tx.Expiry = "2912"
	}
	if *a.track && tx.PAN != "" {
		tx.Track2, tx.EncryptTrack = tx.PAN+"="+tx.Expiry+"1010000000000", *a.scheme == "004"
		tx.PAN = ""
	}
	switch kind {
	case "signon":
		return 0
	case "echo":
		start = time.Now()
		if ans, err = t.Echo(); err != nil {
			return fail(env, "term: %v", err)
		}
		out("echo", ans, start)
		return 0
	case "signoff":
		start = time.Now()
		if ans, err = t.SignOff(); err != nil {
			return fail(env, "term: %v", err)
		}
		out("sign-off", ans, start)
		return 0
	case "purchase":
		tx.Kind = "sale"
	case "preauth", "void", "refund", "balance":
		tx.Kind = kind
	case "completion":
		tx.Kind = kind
		if tx.RRN == "" || tx.Auth == "" {
			return fail(env, "term completion --dialect cup: --rrn and --auth (the pre-authorization's RRN and approval code) are required")
		}
	case "reversal":
		tx.Kind = "reversal"
		tx.Reverses = *a.reverses
		if tx.STAN == "" {
			tx.STAN = tx.OrigSTAN
		}
		if tx.STAN == "" {
			return fail(env, "term reversal --dialect cup: --stan or --orig-stan (the original's STAN) is required")
		}
	case "settle":
		tx.Kind = "settlement"
		if tx.Totals, err = parseTermTotals(*a.totals); err != nil {
			return fail(env, "term settle: %v", err)
		}
	default:
		return fail(env, "term: unknown transaction %q", kind)
	}
	if (tx.Kind == "sale" || tx.Kind == "preauth" || tx.Kind == "completion" || tx.Kind == "void" || tx.Kind == "refund" || tx.Kind == "balance") && tx.PAN == "" && tx.Track2 == "" && tx.QRCode == "" && !tx.QR {
		return fail(env, "term %s: --pan (or --qr, --qr-original) is required", kind)
	}
	start = time.Now()
	if ans, err = t.Do(tx); err != nil {
		return fail(env, "term: %v", err)
	}
	out(kind, ans, start)
	return 0
}

// parseTermTotals reads term settle's --totals, PURCHASECOUNT,PURCHASESUM,REFUNDCOUNT,REFUNDSUM.
func parseTermTotals(s string) (message.BatchTotals, error) {
	p := strings.Split(s, ",")
	if len(p) != 4 {
		return message.BatchTotals{}, fmt.Errorf("--totals PURCHASECOUNT,PURCHASESUM,REFUNDCOUNT,REFUNDSUM is required (got %q)", s)
	}
	var n [4]int64
	for i, v := range p {
		var err error
		if n[i], err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil || n[i] < 0 {
			return message.BatchTotals{}, fmt.Errorf("--totals: %q is not a count or sum", v)
		}
	}
	return message.BatchTotals{PurchaseCount: n[0], PurchaseSum: n[1], RefundCount: n[2], RefundSum: n[3]}, nil
}
