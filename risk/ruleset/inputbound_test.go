package ruleset

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/risk/state"
)

// TestInputHeldToCostBounds: the sizes the load-time cost check assumes hold at
// run time, for rules and counter filters alike, whatever the caller filled: 504
// device findings (a full IF tag and a signed attestation's) are read as the
// first 500, strings over 999 bytes as their first 999 (cut at a character), and
// the caller's input is left as it was.
func TestInputHeldToCostBounds(t *testing.T) {
	dir := writeRules(t, map[string]string{"a.yaml": `
rules:
  - id: bounded
    condition: >-
      len(device.findings) == 500 && device.findings[0] == "root" && len(device.id) == 999 &&
      len(merchant.group) == 998 && len(terminal.app_version) == 999
    action: review
    reason: bounded
counters:
  - name: bounded_seen
    dimension: terminal
    window: 10m
    where: len(device.findings) == 500 && len(device.id) == 999
`})
	rs, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := purchase(1000)
	in.Device.Findings = append([]string{"root", "hook", "debugger", "emulator"}, strings.Split(strings.Repeat("x,", 499)+"x", ",")...)
	in.Device.ID = strings.Repeat("D", 2000)
	in.Merchant.Group = strings.Repeat("g", 997) + "é" + "tail" // the cut falls inside é
	in.Terminal.AppVersion = strings.Repeat("1", 999)
	if d := rs.evaluate(in, nil, nil, nil); d.Action != ActionReview || len(d.Errors) > 0 {
		t.Fatalf("decision %+v; want the bounded rule hit", d)
	}
	store := state.NewVelocity(nil, 0, 0)
	if errs := rs.Observe(in, Outcome{Approved: true, ResponseCode: "00"}, store); len(errs) > 0 {
		t.Fatal(errs)
	}
	if d := rs.evaluate(in, store, nil, nil); len(d.Errors) > 0 || d.Action != ActionReview {
		t.Fatalf("decision %+v", d)
	}
	c := rs.Counter("bounded_seen")
	key, _ := counterKey(c.dims, in)
	if got := store.Read(&c.spec, key, in.Txn.Time.UnixNano()); got != 1 {
		t.Errorf("bounded_seen %d, want 1: the filter saw the input bounded", got)
	}
	if len(in.Device.Findings) != 504 || len(in.Device.ID) != 2000 || !strings.HasSuffix(in.Merchant.Group, "tail") {
		t.Errorf("the caller's input changed: %d findings, device.id %d bytes", len(in.Device.Findings), len(in.Device.ID))
	}
}
