package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
)

// `switchyard term --tlv` can send a location (GL=lat,lon has a comma) to try the
// relocation check from the shell, in one flag or a repeated one (issue 12, item 4).
func TestTermCLISendsLocation(t *testing.T) {
	f := startDemo(t, nil)
	addr := f.s.ListenerAddr("ascii")
	term := func(tlv ...string) string {
		args := []string{"term", "purchase", "--addr", addr, "--tid", "T0000001", "--pan", "4761739001010119", "--amount", "1000"}
		for _, v := range tlv {
			args = append(args, "--tlv", v)
		}
		out, code := cliLocal(args...)
		if code != 0 {
			t.Fatalf("term %q: exit %d: %s", tlv, code, out)
		}
		return out
	}
	if out := term("DI=SN-T0000001,SI=89860000000000000001,IM=860000000000001,GL=31.230400,121.473700,AV=1.0.0"); !strings.Contains(out, "RC=59") || !strings.Contains(out, "RS=location-out-of-range") {
		t.Errorf("carried off to Shanghai: %s", out)
	}
	if out := term("DI=SN-T0000001,SI=89860000000000000001", "GL=39.908000,116.407400", "IM=860000000000001,AV=1.0.0"); !strings.Contains(out, "RC=00") {
		t.Errorf("within the radius, repeated --tlv: %s", out)
	}
	if out, code := cliLocal("term", "purchase", "--addr", addr, "--tlv", "GL"); code == 0 || !strings.Contains(out, `"GL"`) {
		t.Errorf("malformed --tlv: exit %d: %s", code, out)
	}
}

// The README's SoftPOS purchase with a PIN works whatever the DUKPT counter: below
// 0x100000, from it on (the KSN's 15th digit turns from E to F), and at the largest
// valid counter (issue 12, item 1).
func TestTermCLIDUKPTCounterTopBit(t *testing.T) {
	f := startDemo(t, nil)
	addr := f.s.ListenerAddr("ascii")
	for i, ksn := range []string{"FFFF9876543210E00001", "FFFF9876543210F00000", "FFFF9876543210F00003", "FFFF9876543210FFF800"} {
		// A card each: the cash-out rule declines a card's fourth purchase at one merchant.
		pan := withLuhn(fmt.Sprintf("476173900202%03d", i))
		out, code := cliLocal("term", "purchase", "--addr", addr, "--tid", "T0000002", "--pan", pan, "--amount", "1000", "--pin", "1234", "--ksn", ksn)
		if code != 0 || !strings.Contains(out, "RC=00") {
			t.Errorf("KSN %s: exit %d: %s", ksn, code, out)
		}
	}
}

// withLuhn appends the Luhn check digit to the digits of body.
func withLuhn(body string) string {
	sum := 0
	for i := range len(body) {
		d := int(body[len(body)-1-i] - '0')
		if i%2 == 0 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return body + string(rune('0'+(10-sum%10)%10))
}

// `term` prints what `term reversal --original` needs (ORIGINAL=, 20 digits), and the
// reversal takes it: the purchase is reversed at the issuer, not "unknown".
func TestTermCLIReversalFromOriginal(t *testing.T) {
	f := startDemo(t, nil)
	addr := f.s.ListenerAddr("ascii")
	out, code := cliLocal("term", "purchase", "--addr", addr, "--tid", "T0000001", "--pan", "4761739001010119", "--amount", "1000")
	_, after, ok := strings.Cut(out, "ORIGINAL=")
	if code != 0 || !strings.Contains(out, "RC=00") || !ok || len(after) < 20 {
		t.Fatalf("purchase: exit %d: %s", code, out)
	}
	original := after[:20]
	rrn := strings.Fields(out[strings.Index(out, "RRN=")+4:])[0]
	if out, code := cliLocal("term", "reversal", "--addr", addr, "--tid", "T0000001", "--amount", "1000", "--original", original[:19]); code == 0 || !strings.Contains(out, "want 20 digits") {
		t.Errorf("19 digits: exit %d: %s", code, out)
	}
	if out, code := cliLocal("term", "reversal", "--addr", addr, "--tid", "T0000001", "--amount", "1000", "--original", original); code != 0 || !strings.Contains(out, "RC=00") {
		t.Fatalf("reversal: exit %d: %s", code, out)
	}
	rec, err := f.s.Journal.Get(rrn)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ReversedBy == "" {
		t.Fatalf("purchase %s not reversed by its reversal", rrn)
	}
}

// The README's cup purchase signs T0000001 in, which gives it a new TPK; once the old
// one's grace ended, `term purchase --pin` in the ASCII dialect got 63. It now changes
// the terminal's working key first (0800/161) and enciphers the PIN under the key it
// receives, as a terminal does. A terminal the switch refuses the key change (T0000003,
// suspended) still sends, under the initial demo TPK, and is declined for its own reason.
func TestTermCLIPINAfterCUPSignIn(t *testing.T) {
	f := startDemo(t, func(c *config.Config) {
		c.RulesDir = middayRules(t, time.Now())
		c.Security.KeyGrace = config.Duration(time.Nanosecond) // the superseded key is dead at once
	})
	out, code := cliLocal("term", "purchase", "--dialect", "cup", "--addr", f.s.ListenerAddr("cup"), "--pan", cupCard, "--amount", "10.00", "--pin", "1234")
	if code != 0 || !strings.Contains(out, "0210 rc=00") {
		t.Fatalf("cup purchase: exit %d\n%s", code, out)
	}
	addr := f.s.ListenerAddr("ascii")
	for i := range 2 {
		pan := withLuhn(fmt.Sprintf("476173900303%03d", i))
		out, code = cliLocal("term", "purchase", "--addr", addr, "--tid", "T0000001", "--pan", pan, "--amount", "1000", "--pin", "1234")
		if code != 0 || !strings.Contains(out, "RC=00") {
			t.Fatalf("ASCII purchase with a PIN after the cup sign-in (%d): exit %d: %s", i, code, out)
		}
	}
	// The load terminals' PINs are under LT.TPK, which T0000001's key changes do not
	// move (they shared T0000001.TPK, and got 63 after its grace: a review).
	out, code = cliLocal("term", "purchase", "--addr", addr, "--tid", "LT000001", "--pan", withLuhn("476173900303200"), "--amount", "1000", "--pin", "1234")
	if code != 0 || !strings.Contains(out, "RC=00") {
		t.Fatalf("LT000001 with a PIN after T0000001's key changes: exit %d: %s", code, out)
	}
	out, _ = cliLocal("term", "purchase", "--addr", addr, "--tid", "T0000003", "--pan", withLuhn("476173900303100"), "--amount", "1000", "--pin", "1234")
	if !strings.Contains(out, "RC=58") || !strings.Contains(out, "initial demo TPK") {
		t.Fatalf("suspended T0000003: %s", out)
	}
}

// `switchyard term signon` signs the demo terminals on: a sign-on (0800/001) passes the
// binding checks since 5 December 2026, so it carries the terminal's identity (the demo
// one, or --tlv) as a purchase does; it was sent without DE 48 and answered 59
// identity-missing for every terminal. A swapped SIM given with --tlv is refused.
func TestTermCLISignOn(t *testing.T) {
	f := startDemo(t, nil)
	addr := f.s.ListenerAddr("ascii")
	for _, tid := range []string{"T0000001", "T0000002"} {
		if out, code := cliLocal("term", "signon", "--addr", addr, "--tid", tid); code != 0 || !strings.Contains(out, "RC=00") {
			t.Errorf("term signon --tid %s: exit %d: %s", tid, code, out)
		}
	}
	out, code := cliLocal("term", "signon", "--addr", addr, "--tlv", "DI=SN-T0000001,SI=89860000000000009999,IM=860000000000001,GL=39.904200,116.407400,AV=1.0.0")
	if code != 0 || !strings.Contains(out, "RC=59") || !strings.Contains(out, "RS=sim-mismatch") {
		t.Errorf("term signon with a swapped SIM: exit %d: %s", code, out)
	}
	for _, kind := range []string{"echo", "signoff"} {
		if out, code := cliLocal("term", kind, "--addr", addr); code != 0 || !strings.Contains(out, "RC=00") {
			t.Errorf("term %s: exit %d: %s", kind, code, out)
		}
	}
}

// `switchyard term settle` closes a batch in the ASCII dialects too (0500/920000, the
// totals in DE 48 BT beside the terminal's identity), so the batch's terminal checks
// can be tried from the shell: it answered "only with --dialect cup", and the cup
// client signs in first, which a suspended terminal is refused before its batch. The
// purchase's totals match (00), the same again after the close do not (95
// batch-totals-differ), the MAC'd SoftPOS closes its empty batch, and the suspended
// T0000003 is answered 58 terminal-suspended.
func TestTermCLISettleASCII(t *testing.T) {
	f := startDemo(t, func(c *config.Config) { c.RulesDir = middayRules(t, time.Now()) })
	addr := f.s.ListenerAddr("ascii")
	settle := func(tid, totals, want string) {
		t.Helper()
		out, code := cliLocal("term", "settle", "--addr", addr, "--tid", tid, "--totals", totals)
		if code != 0 || !strings.Contains(out, "0510  RC=") || !strings.Contains(out, want) {
			t.Errorf("term settle --tid %s --totals %s: exit %d, want %q: %s", tid, totals, code, want, out)
		}
	}
	if out, code := cliLocal("term", "purchase", "--addr", addr, "--tid", "T0000001", "--pan", withLuhn("476173900404000"), "--amount", "1000"); code != 0 || !strings.Contains(out, "RC=00") {
		t.Fatalf("purchase: exit %d: %s", code, out)
	}
	settle("T0000001", "1,1000,0,0", "RC=00")
	settle("T0000001", "1,1000,0,0", "RC=95  RRN=")
	settle("T0000001", "1,1000,0,0", "RS=batch-totals-differ")
	settle("T0000002", "0,0,0,0", "RC=00")
	settle("T0000003", "0,0,0,0", "RS=terminal-suspended")
	if out, code := cliLocal("term", "settle", "--addr", addr, "--totals", "1,2"); code == 0 || !strings.Contains(out, "PURCHASECOUNT,PURCHASESUM,REFUNDCOUNT,REFUNDSUM") {
		t.Errorf("malformed --totals: exit %d: %s", code, out)
	}
}
