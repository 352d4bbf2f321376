package cli

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	attestpkg "github.com/switchyard/switchyard/switch/attest"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// demoIdentity is what the demo fleet's terminals send in DE 48, so that `term` passes
// the binding checks as the real terminal would.
var demoIdentity = map[string][][2]string{
	"T0000001": {{"DI", "SN-T0000001"}, {"SI", "89860000000000000001"}, {"IM", "860000000000001"}, {"GL", "39.904200,116.407400"}, {"AV", "1.0.0"}},
	"T0000003": {{"DI", "SN-T0000003"}, {"SI", "89860000000000000003"}, {"IM", "860000000000003"}, {"GL", "39.904200,116.407400"}, {"AV", "1.0.0"}},
	"T0000009": {{"DI", "SN-T0000009"}, {"SI", "89860000000000000009"}, {"IM", "860000000000009"}, {"GL", "39.904200,116.407400"}, {"AV", "1.0.0"}},
	"T0000002": {{"DI", "SP-T0000002"}, {"IM", "860000000000002"}, {"GL", "31.230400,121.473700"}, {"AV", "1.0.0"}, {"IF", ""}},
}

// demoKeys are the demo fleet's public test keys, as its terminals hold them.
var demoKeys = map[string]struct{ tpk, bdk, tak string }{
	"T0000001": {tpk: "C1D0F8FB4958670DBA40AB1F3752EF0D"},
	"T0000003": {tpk: "C1D0F8FB4958670DBA40AB1F3752EF0D"},
	"T0000009": {tpk: "C1D0F8FB4958670DBA40AB1F3752EF0D"},
	"T0000002": {bdk: "0123456789ABCDEFFEDCBA9876543210", tak: "404142434445464748494A4B4C4D4E4F"},
}

// demoKSN returns a KSN of the demo BDK whose counter grows with the clock (DUKPT
// counters must increase; counters with more than 10 one-bits are skipped). The
// counter keeps to 20 bits: its 21st bit is the last bit of the demo BDK's KSN prefix
// FFFF9876543210E, and a KSN past it (…F…) is refused as another device's.
// demoAttestation is the demo attestation service, whose key demo mode pins.
var demoAttestation = attestpkg.DemoSigner()

func demoKSN(now time.Time) string {
	c := uint32(now.Unix()-1_700_000_000) & 0xFFFFF
	for bits.OnesCount32(c) > 10 {
		c = (c + 1) & 0xFFFFF
	}
	if c == 0 {
		// The cycle's last minutes (every counter from 0xFFE00 on has more than 10
		// one-bits) and its first second: 0 is the initial KSN, never a
		// transaction's, and the switch refuses it (the README's SoftPOS purchase
		// failed for eight minutes of each 12-day cycle).
		c = 1
	}
	// KSN: FFFF9876543210 then 24 bits: the top 3 bits (E) end the key serial number,
	// the low 21 bits are the counter.
	return fmt.Sprintf("FFFF9876543210%06X", 0xE00000|c)
}

var demoMerchant = map[string]string{
	"T0000001": "000000000000001", "T0000003": "000000000000001", "T0000002": "000000000000002", "T0000009": "000000000000009",
}

// termKinds are the transactions term sends: its subcommands.
var termKinds = []string{"purchase", "preauth", "completion", "void", "refund", "balance", "reversal", "echo", "signon", "signoff", "settle", "qr-order", "qr-inquiry"}

// termKindFlags are the flags each transaction reads, beyond termCommonFlags; the
// help of "term KIND" describes them and only names the others (term takes every
// flag with every transaction, and ignores those a transaction does not read).
var termKindFlags = func() map[string][]string {
	card := []string{"pan", "amount", "currency", "expiry", "pin", "ksn", "track", "findings", "attest", "attest-age"}
	with := func(a []string, more ...string) []string { return append(append([]string(nil), a...), more...) }
	return map[string][]string{
		"purchase":   with(card, "qr", "resend"),
		"preauth":    with(card, "qr", "resend"),
		"completion": with(card, "rrn", "auth"),
		"void":       with(card, "rrn", "auth", "orig-stan", "qr-original"),
		"refund":     with(card, "rrn", "auth", "orig-stan", "qr-original", "resend"),
		"balance":    with(card, "resend"),
		"reversal":   with(card, "original", "orig-stan", "reverses", "rrn", "auth"),
		"echo":       nil,
		"signon":     nil,
		"signoff":    nil,
		"settle":     {"totals"},
		"qr-order":   {"amount", "currency"},
		"qr-inquiry": {"order"},
	}
}()

// termCommonFlags are the flags every transaction reads.
var termCommonFlags = []string{"addr", "dialect", "tid", "mid", "stan", "tlv", "tak", "mac", "tmk", "scheme", "timeout", "json"}

// termUsage is the help of "term KIND": the flags the transaction reads, then the
// names of the others.
func termUsage(fs *flag.FlagSet, kind string) {
	w := fs.Output()
	own, known := termKindFlags[kind]
	if !known {
		fmt.Fprintf(w, "Usage: switchyard term %s [flags]\n\nFlags:\n", kind)
		fs.PrintDefaults()
		return
	}
	keep := map[string]bool{}
	for _, n := range append(append([]string(nil), termCommonFlags...), own...) {
		keep[n] = true
	}
	sub := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	sub.SetOutput(w)
	var others []string
	fs.VisitAll(func(f *flag.Flag) {
		if keep[f.Name] {
			sub.Var(f.Value, f.Name, f.Usage)
			sub.Lookup(f.Name).DefValue = f.DefValue
		} else {
			others = append(others, "-"+f.Name)
		}
	})
	fmt.Fprintf(w, "Usage: switchyard term %s [flags]\n\nFlags:\n", kind)
	sub.PrintDefaults()
	if len(others) > 0 {
		fmt.Fprintf(w, "\nAccepted, not read by %s: %s (switchyard term -h lists the transactions)\n", kind, strings.Join(others, " "))
	}
}

func runTerm(env *Env, args []string) int {
	kinds := strings.Join(termKinds, "|")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(env.Stderr, "Usage: switchyard term %s [flags]\n", kinds)
		if kit.WantsHelp(args) {
			return kit.ExitOK
		}
		return kit.ExitUsage
	}
	kind := args[0]
	if !slices.Contains(termKinds, kind) {
		fmt.Fprintf(env.Stderr, "switchyard term: unknown transaction %q (want %s)\n", kind, kinds)
		return kit.ExitUsage
	}
	fs := newFlags(env, "term "+kind, "[flags]")
	addr := fs.String("addr", "127.0.0.1:8583", "switch terminal listener host:port")
	dialect := fs.String("dialect", "ascii", "ascii, ascii-binary-bitmap (default --addr 127.0.0.1:8584) or cup (signs in first; default --addr 127.0.0.1:8585)")
	pan := fs.String("pan", "", "card number")
	amount := fs.String("amount", "0", "amount in minor units (1000 = 10.00 yuan), or in major units with a point and at most the currency's decimals (10.00; 1000. yen); at most DE 4's 12 digits of minor units")
	cur := fs.String("currency", "156", "currency of the amount, ISO 4217 numeric code (DE 49: 156 CNY, 392 JPY, 414 KWD); cup sends it in F49")
	expiry := fs.String("expiry", "", "card expiry YYMM (default: the demo card's, else 2912)")
	tid := fs.String("tid", "T0000001", "terminal ID (DE 41)")
	mid := fs.String("mid", "", "merchant ID (DE 42; default: the demo terminal's merchant)")
	stan := fs.String("stan", "", "STAN (DE 11; default: derived from the clock)")
	rrn := fs.String("rrn", "", "original RRN (void, refund, completion: the pre-authorization's)")
	auth := fs.String("auth", "", "original approval code (DE 38; completion: the pre-authorization's, required)")
	resend := fs.String("resend", "", "purchase, preauth, refund, balance: send again, as a terminal that got no answer does, the request whose answer printed ORIGINAL= these 20 digits (its MTI, STAN and DE 7 are reused); give the same --tid, --pan and --amount. Another node of a cluster repeats the first answer (docs/cluster.md, Duplicates)")
	orig := fs.String("original", "", "reversal: the original's MTI+STAN+DE 7, 20 digits as the original's answer printed them in ORIGINAL= (e.g. 02001234561121110613), or the full 42 of DE 90")
	var tags repeated
	fs.Var(&tags, "tlv", "DE 48 tags as TAG=VALUE,TAG=VALUE; a comma not followed by TAG= is part of the value (GL=39.9,116.4); repeatable (default: the demo terminal's identity)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	pin := fs.String("pin", "", "PIN: sent in DE 52 under the TPK that a working key change (0800/161, sent first) gives T0000001/3/9, the load terminals' shared LT.TPK (T0000001's initial value) for LT terminals, or DUKPT for T0000002")
	ksn := fs.String("ksn", "", "DUKPT KSN (default: from the clock, for T0000002)")
	tak := fs.String("tak", "", "MAC key (hex) to MAC the request with (default: T0000002's demo TAK)")
	findings := fs.String("findings", "", "SoftPOS: integrity findings to report in IF (e.g. root,hook)")
	attest := fs.String("attest", "token", "SoftPOS: a token signed by the demo attestation service in AJ (token), or the legacy unsigned AT with verdict OK or FAIL")
	attestAge := fs.Duration("attest-age", 0, "SoftPOS: age of the attestation (token iat, or AT)")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	cupArgs := cupTermFlags(fs)
	qrCode := fs.String("qr", "", "purchase or preauth with this payment code instead of a card (DE 48 QC, docs/qr.md)")
	qrOrig := fs.Bool("qr-original", false, "void or refund of a QR payment (no card: QC empty)")
	order := fs.String("order", "", "qr-inquiry: the order ID (DE 48 QO)")
	fs.Usage = func() { termUsage(fs, kind) }
	if ok, code := parseFlagsOnly(env, fs, args[1:]); !ok {
		return code
	}
	d, err := message.ParseDialect(*dialect)
	if err != nil {
		return failUsage(env, "term: --dialect: %v", err)
	}
	if d == message.DialectASCIIBinaryBitmap && *addr == "127.0.0.1:8583" {
		*addr = "127.0.0.1:8584" // the demo's ascii-binary-bitmap listener, as cup picks 8585
	}
	// DE 41 and 42 (F41, F42 in cup) are fixed-length: a wrong length failed in the
	// packer ("failed to pack field 41 ... should be fixed: 8").
	if len(*tid) != 8 {
		return failUsage(env, "term: --tid %q: want 8 characters", *tid)
	}
	if *mid != "" && len(*mid) != 15 {
		return failUsage(env, "term: --mid %q: want 15 characters", *mid)
	}
	// A malformed PIN is a usage error, refused before anything is sent (a TPK
	// terminal's working key change went first, and a cup terminal's sign-in):
	// the message says what is wrong with it, never the PIN.
	if *pin != "" {
		if err := pinblock.CheckPIN([]byte(*pin)); err != nil {
			return failUsage(env, "term: --pin: %v", err)
		}
	}
	if d == message.DialectCUP && *resend != "" {
		return failUsage(env, "term %s: --resend: the ASCII dialects only (a cup terminal's resend is not made by term)", kind)
	}
	if d == message.DialectCUP {
		return runTermCUP(env, kind, cupArgs, cupTermCommon{addr: *addr, pan: *pan, amount: *amount, currency: *cur, expiry: *expiry,
			tid: *tid, mid: *mid, stan: *stan, rrn: *rrn, auth: *auth, pin: *pin, tags: tags, timeout: *timeout, json: *asJSON,
			qrCode: *qrCode, qrOriginal: *qrOrig})
	}
	amt, err := termclient.ParseAmount(*amount, *cur)
	if err != nil {
		return failUsage(env, "term: --amount %s --currency %s: %v", *amount, *cur, err)
	}
	t := termclient.Txn{PAN: *pan, Amount: amt, Currency: *cur, TID: *tid, MID: *mid, Expiry: *expiry, RRN: *rrn, AuthCode: *auth, STAN: *stan}
	if t.STAN == "" {
		t.STAN = fmt.Sprintf("%06d", time.Now().UnixNano()/1000%1000000)
	}
	if t.MID == "" {
		t.MID = demoMerchant[t.TID]
		if t.MID == "" {
			t.MID = "000000000000003"
		}
	}
	if t.Expiry == "" && t.PAN != "" {
		t.Expiry = "2912"
		if t.PAN == "4761739001010010" {
			t.Expiry = "2212"
		}
	}
	if len(tags) > 0 {
		if t.TLV, err = termclient.ParseTags(tags...); err != nil {
			return failUsage(env, "term: --tlv: %v", err)
		}
	} else {
		t.TLV = demoIdentity[t.TID]
	}
	needPAN := true
	if *qrCode != "" || *qrOrig {
		t.QRCode, t.QRRefund, t.Expiry, needPAN = *qrCode, *qrOrig, "", false
	}
	switch kind {
	case "purchase":
	case "preauth":
		t.MTI = "0100"
	case "completion":
		t.MTI = "0220"
		if t.RRN == "" || t.AuthCode == "" {
			return failUsage(env, "term completion: --rrn and --auth (the pre-authorization's RRN and approval code) are required")
		}
	case "void":
		t.ProcCode = message.PCVoid
	case "refund":
		t.ProcCode = message.PCRefund
	case "balance":
		t.ProcCode = message.PCBalance
	case "reversal":
		t.MTI, needPAN = "0400", false
		t.Original = *orig
		if len(t.Original) == 20 {
			t.Original += strings.Repeat("0", 22)
		}
		if len(t.Original) != 42 || strings.Trim(t.Original, "0123456789") != "" {
			return failUsage(env, "term reversal: --original %q: want 20 digits (the original's MTI, STAN and DE 7, as its answer printed them in ORIGINAL=) or the 42 of DE 90", *orig)
		}
		// A reversal repeats its original's DE 3: the switch declines one of
		// another transaction type (reversal-processing-code-mismatch).
		proc, ok := map[string]string{"sale": message.PCPurchase, "preauth": message.PCPurchase, "completion": message.PCPurchase,
			"refund": message.PCRefund, "balance": message.PCBalance}[*cupArgs.reverses]
		if !ok {
			return fail(env, "term reversal: --reverses %q: want sale, refund, preauth, completion or balance (the kind of request --original names)", *cupArgs.reverses)
		}
		t.ProcCode = proc
	case "qr-order", "qr-inquiry":
		t.MTI, t.ProcCode, t.Expiry, needPAN = "0100", message.PCQROrder, "", false
		if kind == "qr-inquiry" {
			if *order == "" {
				return failUsage(env, "term qr-inquiry: --order is required")
			}
			t.ProcCode = message.PCQRInquiry
			t.TLV = append(t.TLV, [2]string{message.TagQROrder, *order})
		}
	case "settle":
		// A batch (0500/920000) with the totals in DE 48 BT, beside the terminal's
		// identity: it passes a sign-on's terminal checks (docs/terminal-interface.md).
		totals, err := parseTermTotals(*cupArgs.totals)
		if err != nil {
			return failUsage(env, "term settle: %v", err)
		}
		t.MTI, t.ProcCode, t.Expiry, needPAN = "0500", message.PCBatch, "", false
		t.TLV = append(t.TLV, [2]string{message.TagBatchTotals, totals.String()})
	case "echo", "signon", "signoff":
		t.MTI, needPAN = "0800", false
		if kind != "signon" { // a sign-on passes the binding checks: it keeps the identity
			t.TLV = nil
		}
		t.NetCode = map[string]string{"echo": message.NMEcho, "signon": message.NMSignOn, "signoff": message.NMSignOff}[kind]
	default:
		return fail(env, "term: unknown transaction %q (want %s)", kind, kinds)
	}
	if needPAN && t.PAN == "" {
		return failUsage(env, "term %s: --pan is required", kind)
	}
	if *resend != "" {
		if err := applyResend(&t, kind, *resend, *stan, time.Now()); err != nil {
			return failUsage(env, "term %s: --resend: %v", kind, err)
		}
	}
	keys := demoKeys[t.TID]
	if *pin != "" {
		var block []byte
		var err error
		switch {
		case keys.bdk != "":
			k := *ksn
			if k == "" {
				k = demoKSN(time.Now())
			}
			block, err = termclient.PINBlockDUKPT(keys.bdk, k, *pin, t.PAN)
			t.TLV = append(t.TLV, [2]string{"KS", k})
		case keys.tpk != "":
			// The terminal's TPK moves with every key change and every cup sign-in
			// of the same terminal: change it first, as a terminal starting its day
			// does, and use the key the switch sends. If the switch refuses (a
			// suspended terminal, a frozen merchant), the initial demo TPK goes,
			// and the request is declined for its own reason.
			tpk, kerr := changeTPK(env, *addr, d, t, *timeout)
			if kerr != nil {
				fmt.Fprintf(env.Stderr, "term: working key change (0800/161) for %s: %v; the PIN goes under the initial demo TPK\n", t.TID, kerr)
				tpk = keys.tpk
			} else {
				fmt.Fprintf(env.Stderr, "term: %s changed its working keys (0800/161); the PIN goes under the new TPK\n", t.TID)
			}
			block, err = termclient.PINBlockTPK(tpk, *pin, t.PAN)
		case strings.HasPrefix(t.TID, "LT"):
			block, err = termclient.PINBlockTPK(demoKeys["T0000001"].tpk, *pin, t.PAN)
		default:
			err = fmt.Errorf("no demo PIN key for terminal %s", t.TID)
		}
		if err != nil { // no demo PIN key for --tid, or a --pan or --ksn that makes no PIN block
			return failUsage(env, "term: --pin: %v", err)
		}
		t.PINBlock = block
	}
	if t.TID == "T0000002" && len(tags) == 0 && t.MTI != "0800" && t.MTI != "0500" {
		if t.Time.IsZero() { // a --resend keeps the first request's DE 7
			t.Time = time.Now()
		}
		if *attest == "token" {
			tok, err := termclient.AttestToken(demoAttestation, t, "SP-T0000002", "1.0.0",
				termclient.IntegrityOf(message.ParseFindings(*findings)), t.Time.Add(-*attestAge))
			if err != nil {
				return fail(env, "term: attestation token: %v", err)
			}
			t.TLV = append(t.TLV, [2]string{"AJ", tok})
		} else {
			t.TLV = append(t.TLV, [2]string{"AT", fmt.Sprintf("%d:%s", time.Now().Add(-*attestAge).Unix(), *attest)})
		}
		for i := range t.TLV {
			if t.TLV[i][0] == "IF" {
				t.TLV[i][1] = *findings
			}
		}
	}
	var mac message.MACFunc
	if k := *tak; k != "" || keys.tak != "" {
		if k == "" {
			k = keys.tak
		}
		var err error
		if mac, err = termclient.RetailMAC(k); err != nil {
			return failUsage(env, "term: --tak: %v", err)
		}
	}
	if t.Time.IsZero() {
		t.Time = time.Now()
	}
	m, err := termclient.Build(t, d)
	if err != nil {
		return fail(env, "term: build request: %v", err)
	}
	c, err := termclient.Dial(*addr, d, nil)
	if err != nil {
		return fail(env, "term: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(env.Ctx, *timeout)
	defer cancel()
	start := time.Now()
	resp, err := c.Send(ctx, m, mac)
	if errors.Is(err, termclient.ErrClosed) {
		// The switch closes a connection unanswered when its listener refuses it:
		// say where to look rather than only that it closed.
		return fail(env, "term: the switch at %s closed the connection without an answer: it refused the connection or the request "+
			"(a listener limit, a PROXY protocol header required or sent from an untrusted address, a TLS listener, a malformed message); "+
			"its log and switchyard_terminal_connections_refused_total / _closed_total say which", *addr)
	}
	if err != nil {
		return fail(env, "term: %v", err)
	}
	r, err := termclient.Decode(resp)
	if err != nil {
		return fail(env, "term: %v", err)
	}
	// What `term reversal --original` needs to reverse this request.
	original := ""
	if reqMTI := cmp.Or(t.MTI, "0200"); (reqMTI == "0200" || reqMTI == "0100") && t.ProcCode != message.PCVoid && len(r.STAN) == 6 {
		original = reqMTI + r.STAN + message.FormatDE7(t.Time)
	}
	if *asJSON {
		b, _ := json.MarshalIndent(struct {
			termclient.Result
			Original string `json:"original,omitempty"`
		}{r, original}, "", "  ")
		fmt.Fprintln(env.Stdout, string(b))
	} else {
		// The answer's fields are what the switch, and through it an issuer,
		// sent: kit.ForTerminal escapes the control characters among them.
		esc := kit.ForTerminal
		fmt.Fprintf(env.Stdout, "%s  RC=%s  RRN=%s  AUTH=%s  STAN=%s  TID=%s", esc(r.MTI), esc(r.RC), esc(r.RRN), esc(r.AuthCode), esc(r.STAN), esc(r.TID))
		if original != "" {
			fmt.Fprintf(env.Stdout, "  ORIGINAL=%s", esc(original))
		}
		if r.Reason != "" {
			fmt.Fprintf(env.Stdout, "  RS=%s", esc(r.Reason))
		}
		if order, ok := message.TLVValue(r.DE48, message.TagQROrder); ok {
			state, _ := message.TLVValue(r.DE48, message.TagQRState)
			fmt.Fprintf(env.Stdout, "  ORDER=%s  STATE=%s", esc(order), esc(state))
		}
		what := describeRC(r.RC)
		if r.RC == message.RCIssuerUnavailable && r.Reason == "journal-unavailable" {
			what = "the switch's journal unavailable: nothing approved, try again"
		}
		fmt.Fprintf(env.Stdout, "  (%s, %s)\n", what, time.Since(start).Round(time.Microsecond))
		if payload, ok := message.TLVValue(r.DE48, message.TagQRPayload); ok {
			fmt.Fprintf(env.Stdout, "QR %s\n", esc(payload))
		}
		// A merchant named in another script: QP is the code without its name, QU
		// the whole code (docs/terminal-interface.md).
		if whole, ok := message.TLVValue(r.DE48, message.TagQRPayloadUTF8); ok {
			if b, err := base64.StdEncoding.DecodeString(whole); err == nil {
				fmt.Fprintf(env.Stdout, "QR (UTF-8) %s\n", esc(string(b)))
			} else {
				fmt.Fprintf(env.Stdout, "QU %s (not base64: %v)\n", esc(whole), err)
			}
		}
	}
	return 0
}

// applyResend makes t a resend of the request whose answer printed original
// (ORIGINAL=: MTI, STAN and DE 7, 20 digits): t takes its STAN and transmission
// time, so that the duplicate key (DE 41 + 11 + 7) and DE 12/13 are the first
// request's. A --stan other than the original's, or an original of another
// message type than kind sends, is refused.
func applyResend(t *termclient.Txn, kind, original, stan string, now time.Time) error {
	if len(original) != 20 || strings.Trim(original, "0123456789") != "" {
		return fmt.Errorf("%q: want the 20 digits the first answer printed in ORIGINAL= (MTI, STAN and DE 7)", original)
	}
	mti, origSTAN, de7 := original[:4], original[4:10], original[10:]
	if !slices.Contains([]string{"purchase", "preauth", "refund", "balance"}, kind) {
		return fmt.Errorf("term %s does not resend; purchase, preauth, refund and balance do", kind)
	}
	if want := cmp.Or(t.MTI, "0200"); mti != want {
		return fmt.Errorf("%q is a %s's, and term %s sends %s", original, mti, kind, want)
	}
	if stan != "" && stan != origSTAN {
		return fmt.Errorf("--stan %s differs from the original's STAN %s: give one or the other", stan, origSTAN)
	}
	at, err := message.ParseDE7(de7, now)
	if err != nil {
		return fmt.Errorf("%q: %w", original, err)
	}
	t.STAN, t.Time = origSTAN, at
	return nil
}

// changeTPK sends a working key change (0800/161) for t's terminal, with its
// identity, and returns the new TPK that the switch sent under the demo TMK.
func changeTPK(env *Env, addr string, d message.Dialect, t termclient.Txn, timeout time.Duration) (string, error) {
	m, err := termclient.Build(termclient.Txn{MTI: "0800", NetCode: "161", TID: t.TID, MID: t.MID, STAN: fmt.Sprintf("%06d", time.Now().UnixNano()/1000%999999+1),
		TLV: demoIdentity[t.TID], Time: time.Now()}, d)
	if err != nil {
		return "", err
	}
	c, err := termclient.Dial(addr, d, nil)
	if err != nil {
		return "", err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(env.Ctx, timeout)
	defer cancel()
	resp, err := c.Send(ctx, m, nil)
	if err != nil {
		return "", err
	}
	r, err := termclient.Decode(resp)
	if err != nil {
		return "", err
	}
	wp, _ := message.TLVValue(r.DE48, message.TagPINKey)
	if r.RC != message.RCApproved || wp == "" {
		return "", fmt.Errorf("answered %s %s", r.RC, r.Reason)
	}
	return termclient.WorkingKey(demoTMK, wp)
}

func describeRC(rc string) string {
	if d, ok := rcText[rc]; ok {
		return d
	}
	return "issuer code"
}

var rcText = map[string]string{
	"00": "approved", "03": "invalid merchant", "05": "do not honour", "12": "invalid transaction",
	"13": "invalid amount", "14": "invalid card number", "15": "no such issuer", "25": "original not found",
	"30": "format error", "51": "insufficient funds", "54": "expired card", "55": "incorrect PIN",
	"57": "not permitted to cardholder", "58": "not permitted to terminal", "59": "suspected fraud",
	"61": "exceeds amount limit", "63": "security violation", "65": "exceeds frequency limit",
	"91": "issuer unavailable", "94": "duplicate transmission", "95": "reconciliation error", "96": "system malfunction",
}
