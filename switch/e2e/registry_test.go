package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

func TestBindingChecksOverTCP(t *testing.T) {
	f := startDemo(t, nil)
	cases := []struct {
		name   string
		tx     termclient.Txn
		rc, rs string
	}{
		{"honest terminal", pos(1000), "00", ""},
		{"unknown terminal", termclient.Txn{PAN: "4761739001010119", Amount: 1000, Expiry: "2912", TID: "TX999999", MID: "000000000000001"}, "58", "terminal-unknown"},
		{"suspended terminal", termclient.Txn{PAN: "4761739001010119", Amount: 1000, Expiry: "2912", TID: "T0000003", MID: "000000000000001",
			TLV: [][2]string{{"DI", "SN-T0000003"}, {"SI", "89860000000000000003"}, {"IM", "860000000000003"}, {"GL", "39.904200,116.407400"}}}, "58", "terminal-suspended"},
		{"frozen merchant", termclient.Txn{PAN: "4761739001010119", Amount: 1000, Expiry: "2912", TID: "T0000009", MID: "000000000000009",
			TLV: [][2]string{{"DI", "SN-T0000009"}, {"SI", "89860000000000000009"}, {"IM", "860000000000009"}, {"GL", "39.904200,116.407400"}}}, "03", "merchant-frozen"},
		{"terminal swapped to another merchant", func() termclient.Txn { x := pos(1000); x.MID = "000000000000002"; return x }(), "03", "merchant-mismatch"},
		{"other device", pos(1000, [2]string{"DI", "SN-STOLEN01"}), "59", "device-mismatch"},
		{"swapped SIM", pos(1000, [2]string{"SI", "89860000000000009999"}), "59", "sim-mismatch"},
		{"other IMEI", pos(1000, [2]string{"IM", "860000000009999"}), "59", "imei-mismatch"},
		{"carried off to Shanghai", pos(1000, [2]string{"GL", "31.230400,121.473700"}), "59", "location-out-of-range"},
		{"within the radius", pos(1000, [2]string{"GL", "39.908000,116.407400"}), "00", ""},
		{"identity missing (policy decline)", pos(1000, [2]string{"SI", "-"}), "59", "identity-missing"},
		{"malformed GL", pos(1000, [2]string{"GL", "north"}), "30", "de48-GL-malformed"},
	}
	for _, c := range cases {
		r := f.send(c.tx)
		if r.RC != c.rc || r.Reason != c.rs {
			t.Errorf("%s: rc %s rs %q, want %s %q", c.name, r.RC, r.Reason, c.rc, c.rs)
		}
	}
	// Every binding violation left an incident, visible in the CLI and the API.
	out, code := f.cli(tokOperator, "incident", "list", "--json")
	if code != 0 {
		t.Fatal(out)
	}
	for _, reason := range []string{"merchant-mismatch", "device-mismatch", "sim-mismatch", "imei-mismatch", "location-out-of-range", "identity-missing"} {
		if !strings.Contains(out, reason) {
			t.Errorf("no incident for %s in %s", reason, out)
		}
	}
	req, _ := http.NewRequest("GET", "http://"+f.s.AdminAddr()+"/api/v1/incidents", nil)
	req.Header.Set("Authorization", "Bearer "+tokOperator)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var incidents []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&incidents); err != nil || len(incidents) < 6 {
		t.Fatalf("API incidents: %d %v", len(incidents), err)
	}
	resp.Body.Close()
}

func TestNetworkAndVersionPolicyOverTCP(t *testing.T) {
	f := startDemo(t, nil)
	f.requestAndApprove("terminal", "change", "T0000001", "--networks", "10.0.0.0/8")
	if r := f.send(pos(1000)); r.RC != "58" || r.Reason != "network-denied" {
		t.Fatalf("outside allowed networks: %+v", r)
	}
	f.requestAndApprove("terminal", "change", "T0000001", "--networks", "127.0.0.0/8", "--min-app-version", "1.2.0")
	if r := f.send(pos(1000)); r.RC != "58" || r.Reason != "app-version-low" {
		t.Fatalf("old application: %+v", r)
	}
	if r := f.send(pos(1000, [2]string{"AV", "1.10.0"})); r.RC != "00" {
		t.Fatalf("new application from an allowed network: %+v", r)
	}
}

func TestSuspensionAndFreezeTakeEffectAtOnce(t *testing.T) {
	f := startDemo(t, nil)
	if r := f.send(pos(1000)); r.RC != "00" {
		t.Fatalf("before: %+v", r)
	}
	// The requester cannot approve their own change.
	out, _ := f.cli(tokOperator, "terminal", "suspend", "T0000001", "--reason", "reported stolen")
	id := changeID(t, out)
	if r := f.send(pos(1000)); r.RC != "00" {
		t.Fatalf("a requested but unapproved suspension must not act: %+v", r)
	}
	if out, code := f.cli(tokOperator, "change", "approve", id); code == 0 {
		t.Fatalf("an operator approved: %s", out)
	}
	if out, code := f.cli(tokReviewer, "change", "approve", id); code != 0 {
		t.Fatal(out)
	}
	if r := f.send(pos(1000)); r.RC != "58" || r.Reason != "terminal-suspended" {
		t.Fatalf("after approved suspension: %+v", r)
	}
	f.requestAndApprove("terminal", "resume", "T0000001")
	if r := f.send(pos(1000)); r.RC != "00" {
		t.Fatalf("after resume: %+v", r)
	}
	f.requestAndApprove("merchant", "freeze", "000000000000001", "--reason", "chargebacks")
	if r := f.send(pos(1000)); r.RC != "03" || r.Reason != "merchant-frozen" {
		t.Fatalf("after freeze: %+v", r)
	}
	out, code := f.cli(tokAnalyst, "oplog", "--json")
	if code != 0 || !strings.Contains(out, "merchant.freeze") || !strings.Contains(out, "terminal.suspend") || !strings.Contains(out, "demo-reviewer") {
		t.Fatalf("oplog: %s", out)
	}
}

// TestReversalAndKeyChangeChecked: a reversal and a sign-on or key change pass the
// terminal checks its transactions pass. Found by an adversarial trial: a 0400 from
// another device reversed T0000001's approval, one from an unknown terminal named a
// future original so that it was declined on arrival, one naming itself waited 30 s,
// and a 0800/161 without DE 48 rotated T0000001's PIN key.
func TestReversalAndKeyChangeChecked(t *testing.T) {
	f := startDemo(t, nil)
	now := time.Now()
	orig := pos(1000)
	orig.STAN, orig.Time = "400001", now
	first := f.send(orig)
	if first.RC != "00" {
		t.Fatalf("purchase: %+v", first)
	}
	reversal := func(tx termclient.Txn, stan, origSTAN string, at time.Time) termclient.Txn {
		tx.MTI, tx.STAN, tx.Time = "0400", stan, now
		tx.Original = termclient.OriginalData("0200", origSTAN, message.FormatDE7(at))
		return tx
	}
	if r := f.send(reversal(pos(1000, [2]string{"DI", "SN-EVIL0001"}), "400002", "400001", now)); r.RC != "59" || r.Reason != "device-mismatch" {
		t.Errorf("reversal from another device: %+v", r)
	}
	stranger := termclient.Txn{PAN: "4761739001010119", Amount: 1000, Expiry: "2912", TID: "T0000001", MID: "000000000000001"}
	if r := f.send(reversal(stranger, "400003", "400009", now.Add(3*time.Second))); r.RC != "59" || r.Reason != "identity-missing" {
		t.Errorf("reversal without the terminal's identity: %+v", r)
	}
	self := reversal(pos(1000), "400004", "400004", now)
	start := time.Now()
	if r := f.send(self); r.RC != "12" || r.Reason != "reversal-names-itself" {
		t.Errorf("reversal naming itself: %+v after %v", r, time.Since(start))
	}
	// The original the stranger named arrives: approved, not reversed-before-arrival.
	later := pos(1000)
	later.STAN, later.Time = "400009", now.Add(3*time.Second)
	if r := f.send(later); r.RC != "00" {
		t.Errorf("original named by the stranger's reversal: %+v", r)
	}
	if rec, err := f.s.Journal.Get(first.RRN); err != nil || rec.ReversedBy != "" {
		t.Fatalf("purchase %s after refused reversals: %v, reversed by %q", first.RRN, err, rec.ReversedBy)
	}
	if r := f.send(reversal(pos(1000), "400005", "400001", now)); r.RC != "00" {
		t.Fatalf("the terminal's own reversal: %+v", r)
	}
	if rec, err := f.s.Journal.Get(first.RRN); err != nil || rec.ReversedBy == "" {
		t.Fatalf("purchase %s not reversed by its terminal's reversal (%v)", first.RRN, err)
	}

	keyChange := func(tags [][2]string) termclient.Result {
		return f.send(termclient.Txn{MTI: "0800", NetCode: message.NMKeyChange, TID: "T0000001", MID: "000000000000001",
			STAN: fmt.Sprintf("%06d", time.Now().UnixNano()%1000000), Time: time.Now(), TLV: tags})
	}
	if r := keyChange(nil); r.RC != "59" || r.Reason != "identity-missing" || strings.Contains(r.DE48, "WP") {
		t.Errorf("key change without DE 48: %+v", r)
	}
	if r := keyChange([][2]string{{"DI", "SN-EVIL0001"}, {"SI", "89860000000000000001"}, {"IM", "860000000000001"}}); r.RC != "59" || strings.Contains(r.DE48, "WP") {
		t.Errorf("key change from another device: %+v", r)
	}
	if r := keyChange(t1Identity); r.RC != "00" || !strings.Contains(r.DE48, "WP") {
		t.Errorf("the terminal's own key change: %+v", r)
	}
}
