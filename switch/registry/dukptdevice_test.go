package registry

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestDUKPTDevice: a terminal's DUKPT device (the KSN without its counter) goes in
// through the reviewed change path (CSV import, register, change of keys), is
// stored in one form (upper case, a whole KSN cut to its device, a TDES device's
// 15th digit without the counter's top bit), must be under its BDK's KSN prefix and
// needs PIN mode dukpt; the terminal list writes it, and KSNBound takes that
// device's KSNs only, whatever the counter.
func TestDUKPTDevice(t *testing.T) {
	keys := map[string]KeyInfo{
		DemoBDKRef:   {Type: "BDK", Owner: "FFFF9876543210E"},
		"BDK.FFFF98": {Type: "BDK", Owner: "FFFF98"},
		"BDK.AES":    {Type: "BDK", Owner: "1234567890123456"},
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
	if d, _ := f.reg.Terminal("T0000002"); d.Keys.DUKPTDevice != DemoDUKPTDevice {
		t.Fatalf("demo T0000002's DUKPT device %q, want %s", d.Keys.DUKPTDevice, DemoDUKPTDevice)
	}
	csv := "terminal_id,merchant_id,kind,pin_mode,bdk,dukpt_device\n" +
		"T4100001,000000000000001,pos,dukpt,BDK.FFFF9876543210E,ffff9876543210f\n" + // good: stored FFFF9876543210E
		"T4100002,000000000000001,pos,dukpt,BDK.FFFF98,FFFF9876543211E00042\n" + // good: a whole KSN
		"T4100003,000000000000001,pos,dukpt,BDK.AES,123456789012345600000007\n" + // good: an AES KSN
		"T4100004,000000000000001,pos,dukpt,BDK.FFFF9876543210E,AAAA9876543210E\n" +
		"T4100005,000000000000001,pos,,,FFFF9876543210E\n" +
		"T4100006,000000000000001,pos,dukpt,BDK.FFFF98,FFFF98765432\n" +
		"T4100007,000000000000001,pos,dukpt,BDK.FFFF98,FFFF9876543210G\n" +
		"T4100008,000000000000001,pos,dukpt,BDK.FFFF98,\n" // good: bound by its BDK only
	rep, err := f.reg.ImportTerminals(alice, strings.NewReader(csv), "", false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", "", "", "is not under the KSN prefix FFFF9876543210E", "without PIN mode dukpt", "want the device's KSN without its counter",
		"want the device's KSN without its counter", ""}
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
	if rep.Change == nil {
		t.Fatal("no change requested")
	}
	if _, err := f.reg.Approve(bob, rep.Change.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	for id, dev := range map[string]string{"T4100001": "FFFF9876543210E", "T4100002": "FFFF9876543211E", "T4100003": "1234567890123456", "T4100008": ""} {
		if tm, ok := f.reg.Terminal(id); !ok || tm.Keys.DUKPTDevice != dev {
			t.Errorf("%s stored with DUKPT device %q, want %q", id, tm.Keys.DUKPTDevice, dev)
		}
	}

	// KSNBound: the device's KSNs, in either case and past counter 0x100000; no
	// other device's, of no other length; any KSN without a device.
	t1, _ := f.reg.Terminal("T4100001")
	for ksn, ok := range map[string]bool{
		"FFFF9876543210E00001": true, "ffff9876543210e00001": true, "FFFF9876543210F1FFFF": true,
		"FFFF9876543211E00001": false, "FFFF9876543210C00001": false, "FFFF9876543210E000000001": false, "FFFF9876543210E": false, "": false,
	} {
		if got := t1.Keys.KSNBound(ksn); got != ok {
			t.Errorf("T4100001 KSNBound(%q) = %v, want %v", ksn, got, ok)
		}
	}
	if t3, _ := f.reg.Terminal("T4100003"); !t3.Keys.KSNBound("1234567890123456FFFE0000") || t3.Keys.KSNBound("1234567890123457FFFE0000") {
		t.Error("T4100003 (AES device 1234567890123456): KSNBound wrong")
	}
	if t8, _ := f.reg.Terminal("T4100008"); !t8.Keys.KSNBound("AAAA9876543210E00001") {
		t.Error("T4100008 without a device: KSNBound refused a KSN (the HSM checks the BDK's prefix)")
	}

	// A change of keys is checked the same way, when requested.
	t2, _ := f.reg.Terminal("T4100002")
	bad := t2.Keys
	bad.BDK = DemoBDKRef
	if _, err := f.reg.RequestChange(alice, Change{Op: OpTerminalChange, Target: "T4100002", TerminalPatch: &TerminalPatch{Keys: &bad}}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not under the KSN prefix") {
		t.Errorf("change to a BDK its device is not under: %v", err)
	}
	rebound := t2.Keys
	rebound.DUKPTDevice = "FFFF9876543299E"
	f.apply(t, Change{Op: OpTerminalChange, Target: "T4100002", TerminalPatch: &TerminalPatch{Keys: &rebound}})
	if tm, _ := f.reg.Terminal("T4100002"); tm.Keys.DUKPTDevice != "FFFF9876543299E" {
		t.Errorf("T4100002 rebound to %q", tm.Keys.DUKPTDevice)
	}

	// The terminal list writes the column, which an import reads back.
	var buf bytes.Buffer
	t1p, _ := f.reg.Terminal("T4100001")
	if err := WriteTerminalsCSV(&buf, []*Terminal{t1p}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], ",dukpt_device") || !strings.HasSuffix(lines[1], ",FFFF9876543210E") {
		t.Errorf("terminal CSV:\n%s", buf.String())
	}
}
