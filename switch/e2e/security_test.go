package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/switch/attest"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

const (
	demoTPK = "C1D0F8FB4958670DBA40AB1F3752EF0D"
	demoTMK = "2315208C9110AD40F5B83C4A6E1D7F92"
	demoBDK = "0123456789ABCDEFFEDCBA9876543210"
	demoTAK = "404142434445464748494A4B4C4D4E4F"
)

var ksnCounter atomic.Uint32

// softpos is a purchase from the demo SoftPOS T0000002 with a fresh attestation token
// signed by the demo attestation service (bound to its TID, STAN, amount and DE 7).
// An extra AT tag sends that legacy, unsigned attestation instead.
func softpos(amount int64, extra ...[2]string) termclient.Txn {
	return softposAt(amount, time.Now(), extra...)
}

// softposAt is softpos with the token issued at iat.
func softposAt(amount int64, iat time.Time, extra ...[2]string) termclient.Txn {
	tags := [][2]string{{"DI", "SP-T0000002"}, {"IM", "860000000000002"}, {"GL", "31.230400,121.473700"}, {"AV", "1.0.0"}, {"IF", ""}}
	legacy := ""
	for _, e := range extra {
		if e[0] == "AT" {
			legacy = e[1]
			continue
		}
		for i := range tags {
			if tags[i][0] == e[0] {
				tags[i][1] = e[1]
			}
		}
	}
	tx := termclient.Txn{PAN: "4761739001010267", Amount: amount, Expiry: "2912", TID: "T0000002", MID: "000000000000002",
		STAN: termclient.NextSTAN(), Time: time.Now()}
	if legacy != "" {
		tx.TLV = append(tags, [2]string{"AT", legacy})
		return tx
	}
	tok, err := termclient.AttestToken(attest.DemoSigner(), tx, "SP-T0000002", "1.0.0", termclient.IntegrityOf(nil), iat)
	if err != nil {
		panic(err) // the demo key signs
	}
	tx.TLV = append(tags, [2]string{"AJ", tok})
	return tx
}

func nextKSN() string { return fmt.Sprintf("FFFF9876543210E%05X", ksnCounter.Add(1)) }

func withDUKPTPIN(t *testing.T, tx termclient.Txn, pin string) termclient.Txn {
	t.Helper()
	ksn := nextKSN()
	b, err := termclient.PINBlockDUKPT(demoBDK, ksn, pin, tx.PAN)
	if err != nil {
		t.Fatal(err)
	}
	tx.PINBlock = b
	tx.TLV = append(tx.TLV, [2]string{"KS", ksn})
	return tx
}

func TestPINsReachTheIssuerUnderItsZPK(t *testing.T) {
	f := startDemo(t, nil)
	mac, _ := termclient.RetailMAC(demoTAK)
	// TPK PIN from the countertop POS.
	tx := pos(1000)
	tx.PINBlock, _ = termclient.PINBlockTPK(demoTPK, "1234", tx.PAN)
	if r := f.send(tx); r.RC != "00" {
		t.Fatalf("TPK PIN 1234: %+v", r)
	}
	tx = pos(1000)
	tx.PAN = "4761739001010267"
	tx.PINBlock, _ = termclient.PINBlockTPK(demoTPK, "9999", tx.PAN)
	if r := f.send(tx); r.RC != "55" {
		t.Fatalf("TPK wrong PIN: %+v", r)
	}
	// DUKPT PIN from the SoftPOS, with its MAC; the answer carries a MAC too.
	if r := sendOn(t, f.c, withDUKPTPIN(t, softpos(2000), "1234"), mac); r.RC != "00" || r.MAC == "" {
		t.Fatalf("DUKPT PIN 1234: %+v", r)
	}
	if r := sendOn(t, f.c, withDUKPTPIN(t, softpos(2000), "4321"), mac); r.RC != "55" {
		t.Fatalf("DUKPT wrong PIN: %+v", r)
	}
	// A replayed KSN is refused.
	tx = softpos(2000)
	b, _ := termclient.PINBlockDUKPT(demoBDK, "FFFF9876543210E00001", "1234", tx.PAN)
	tx.PINBlock, tx.TLV = b, append(tx.TLV, [2]string{"KS", "FFFF9876543210E00001"})
	if r := sendOn(t, f.c, tx, mac); r.RC != "63" || r.Reason != "dukpt-replay" {
		t.Fatalf("replayed KSN: %+v", r)
	}
}

func TestResponseMACVerifies(t *testing.T) {
	f := startDemo(t, nil)
	mac, _ := termclient.RetailMAC(demoTAK)
	m, _ := termclient.Build(softpos(1500), message.DialectASCII)
	body, _ := message.Pack(m, mac)
	tid, _ := m.GetString(41)
	stan, _ := m.GetString(11)
	raw, err := f.c.Exchange(context.Background(), tid, stan, body)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := mac(raw[:len(raw)-16])
	if got := string(raw[len(raw)-16:]); got != strings.ToUpper(hex.EncodeToString(want[:])) {
		t.Fatalf("response MAC %s, want %X", got, want)
	}
}

func TestSoftPOSIntegrity(t *testing.T) {
	// 1,000.00 at the micro merchant is also what the cash-out pack declines between
	// 23:00 and 05:00 local time: run at local midday, whatever the hour.
	f := startDemo(t, func(c *config.Config) { c.RulesDir = middayRules(t, time.Now()) })
	mac, _ := termclient.RetailMAC(demoTAK)
	bad, _ := termclient.RetailMAC("00000000000000000000000000000000")
	before := f.sim().Stats.Requests.Load()
	if r := sendOn(t, f.c, softpos(1000), bad); r.RC != "63" || r.Reason != "mac-invalid" || r.MAC != "" {
		t.Fatalf("tampered MAC: %+v", r)
	}
	if r := sendOn(t, f.c, softpos(1000), nil); r.RC != "63" || r.Reason != "mac-missing" {
		t.Fatalf("missing MAC: %+v", r)
	}
	if n := f.sim().Stats.Requests.Load(); n != before {
		t.Fatalf("a message with a bad MAC was forwarded (%d requests)", n-before)
	}
	stale := softposAt(1000, time.Now().Add(-5*time.Minute))
	if r := sendOn(t, f.c, stale, mac); r.RC != "58" || r.Reason != "attestation-stale" {
		t.Fatalf("stale attestation: %+v", r)
	}
	// The legacy unsigned AT is refused unless the terminal's policy allows it.
	if r := sendOn(t, f.c, softpos(1000, [2]string{"AT", fmt.Sprintf("%d:OK", time.Now().Unix())}), mac); r.RC != "58" || r.Reason != "attestation-legacy-refused" {
		t.Fatalf("legacy attestation: %+v", r)
	}
	if r := sendOn(t, f.c, softpos(100001), mac); r.RC != "61" {
		t.Fatalf("SoftPOS above 1000.00: %+v", r)
	}
	if r := sendOn(t, f.c, softpos(100000), mac); r.RC != "00" {
		t.Fatalf("SoftPOS at 1000.00: %+v", r)
	}
	// A rooted phone: 59, suspended at once, and refused from then on.
	if r := sendOn(t, f.c, softpos(1000, [2]string{"IF", "root,hook"}), mac); r.RC != "59" || r.Reason != "device-compromised" {
		t.Fatalf("rooted: %+v", r)
	}
	if r := sendOn(t, f.c, softpos(1000), mac); r.RC != "58" || r.Reason != "terminal-suspended" {
		t.Fatalf("after rooted: %+v", r)
	}
	out, _ := f.cli(tokOperator, "incident", "list", "--json")
	if !strings.Contains(out, "device-compromised") || !strings.Contains(out, "root") {
		t.Fatalf("incident: %s", out)
	}
	out, _ = f.cli(tokAnalyst, "oplog", "--json")
	if !strings.Contains(out, "system") {
		t.Fatalf("the automatic suspension is not in the oplog: %s", out)
	}
}

func TestTerminalKeyChange(t *testing.T) {
	f := startDemo(t, nil)
	r := f.send(termclient.Txn{MTI: "0800", NetCode: "161", TID: "T0000001", TLV: t1Identity})
	if r.RC != "00" {
		t.Fatalf("0810: %+v", r)
	}
	tl, err := message.ParseTLV(r.DE48)
	if err != nil || tl.PINKey == "" {
		t.Fatalf("no WP in %q: %v", r.DE48, err)
	}
	enc, kcvHex, ok := strings.Cut(tl.PINKey, ":")
	if !ok {
		t.Fatalf("WP %q is not HEXKEY:KCV", tl.PINKey)
	}
	// Decrypt the new TPK under the TMK, as the terminal does, and check its KCV.
	tmk, _ := hex.DecodeString(demoTMK)
	encB, _ := hex.DecodeString(enc)
	newTPK := decryptECB(t, tmk, encB)
	k, _ := kcv.TDES(newTPK)
	if !strings.EqualFold(k.String(), kcvHex) {
		t.Fatalf("KCV of the decrypted key %s, sent %s", k.String(), kcvHex)
	}
	// PINs under the new key work, and under the old one during the grace period.
	for _, key := range []string{hex.EncodeToString(newTPK), demoTPK} {
		tx := pos(1000)
		tx.PAN = testPAN(7)
		tx.PINBlock, _ = termclient.PINBlockTPK(key, "1234", tx.PAN)
		if r := f.send(tx); r.RC != "00" {
			t.Fatalf("PIN under %s...: %+v", key[:4], r)
		}
	}
}

func TestZoneKeyChange(t *testing.T) {
	f := startDemo(t, nil)
	out, code := f.cli(tokAdmin, "zone-key-change", "demo")
	if code != 0 || !strings.Contains(out, "KCV") {
		t.Fatalf("zone key change: %s", out)
	}
	// PIN translation now uses the new ZPK, which the issuer took.
	tx := pos(1000)
	tx.PAN = testPAN(8)
	tx.PINBlock, _ = termclient.PINBlockTPK(demoTPK, "1234", tx.PAN)
	if r := f.send(tx); r.RC != "00" {
		t.Fatalf("PIN after zone key change: %+v", r)
	}
	if _, code := f.cli(tokOperator, "zone-key-change", "demo"); code == 0 {
		t.Fatal("an operator changed a zone key")
	}
}
