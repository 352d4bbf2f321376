package registry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCSVImport(t *testing.T) {
	f := newFixture(t)
	csv := strings.Join([]string{
		"terminal_id,merchant_id,kind,status,device_serial,iccid,imei,lat,lon,radius_m,networks,min_app_version,missing_policy,pin_mode,tpk",
		"T1000001,000000000000001,pos,active,SN-1,89860000000000001001,860000000001001,39.9,116.4,500,10.0.0.0/8;192.168.0.0/16,2.1,decline,tpk,T1000001/TPK",
		"T1000002,000000000000002,softpos,,SP-2,,860000000001002,,,,,,flag,,",
		"T1000003,000000000000077,pos,,,,,,,,,,,,",           // line 4: unknown merchant
		"T1000004,000000000000001,toaster,,,,,,,,,,,,",       // line 5: bad kind
		"T1000001,000000000000001,pos,,,,,,,,,,,,",           // line 6: duplicate in file
		"T0000001,000000000000001,pos,,,,,,,,,,,,",           // line 7: exists
		"T1000007,000000000000001,pos,,,12345,,,,,,,,,",      // line 8: bad ICCID
		"T1000008,000000000000001,pos",                       // line 9: too few fields
		"T1000009,000000000000001,pos,,,,,91,0,100,,,,,",     // line 10: bad latitude
		"T1000010,000000000000001,pos,,,,,,,,10.0.0.1/8,,,,", // line 11: host bits
		"T1000011,000000000000001,mpos,pending,,,,,,,,,,,",
	}, "\n")
	rep, err := f.reg.ImportTerminals(alice, strings.NewReader(csv), "", false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != 3 || rep.Rejected != 8 || len(rep.Rows) != 11 {
		t.Errorf("report accepted %d rejected %d rows %d, want 3, 8, 11", rep.Accepted, rep.Rejected, len(rep.Rows))
	}
	wantErr := map[int]string{4: "does not exist", 5: "kind", 6: "line 2", 7: "already exists", 8: "ICCID", 9: "fields", 10: "latitude", 11: "host bits"}
	for _, row := range rep.Rows {
		w, bad := wantErr[row.Line]
		switch {
		case bad && (row.OK || !strings.Contains(row.Error, w)):
			t.Errorf("line %d: ok=%v error %q, want an error mentioning %q", row.Line, row.OK, row.Error, w)
		case !bad && !row.OK:
			t.Errorf("line %d: error %q, want accepted", row.Line, row.Error)
		}
	}
	if rep.Change == nil || rep.Change.Op != OpTerminalImport || len(rep.Change.Terminals) != 3 {
		t.Fatalf("import change = %+v", rep.Change)
	}
	// Nothing exists before approval.
	if _, ok := f.reg.Terminal("T1000001"); ok {
		t.Fatal("imported terminal exists before approval")
	}
	if _, err := f.reg.Approve(alice, rep.Change.ID, ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("importer approving own import: %v", err)
	}
	if _, err := f.reg.Approve(bob, rep.Change.ID, ""); err != nil {
		t.Fatal(err)
	}
	t1, _ := f.reg.Terminal("T1000001")
	if t1 == nil || t1.Status != TerminalActive || t1.Location.RadiusM != 500 || len(t1.AllowedNetworks) != 2 || t1.MinAppVersion != "2.1" || t1.Keys.TPK != "T1000001.TPK" {
		t.Errorf("T1000001 = %+v", t1)
	}
	t2, _ := f.reg.Terminal("T1000002")
	if t2 == nil || t2.Status != TerminalPending || !t2.Keys.MACRequired || t2.MissingPolicy != PolicyFlag {
		t.Errorf("T1000002 = %+v", t2)
	}
	if es, _ := f.reg.Oplog(OplogFilter{Action: string(OpTerminalImport)}); len(es) != 3 || es[0].RequestedBy != "alice" || es[0].Actor != "bob" {
		t.Errorf("import oplog = %+v", es)
	}
	// An imported active terminal transacts at once.
	res := f.reg.Check(CheckRequest{TerminalID: "T1000001", MerchantID: "000000000000001", SourceIP: honest, DeviceID: "SN-1",
		SIM: "89860000000000001001", IMEI: "860000000001001", Location: GeoPoint{Lat: 39.9, Lon: 116.4, Present: true}, AppVersion: "2.1"})
	if res.Decline {
		t.Errorf("imported terminal declined: %s", res.Reason)
	}

	// Whole-file errors.
	for _, bad := range []string{"", "terminal_id,merchant_id\nT1,0", "terminal_id,merchant_id,kind,colour\n", "terminal_id,merchant_id,kind,kind\n"} {
		if _, err := f.reg.ImportTerminals(alice, strings.NewReader(bad), "", false); !errors.Is(err, ErrInvalid) {
			t.Errorf("import of %q: err = %v, want ErrInvalid", bad, err)
		}
	}
	// Dry run: report, no change.
	rep, err = f.reg.ImportTerminals(alice, strings.NewReader("terminal_id,merchant_id,kind\nT2000001,000000000000001,pos\n"), "", true)
	if err != nil || rep.Accepted != 1 || rep.Change != nil {
		t.Errorf("dry run = %+v, %v", rep, err)
	}
	if _, err := f.reg.ImportTerminals(bob, strings.NewReader("terminal_id,merchant_id,kind\n"), "", false); !errors.Is(err, ErrForbidden) {
		t.Errorf("reviewer importing: %v", err)
	}
}

func TestLargeImportChunks(t *testing.T) {
	f := newFixture(t)
	var b strings.Builder
	b.WriteString("terminal_id,merchant_id,kind,status\n")
	const n = 1200
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "B%07d,000000000000003,pos,active\n", i)
	}
	rep, err := f.reg.ImportTerminals(alice, strings.NewReader(b.String()), "bulk", false)
	if err != nil || rep.Accepted != n {
		t.Fatalf("import = %d accepted, %v", rep.Accepted, err)
	}
	if _, err := f.reg.Approve(bob, rep.Change.ID, ""); err != nil {
		t.Fatal(err)
	}
	f.reopen(t)
	if got := len(f.reg.Terminals(TerminalFilter{MerchantID: "000000000000003"})); got != testLoadTerminals+n {
		t.Errorf("terminals of merchant 3 after reopen = %d, want %d", got, testLoadTerminals+n)
	}
	if _, err := f.reg.VerifyOplog(); err != nil {
		t.Error(err)
	}
}
