package registry

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestAlertRuleZeroThresholdRefused: a threshold left out of the JSON body is the
// default; an explicit zero is refused instead of silently becoming 24 h.
func TestAlertRuleZeroThresholdRefused(t *testing.T) {
	a := newAPIFixture(t)
	for _, body := range []string{`{"threshold":"0s"}`, `{"threshold":0}`, `{"threshold":"-1h"}`, `{"threshold":"30s"}`} {
		st, out := a.raw(t, "PUT", "/api/v1/alert-rules/zero", DemoOperatorToken, "application/json", body)
		if st != 400 || !strings.Contains(out, "threshold") {
			t.Errorf("PUT %s: %d %s, want 400 naming the threshold", body, st, out)
		}
	}
	if st, out := a.raw(t, "PUT", "/api/v1/alert-rules/dflt", DemoOperatorToken, "application/json", `{"filter":{"merchants":["000000000000001"]}}`); st != 200 {
		t.Fatalf("rule without a threshold: %d %s", st, out)
	}
	for _, ar := range a.reg.AlertRules() {
		if ar.ID == "dflt" && time.Duration(ar.Threshold) != DefaultOfflineThreshold {
			t.Errorf("rule without a threshold got %v, want %v", time.Duration(ar.Threshold), DefaultOfflineThreshold)
		}
		if ar.ID == "zero" {
			t.Errorf("rule with a zero threshold was stored: %+v", ar)
		}
	}
}

// TestImportRefusesBadKeyReferences: a key reference that names no key of the key
// store, or a key of another type (an issuer's ZPK as a terminal's TPK), is refused
// per row; an empty cell (the conventional reference, generated later) is accepted.
func TestImportRefusesBadKeyReferences(t *testing.T) {
	keys := map[string]KeyInfo{
		"T0000001.TPK":        {Type: "TPK", Owner: "T0000001"},
		"T0000001.TMK":        {Type: "TMK", Owner: "T0000001"},
		"demo.ZPK":            {Type: "ZPK", Owner: "demo"},
		"BDK.FFFF9876543210E": {Type: "BDK", Owner: "FFFF9876543210E"},
	}
	f := &fixture{dir: t.TempDir(), clock: &fakeClock{t: t0}, opts: Options{SeenFlushInterval: -1,
		Keys: func(id string) (KeyInfo, error) {
			if ki, ok := keys[id]; ok {
				return ki, nil
			}
			return KeyInfo{}, fmt.Errorf("key not found: %s", id)
		}}}
	f.open(t)
	t.Cleanup(func() { f.close(t) })
	if _, err := LoadDemo(f.reg); err != nil {
		t.Fatal(err)
	}
	csv := "terminal_id,merchant_id,kind,pin_mode,tpk,tmk,bdk\n" +
		"T4000001,000000000000001,pos,tpk,T0000001.TPK,T0000001.TMK,\n" + // good
		"T4000002,000000000000001,pos,tpk,NO.SUCH.KEY,,\n" +
		"T4000003,000000000000001,pos,tpk,demo.ZPK,,\n" +
		"T4000004,000000000000001,pos,tpk,,T0000001.TPK,\n" + // a TPK as the TMK
		"T4000005,000000000000001,pos,dukpt,,,BDK.FFFF9876543210E\n" + // good
		"T4000006,000000000000001,pos,tpk,,,\n" // good: T4000006/TPK, generated later
	rep, err := f.reg.ImportTerminals(alice, strings.NewReader(csv), "", true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", `tpk "NO.SUCH.KEY": key not found`, `tpk "demo.ZPK" is a ZPK of "demo", not a TPK`, `tmk "T0000001.TPK" is a TPK`, "", ""}
	if len(rep.Rows) != len(want) {
		t.Fatalf("report = %+v", rep)
	}
	for i, w := range want {
		row := rep.Rows[i]
		if w == "" && !row.OK {
			t.Errorf("line %d: refused: %s", row.Line, row.Error)
		}
		if w != "" && (row.OK || !strings.Contains(row.Error, w)) {
			t.Errorf("line %d: ok=%v error %q, want %q", row.Line, row.OK, row.Error, w)
		}
	}
	if rep.Accepted != 3 || rep.Rejected != 3 {
		t.Errorf("accepted %d, rejected %d; want 3 and 3", rep.Accepted, rep.Rejected)
	}
}
