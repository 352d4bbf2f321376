package registry

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/syncbuf"
)

// boundTerminal is a new terminal of merchant 1 bound to device serial serial,
// SIM iccid and IMEI imei ("" for none).
func boundTerminal(id, serial, iccid, imei string) *Terminal {
	return &Terminal{ID: id, MerchantID: "000000000000001", Kind: KindPOS,
		Binding: Binding{DeviceSerial: serial, ICCID: iccid, IMEI: imei}}
}

// wantHeldBy checks that err refuses binding field field (device_serial, iccid,
// imei) as already bound to terminal other (ErrConflict, naming both).
func wantHeldBy(t *testing.T, what string, err error, field, other string) {
	t.Helper()
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), field+" ") || !strings.Contains(err.Error(), "already bound to terminal "+other) {
		t.Errorf("%s: %v; want a conflict naming %s and terminal %s", what, err, field, other)
	}
}

// TestBindingOneTerminal: a device serial (DE 48 DI), SIM ICCID (SI) and IMEI (IM)
// are each bound to one terminal. Nothing stopped two terminals registering the
// same ones, so one device could act as either (after a 切机 swap, say) and the
// binding meant nothing. Now a register, a change and a CSV import giving a value
// another terminal (not closed) holds are refused with a conflict naming the field
// and that terminal, the value compared without the spaces around it; so is the
// second of two rows of one import, naming the first's line and terminal, and the
// second of two requests each possible when requested (checked again at approval).
// Case is kept, as the switch compares DI exactly. A closed terminal's values, and
// those its terminal was unbound from, are free; the demo fleet (its 2,000 load
// terminals unbound) shares none; the index is rebuilt the same at start, and
// asking it allocates nothing.
func TestBindingOneTerminal(t *testing.T) {
	f := newFixture(t)
	if n, shared := f.reg.sharedClaims(claimDUKPT, claimSerial, claimSIM, claimIMEI); n != 0 {
		t.Errorf("demo fleet shares %d values: %v", n, shared)
	}
	if got := f.reg.claimHolders(claimSerial, "SN-T0000001"); !slices.Equal(got, []string{"T0000001"}) {
		t.Errorf("demo device serial SN-T0000001 held by %v", got)
	}

	// Register: each field, the serial given with spaces around it.
	_, err := f.reg.RequestChange(alice, Change{Op: OpTerminalRegister, Terminal: boundTerminal("T4300001", " SN-T0000001 ", "", "")})
	wantHeldBy(t, "register with T0000001's serial", err, "device_serial", "T0000001")
	_, err = f.reg.RequestChange(alice, Change{Op: OpTerminalRegister, Terminal: boundTerminal("T4300001", "SN-4300001", "89860000000000000009", "")})
	wantHeldBy(t, "register with T0000009's SIM", err, "iccid", "T0000009")
	_, err = f.reg.RequestChange(alice, Change{Op: OpTerminalRegister, Terminal: boundTerminal("T4300001", "", "", "860000000000002")})
	wantHeldBy(t, "register with T0000002's IMEI", err, "imei", "T0000002")
	// Another case is another DI to the switch: not the same device.
	f.apply(t, Change{Op: OpTerminalRegister, Terminal: boundTerminal("T4300001", "sn-t0000001", "", "")})
	f.apply(t, Change{Op: OpTerminalRegister, Terminal: boundTerminal("T4300002", "", "", "")})

	// Change: onto a suspended terminal's values (not closed: still held).
	_, err = f.reg.RequestChange(alice, Change{Op: OpTerminalChange, Target: "T4300002", TerminalPatch: &TerminalPatch{DeviceSerial: strp("SN-T0000003")}})
	wantHeldBy(t, "change onto T0000003's serial", err, "device_serial", "T0000003")
	_, err = f.reg.RequestChange(alice, Change{Op: OpTerminalChange, Target: "T4300002", TerminalPatch: &TerminalPatch{IMEI: strp("860000000000003")}})
	wantHeldBy(t, "change onto T0000003's IMEI", err, "imei", "T0000003")

	// CSV import: against the registry, and row against row.
	csv := "terminal_id,merchant_id,kind,device_serial,iccid,imei\n" +
		"T4300003,000000000000001,pos,SN-4300003,89860000000000043003,860000000043003\n" +
		"T4300004,000000000000001,pos,SN-4300004,,860000000043003\n" + // line 2's IMEI
		"T4300005,000000000000001,pos,SN-4300005,89860000000000000001,\n" + // T0000001's SIM
		"T4300006,000000000000001,pos,,,\n" // unbound: no claim
	rep, err := f.reg.ImportTerminals(alice, strings.NewReader(csv), "", false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", `imei "860000000043003" is terminal T4300003's on line 2 already`, `iccid "89860000000000000001" is already bound to terminal T0000001`, ""}
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
	// Two rows of one import request made through the API.
	_, err = f.reg.RequestChange(alice, Change{Op: OpTerminalImport, Terminals: []Terminal{
		*boundTerminal("T4300007", "SN-Y", "", ""), *boundTerminal("T4300008", "SN-Y ", "", "")}})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `terminal T4300008: device_serial "SN-Y" is terminal T4300007's in this import too`) {
		t.Errorf("import of two terminals with one serial: %v", err)
	}

	// Two pending requests, each possible alone: the second approved is refused.
	c1, err := f.reg.RequestChange(alice, Change{Op: OpTerminalChange, Target: "T4300002", TerminalPatch: &TerminalPatch{ICCID: strp("89860000000000043999")}})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := f.reg.RequestChange(alice, Change{Op: OpTerminalRegister, Terminal: boundTerminal("T4300009", "", "89860000000000043999", "")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(bob, c1.ID, ""); err != nil {
		t.Fatal(err)
	}
	_, err = f.reg.Approve(bob, c2.ID, "")
	wantHeldBy(t, "approval of a register onto a SIM bound since", err, "iccid", "T4300002")
	if _, ok := f.reg.Terminal("T4300009"); ok {
		t.Error("T4300009 created by its refused approval")
	}
	// The import requested before T4300002 had nothing of it: approved first, it
	// makes a later import of T4300003's serial fail at approval.
	again, err := f.reg.RequestChange(alice, Change{Op: OpTerminalImport, Terminals: []Terminal{*boundTerminal("T4300010", "SN-4300003", "", "")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(bob, rep.Change.ID, ""); err != nil {
		t.Fatal(err)
	}
	_, err = f.reg.Approve(bob, again.ID, "")
	wantHeldBy(t, "approval of a second import of one serial", err, "device_serial", "T4300003")

	// A change of other fields, and one giving a terminal its own value again, go
	// through; freed values are free: T0000003 closed, T0000001's
	// IMEI unbound.
	model := "A920"
	f.apply(t, Change{Op: OpTerminalChange, Target: "T4300003", TerminalPatch: &TerminalPatch{Model: &model, DeviceSerial: strp("SN-4300003")}})
	f.apply(t, Change{Op: OpTerminalClose, Target: "T0000003"})
	f.apply(t, Change{Op: OpTerminalChange, Target: "T4300002", TerminalPatch: &TerminalPatch{DeviceSerial: strp("SN-T0000003"), IMEI: strp("860000000000003")}})
	f.apply(t, Change{Op: OpTerminalChange, Target: "T0000001", TerminalPatch: &TerminalPatch{IMEI: strp("")}})
	f.apply(t, Change{Op: OpTerminalChange, Target: "T4300006", TerminalPatch: &TerminalPatch{IMEI: strp("860000000000001")}})

	// The index is rebuilt the same from what is stored.
	f.reopen(t)
	for _, c := range []struct {
		k   claimKind
		v   string
		ids []string
	}{
		{claimSerial, "SN-T0000003", []string{"T4300002"}}, {claimSerial, "SN-4300003", []string{"T4300003"}},
		{claimSerial, " sn-t0000001", []string{"T4300001"}}, {claimSIM, "89860000000000043999", []string{"T4300002"}},
		{claimIMEI, "860000000000001", []string{"T4300006"}}, {claimIMEI, "860000000000003", []string{"T4300002"}},
		{claimSerial, "", nil}, {claimIMEI, "  ", nil},
	} {
		if got := f.reg.claimHolders(c.k, c.v); !slices.Equal(got, c.ids) {
			t.Errorf("after a restart, %s held by %v, want %v", claimText(c.k, c.v), got, c.ids)
		}
	}
	_, err = f.reg.RequestChange(alice, Change{Op: OpTerminalChange, Target: "T0000001", TerminalPatch: &TerminalPatch{IMEI: strp("860000000000001")}})
	wantHeldBy(t, "after a restart, change onto a bound IMEI", err, "imei", "T4300006")
	if n := testing.AllocsPerRun(100, func() { _ = f.reg.claimHolders(claimSerial, " SN-T0000003 ") }); n != 0 {
		t.Errorf("claimHolders allocates %v times", n)
	}
}

// TestBindingSharedBeforeLogged: records stored before the check that share a
// device serial, SIM or IMEI are listed at start in one line (the demo fleet alone
// logs none), and a change of something else of one of them is not refused for it.
func TestBindingSharedBeforeLogged(t *testing.T) {
	var logs syncbuf.Buffer
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1, Logger: zerolog.New(&logs)})
	const msg = "device serials, SIMs or IMEIs bound to more than one terminal"
	f.reopen(t)
	if strings.Contains(logs.String(), msg) {
		t.Errorf("the demo fleet logged shared binding values:\n%s", logs.String())
	}
	f.apply(t, Change{Op: OpTerminalRegister, Terminal: boundTerminal("T4300001", "", "", "")})
	old, _ := f.reg.Terminal("T4300001")
	stored := *old
	stored.Binding = Binding{DeviceSerial: "SN-T0000001 ", ICCID: "89860000000000000009", IMEI: "860000000043001"} // what an older version let through
	f.close(t)
	db := openDB(t, f.dir)
	if err := db.Update(func(txn *badger.Txn) error { return putJSON(txn, []byte(pfxTerminal+stored.ID), &stored) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	f.open(t)
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, msg) {
			if line != "" {
				t.Errorf("more than one line lists shared binding values:\n%s", logs.String())
			}
			line = l
		}
	}
	for _, w := range []string{`"values":2`, `device_serial \"SN-T0000001\": T0000001,T4300001`, `iccid \"89860000000000000009\": T0000009,T4300001`} {
		if !strings.Contains(line, w) {
			t.Errorf("start-up warning %q does not contain %q", line, w)
		}
	}
	model := "A920"
	f.apply(t, Change{Op: OpTerminalChange, Target: "T4300001", TerminalPatch: &TerminalPatch{Model: &model, IMEI: strp("860000000043002")}})
	// Unbinding the serial on one of them ends its sharing.
	f.apply(t, Change{Op: OpTerminalChange, Target: "T4300001", TerminalPatch: &TerminalPatch{DeviceSerial: strp("")}})
	if got := f.reg.claimHolders(claimSerial, "SN-T0000001"); !slices.Equal(got, []string{"T0000001"}) {
		t.Errorf("SN-T0000001 held by %v after T4300001 was unbound", got)
	}
}

// TestBindingStoredTrimmed: a binding given with spaces around its values (an API
// client's JSON) is stored trimmed, so that the terminal's DI, SI and IM, which must
// equal it exactly, match. Before, " SN-4300011 " was stored as given and the
// terminal's every request was declined as another device.
func TestBindingStoredTrimmed(t *testing.T) {
	f := newFixture(t)
	f.apply(t, Change{Op: OpTerminalRegister, Terminal: boundTerminal("T4300011", " SN-4300011 ", " 89860000000000043011", "860000000043011 ")})
	got, ok := f.reg.Terminal("T4300011")
	if !ok {
		t.Fatal("T4300011 not registered")
	}
	if b := got.Binding; b.DeviceSerial != "SN-4300011" || b.ICCID != "89860000000000043011" || b.IMEI != "860000000043011" {
		t.Fatalf("binding stored as %q %q %q, want trimmed", b.DeviceSerial, b.ICCID, b.IMEI)
	}
}
