package registry

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/syncbuf"
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
	if _, err := LoadDemoFleet(f.reg, testLoadTerminals); err != nil {
		t.Fatal(err)
	}
	if d, _ := f.reg.Terminal("T0000002"); d.Keys.DUKPTDevice != DemoDUKPTDevice {
		t.Fatalf("demo T0000002's DUKPT device %q, want %s", d.Keys.DUKPTDevice, DemoDUKPTDevice)
	}
	// T4100001 below takes the demo device (the only TDES device under its BDK's
	// 15-digit prefix): T0000002 lets it go first (TestDUKPTDeviceOneTerminal).
	d2, _ := f.reg.Terminal("T0000002")
	unbound := d2.Keys
	unbound.DUKPTDevice = ""
	f.apply(t, Change{Op: OpTerminalChange, Target: "T0000002", TerminalPatch: &TerminalPatch{Keys: &unbound}})
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

// dukptTerminal is a new DUKPT terminal of merchant 1 under the demo BDK, bound to
// DUKPT device dev ("" for none).
func dukptTerminal(id, dev string) *Terminal {
	return &Terminal{ID: id, MerchantID: "000000000000001", Kind: KindPOS,
		Keys: KeyRefs{BDK: DemoBDKRef, PINMode: PINModeDUKPT, DUKPTDevice: dev}}
}

// wantBoundTo checks that err refuses a DUKPT device as already bound to terminal
// other (ErrConflict, naming it).
func wantBoundTo(t *testing.T, what string, err error, other string) {
	t.Helper()
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "already bound to terminal "+other) {
		t.Errorf("%s: %v; want a conflict naming terminal %s", what, err, other)
	}
}

// TestDUKPTDeviceOneTerminal: a DUKPT device is bound to one terminal. Nothing
// stopped two terminals registering the same dukpt_device, each then taking the
// other's device's KSNs (and PIN blocks). Now a register, a change of keys and a CSV
// import that give a device already bound to another terminal (not closed) are
// refused with a conflict naming it, whatever form the device is given in; so is
// the second of two rows of one import, naming the first's line and terminal, and
// the second of two requests that were each possible when requested: the check is
// made again at approval, as every other check of compute. A closed terminal's
// device, and one its terminal was unbound from, is free again.
func TestDUKPTDeviceOneTerminal(t *testing.T) {
	f := newFixture(t)
	const devX, devY = "FFFF9876543211E", "FFFF9876543212E"

	// Register: the demo device, given as a whole KSN in lower case.
	_, err := f.reg.RequestChange(alice, Change{Op: OpTerminalRegister, Terminal: dukptTerminal("T4200001", "ffff9876543210e00007")})
	wantBoundTo(t, "register with T0000002's device", err, "T0000002")

	// Change of keys.
	f.apply(t, Change{Op: OpTerminalRegister, Terminal: dukptTerminal("T4200001", "")})
	f.apply(t, Change{Op: OpTerminalRegister, Terminal: dukptTerminal("T4200002", "")})
	onto := func(id, dev string) Change {
		k := dukptTerminal(id, dev).Keys
		return Change{Op: OpTerminalChange, Target: id, TerminalPatch: &TerminalPatch{Keys: &k}}
	}
	_, err = f.reg.RequestChange(alice, onto("T4200001", DemoDUKPTDevice))
	wantBoundTo(t, "change onto T0000002's device", err, "T0000002")

	// CSV import: against the registry, and row against row.
	csv := "terminal_id,merchant_id,kind,pin_mode,bdk,dukpt_device\n" +
		"T4200003,000000000000001,pos,dukpt,BDK.FFFF9876543210E," + devX + "\n" +
		"T4200004,000000000000001,pos,dukpt,BDK.FFFF9876543210E,ffff9876543211e00001\n" + // devX again, as a KSN
		"T4200005,000000000000001,pos,dukpt,BDK.FFFF9876543210E," + DemoDUKPTDevice + "\n" +
		"T4200006,000000000000001,pos,dukpt,BDK.FFFF9876543210E,\n" // no device: no claim
	rep, err := f.reg.ImportTerminals(alice, strings.NewReader(csv), "", false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", "DUKPT device FFFF9876543211E is terminal T4200003's on line 2 already", "already bound to terminal T0000002", ""}
	if len(rep.Rows) != len(want) {
		t.Fatalf("import report %+v", rep)
	}
	for i, w := range want {
		if row := rep.Rows[i]; (w == "") != row.OK || !strings.Contains(row.Error, w) {
			t.Errorf("line %d: ok=%v error %q, want %q", row.Line, row.OK, row.Error, w)
		}
	}
	if rep.Change == nil || len(rep.Change.Terminals) != 2 {
		t.Fatalf("import change %+v, want the 2 good rows", rep.Change)
	}
	// Two rows of one import request made through the API, not the CSV report.
	_, err = f.reg.RequestChange(alice, Change{Op: OpTerminalImport, Terminals: []Terminal{*dukptTerminal("T4200007", devY), *dukptTerminal("T4200008", devY)}})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "terminal T4200008: DUKPT device "+devY+" is terminal T4200007's in this import too") {
		t.Errorf("import of two terminals with one device: %v", err)
	}

	// Two pending requests, each possible alone: the second approved is refused.
	c1, err := f.reg.RequestChange(alice, onto("T4200001", devY))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := f.reg.RequestChange(alice, onto("T4200002", devY))
	if err != nil {
		t.Fatal(err)
	}
	c3, err := f.reg.RequestChange(alice, Change{Op: OpTerminalRegister, Terminal: dukptTerminal("T4200009", devY)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(bob, c1.ID, ""); err != nil {
		t.Fatal(err)
	}
	if pv, _ := f.reg.GetChange(c2.ID); pv == nil || !strings.Contains(pv.Error, "already bound to terminal T4200001") {
		t.Errorf("preview of %s after %s: %+v; want its error to name T4200001", c2.ID, c1.ID, pv)
	}
	_, err = f.reg.Approve(bob, c2.ID, "")
	wantBoundTo(t, "approval of the second change onto one device", err, "T4200001")
	_, err = f.reg.Approve(bob, c3.ID, "")
	wantBoundTo(t, "approval of a register onto a device bound since", err, "T4200001")
	if t2, _ := f.reg.Terminal("T4200002"); t2.Keys.DUKPTDevice != "" {
		t.Errorf("T4200002 bound to %q after its refused approval", t2.Keys.DUKPTDevice)
	}
	// The import requested before T4200003 had devX: one of two pending imports
	// with the same device goes through.
	again, err := f.reg.RequestChange(alice, Change{Op: OpTerminalImport, Terminals: []Terminal{*dukptTerminal("T4200010", devX)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(bob, rep.Change.ID, ""); err != nil {
		t.Fatal(err)
	}
	_, err = f.reg.Approve(bob, again.ID, "")
	wantBoundTo(t, "approval of a second import of one device", err, "T4200003")

	// A change of the terminal's other fields keeps its device; freed devices are
	// free: T4200001 closed, T0000002 unbound.
	model := "A920"
	f.apply(t, Change{Op: OpTerminalChange, Target: "T4200001", TerminalPatch: &TerminalPatch{Model: &model}})
	f.apply(t, Change{Op: OpTerminalClose, Target: "T4200001"})
	f.apply(t, onto("T4200002", devY))
	t2, _ := f.reg.Terminal("T0000002")
	k := t2.Keys
	k.DUKPTDevice = ""
	f.apply(t, Change{Op: OpTerminalChange, Target: "T0000002", TerminalPatch: &TerminalPatch{Keys: &k}})
	f.apply(t, onto("T4200006", DemoDUKPTDevice))

	// The index is rebuilt the same from what is stored.
	f.reopen(t)
	for dev, ids := range map[string][]string{devX: {"T4200003"}, devY: {"T4200002"}, DemoDUKPTDevice: {"T4200006"}} {
		if got := f.reg.deviceTerminals(dev); !slices.Equal(got, ids) {
			t.Errorf("after a restart, device %s bound to %v, want %v", dev, got, ids)
		}
	}
	_, err = f.reg.RequestChange(alice, onto("T0000002", devX))
	wantBoundTo(t, "after a restart, change onto a bound device", err, "T4200003")
}

// TestDUKPTDeviceSharedBeforeLogged: records stored before the check that share a
// DUKPT device are listed at start, and a change of something else of one of them
// is not refused for it.
func TestDUKPTDeviceSharedBeforeLogged(t *testing.T) {
	var logs syncbuf.Buffer
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1, Logger: zerolog.New(&logs)})
	f.apply(t, Change{Op: OpTerminalRegister, Terminal: dukptTerminal("T4200001", "")})
	old, _ := f.reg.Terminal("T4200001")
	stored := *old
	stored.Keys.DUKPTDevice = DemoDUKPTDevice // what an older version let through
	f.close(t)
	db := openDB(t, f.dir)
	if err := db.Update(func(txn *badger.Txn) error { return putJSON(txn, []byte(pfxTerminal+stored.ID), &stored) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	f.open(t)
	if !strings.Contains(logs.String(), `DUKPT devices bound to more than one terminal`) || !strings.Contains(logs.String(), DemoDUKPTDevice+": T0000002,T4200001") {
		t.Errorf("no start-up warning naming the shared device and its terminals:\n%s", logs.String())
	}
	model := "A920"
	f.apply(t, Change{Op: OpTerminalChange, Target: "T4200001", TerminalPatch: &TerminalPatch{Model: &model}})
}
