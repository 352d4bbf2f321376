package registry

import (
	"errors"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"
)

func TestHaversine(t *testing.T) {
	// One degree of latitude on the sphere: R * pi / 180.
	if got, want := Haversine(0, 0, 1, 0), EarthRadiusM*math.Pi/180; math.Abs(got-want) > 1e-6 {
		t.Errorf("1 degree of latitude = %.3f m, want %.3f", got, want)
	}
	if got := Haversine(39.9042, 116.4074, 39.9042, 116.4074); got != 0 {
		t.Errorf("distance of a point to itself = %v, want 0", got)
	}
	// Beijing to Shanghai, about 1,067 km.
	if got := Haversine(39.904200, 116.407400, 31.230400, 121.473700); got < 1_060_000 || got > 1_075_000 {
		t.Errorf("Beijing-Shanghai = %.0f m, want about 1,067 km", got)
	}
	// Antipodes: half the circumference.
	if got, want := Haversine(0, 0, 0, 180), math.Pi*EarthRadiusM; math.Abs(got-want) > 1e-3 {
		t.Errorf("antipodes = %.3f m, want %.3f", got, want)
	}
}

func TestCompareVersion(t *testing.T) {
	cases := []struct {
		v, min string
		want   int
	}{
		{"1.10", "1.9", 1},
		{"1.9", "1.10", -1},
		{"1.2", "1.2.0", 0},
		{"1.2.0", "1.2", 0},
		{"1.2.1", "1.2", 1},
		{"2", "10", -1},
		{"3-beta.1", "3.1", 0},
		{"", "1", -1},
		{"x.y", "0.0", 0},
		{"10.0.0", "9.99.99", 1},
	}
	for _, c := range cases {
		got, err := CompareVersions(c.v, c.min)
		if err != nil || got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, %v; want %d", c.v, c.min, got, err, c.want)
		}
	}
	if _, err := CompareVersions("1", "1.x"); err == nil {
		t.Error("CompareVersions with a non-numeric minimum: no error")
	}
}

// TestCheckEachRule runs every check refused and accepted on the demo fleet, on a
// real Badger database.
func TestCheckEachRule(t *testing.T) {
	f := newFixture(t)
	// A terminal with allowed networks and a minimum version, set through the
	// reviewed change path.
	f.apply(t, Change{Op: OpTerminalChange, Target: "T0000001", TerminalPatch: &TerminalPatch{
		AllowedNetworks: &[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")},
		MinAppVersion:   strp("2.10"),
	}})
	// A pending terminal.
	f.apply(t, Change{Op: OpTerminalRegister, Terminal: &Terminal{ID: "T0000100", MerchantID: "000000000000001", Kind: KindPOS}})

	t1 := f.goodT1
	t2 := f.goodT2
	type tc struct {
		name    string
		req     CheckRequest
		code    string // "" = accepted
		reason  Reason
		flagged bool
	}
	mod := func(r CheckRequest, fn func(*CheckRequest)) CheckRequest { fn(&r); return r }
	cases := []tc{
		{"T0000001 honest", t1(), "", "", false},
		{"T0000001 honest IPv4-mapped source", mod(t1(), func(r *CheckRequest) { r.SourceIP = netip.MustParseAddr("::ffff:10.9.9.9") }), "", "", false},
		{"T0000001 honest IPv6 source", mod(t1(), func(r *CheckRequest) { r.SourceIP = netip.MustParseAddr("2001:db8::5") }), "", "", false},
		{"unknown terminal", mod(t1(), func(r *CheckRequest) { r.TerminalID = "T9999999" }), "58", ReasonTerminalUnknown, false},
		{"suspended terminal T0000003", mod(t1(), func(r *CheckRequest) { r.TerminalID = "T0000003"; r.DeviceID = "SN-T0000003" }), "58", ReasonTerminalSuspended, false},
		{"pending terminal", mod(t1(), func(r *CheckRequest) { r.TerminalID = "T0000100" }), "58", ReasonTerminalPending, false},
		{"frozen merchant via T0000009", CheckRequest{TerminalID: "T0000009", MerchantID: "000000000000009", SourceIP: honest,
			DeviceID: "SN-T0000009", SIM: "89860000000000000009", IMEI: "860000000000009",
			Location: GeoPoint{Lat: 39.9042, Lon: 116.4074, Present: true}}, "03", ReasonMerchantFrozen, false},
		{"terminal swapped to another merchant", mod(t1(), func(r *CheckRequest) { r.MerchantID = "000000000000002" }), "03", ReasonMerchantMismatch, false},
		{"device serial differs", mod(t1(), func(r *CheckRequest) { r.DeviceID = "SN-EVIL" }), "59", ReasonDeviceMismatch, false},
		{"SIM differs", mod(t1(), func(r *CheckRequest) { r.SIM = "89860000000000000777" }), "59", ReasonSIMMismatch, false},
		{"IMEI differs", mod(t1(), func(r *CheckRequest) { r.IMEI = "860000000000777" }), "59", ReasonIMEIMismatch, false},
		{"2 km away, radius 1000 m", mod(t1(), func(r *CheckRequest) { r.Location.Lat = 39.9042 + 0.018 }), "59", ReasonLocationRange, false},
		{"500 m away, radius 1000 m", mod(t1(), func(r *CheckRequest) { r.Location.Lat = 39.9042 + 0.0045 }), "", "", false},
		{"DI missing, policy decline", mod(t1(), func(r *CheckRequest) { r.DeviceID = "" }), "59", ReasonIdentityMissing, false},
		{"GL missing, policy decline", mod(t1(), func(r *CheckRequest) { r.Location = GeoPoint{} }), "59", ReasonIdentityMissing, false},
		{"source outside allowed networks", mod(t1(), func(r *CheckRequest) { r.SourceIP = netip.MustParseAddr("192.0.2.1") }), "58", ReasonNetworkDenied, false},
		{"no source address", mod(t1(), func(r *CheckRequest) { r.SourceIP = netip.Addr{} }), "58", ReasonNetworkDenied, false},
		{"app version 2.9 below 2.10", mod(t1(), func(r *CheckRequest) { r.AppVersion = "2.9" }), "58", ReasonAppVersionLow, false},
		{"app version absent with a minimum", mod(t1(), func(r *CheckRequest) { r.AppVersion = "" }), "58", ReasonAppVersionLow, false},
		{"app version 2.10.1", mod(t1(), func(r *CheckRequest) { r.AppVersion = "2.10.1" }), "", "", false},
		{"SoftPOS honest", t2(), "", "", false},
		{"SoftPOS attestation 119 s old", mod(t2(), func(r *CheckRequest) { r.AttestationTime = r.Now.Add(-119 * time.Second) }), "", "", false},
		{"SoftPOS attestation 121 s old", mod(t2(), func(r *CheckRequest) { r.AttestationTime = r.Now.Add(-121 * time.Second) }), "58", ReasonAttestationStale, false},
		{"SoftPOS attestation 10 min in the future", mod(t2(), func(r *CheckRequest) { r.AttestationTime = r.Now.Add(10 * time.Minute) }), "58", ReasonAttestationStale, false},
		// now.Sub saturates and the age's negation overflows: compared as a Duration, fresh.
		{"SoftPOS attestation 400 years in the future", mod(t2(), func(r *CheckRequest) { r.AttestationTime = r.Now.AddDate(400, 0, 0) }), "58", ReasonAttestationStale, false},
		{"SoftPOS attestation FAIL", mod(t2(), func(r *CheckRequest) { r.AttestationOK = false }), "58", ReasonAttestationFail, false},
		{"SoftPOS attestation absent", mod(t2(), func(r *CheckRequest) { r.AttestationPresent = false }), "58", ReasonAttestationAbsent, false},
		{"SoftPOS legacy AT, policy wants a token", mod(t2(), func(r *CheckRequest) { r.AttestationSigned, r.AttestedDevice = false, "" }), "58", ReasonAttestationLegacy, false},
		{"SoftPOS token refused by the verifier", mod(t2(), func(r *CheckRequest) { r.AttestationFailure = ReasonAttestationReplayed }), "59", ReasonAttestationReplayed, false},
		{"SoftPOS token of another device", mod(t2(), func(r *CheckRequest) { r.AttestedDevice = "SP-OTHER" }), "59", ReasonAttestationDevice, false},
		{"SoftPOS token without TEE", mod(t2(), func(r *CheckRequest) { r.AttestationNoTEE = true }), "58", ReasonAttestationNoTEE, false},
		{"SoftPOS without verified MAC", mod(t2(), func(r *CheckRequest) { r.MACVerified = false }), "63", ReasonMACRequired, false},
		{"SoftPOS IMEI differs", mod(t2(), func(r *CheckRequest) { r.IMEI = "860000000000666" }), "59", ReasonIMEIMismatch, false},
		{"SoftPOS 6 km away, radius 5000 m", mod(t2(), func(r *CheckRequest) { r.Location.Lat += 0.054 }), "59", ReasonLocationRange, false},
		{"SoftPOS GL missing, policy flag", mod(t2(), func(r *CheckRequest) { r.Location = GeoPoint{} }), "", "", true},
		{"SoftPOS SI sent although none bound", mod(t2(), func(r *CheckRequest) { r.SIM = "89860000000000000555" }), "", "", false},
		{"load terminal, nothing bound", CheckRequest{TerminalID: "LT000077", MerchantID: "000000000000003"}, "", "", false},
		{"load terminal with another merchant", CheckRequest{TerminalID: "LT000077", MerchantID: "000000000000001"}, "03", ReasonMerchantMismatch, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := f.reg.Check(c.req)
			if c.code == "" {
				if res.Decline {
					t.Fatalf("declined %s %s, want accepted (facts %+v)", res.ResponseCode, res.Reason, res.Facts)
				}
			} else if !res.Decline || res.ResponseCode != c.code || res.Reason != c.reason {
				t.Fatalf("got decline=%v %s %q, want %s %q (facts %+v)", res.Decline, res.ResponseCode, res.Reason, c.code, c.reason, res.Facts)
			}
			if res.Facts.Flagged != c.flagged {
				t.Errorf("flagged = %v, want %v", res.Facts.Flagged, c.flagged)
			}
			if c.flagged && res.Facts.FlagReason != string(ReasonIdentityMissing) {
				t.Errorf("flag reason = %q, want identity-missing", res.Facts.FlagReason)
			}
		})
	}

	// DE 42 with trailing spaces (as some terminals pad it) is the same merchant.
	req := t1()
	req.MerchantID = "000000000000001  "
	if res := f.reg.Check(req); res.Decline {
		t.Errorf("DE 42 with trailing spaces declined: %s %s", res.ResponseCode, res.Reason)
	}

	// Incidents: one per violation; none for status declines or flags.
	incs, err := f.reg.Incidents(IncidentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	byReason := map[Reason]int{}
	for _, inc := range incs {
		byReason[inc.Reason]++
	}
	want := map[Reason]int{
		ReasonMerchantMismatch: 2, ReasonDeviceMismatch: 1, ReasonSIMMismatch: 1, ReasonIMEIMismatch: 2,
		ReasonLocationRange: 2, ReasonIdentityMissing: 2, ReasonNetworkDenied: 2, ReasonAppVersionLow: 2,
		ReasonAttestationStale: 3, ReasonAttestationFail: 1, ReasonAttestationAbsent: 1, ReasonMACRequired: 1,
	}
	for r, n := range want {
		if byReason[r] != n {
			t.Errorf("incidents with reason %s = %d, want %d", r, byReason[r], n)
		}
	}
	for _, r := range []Reason{ReasonTerminalUnknown, ReasonTerminalSuspended, ReasonTerminalPending, ReasonMerchantFrozen} {
		if byReason[r] != 0 {
			t.Errorf("status decline %s created %d incidents, want none", r, byReason[r])
		}
	}
}

func TestCheckFacts(t *testing.T) {
	f := newFixture(t)
	res := f.reg.Check(f.goodT1())
	fa := res.Facts
	if res.Decline {
		t.Fatalf("honest T0000001 declined: %s %s", res.ResponseCode, res.Reason)
	}
	if !fa.LocationKnown || !fa.LocationOK || fa.DistanceM < 50 || fa.DistanceM > 200 {
		t.Errorf("location facts = known %v ok %v distance %.1f m, want known, ok, about 100 m", fa.LocationKnown, fa.LocationOK, fa.DistanceM)
	}
	if fa.Lat != 39.9050 || fa.Lon != 116.4080 {
		t.Errorf("reported location facts = %v,%v, want the GL sent: 39.905,116.408", fa.Lat, fa.Lon)
	}
	if !fa.DeviceOK || !fa.SIMOK || !fa.IMEIOK || fa.IdentityMatched != "device,sim,imei" || fa.Missing != "" {
		t.Errorf("identity facts = %+v", fa)
	}
	if !fa.NetworkOK || !fa.AppVersionOK || fa.AttestationAgeS != -1 || fa.Flagged {
		t.Errorf("other facts = %+v", fa)
	}
	if fa.MerchantTier != TierStandard || fa.MCC != "5411" || fa.Region != "CN-BJ" || fa.Limits != DemoLimitsStandard ||
		fa.TerminalKind != string(KindPOS) || fa.MerchantRating != RatingLow || fa.AppVersion != "2.10.0" {
		t.Errorf("record facts = %+v", fa)
	}
	if res.Merchant == nil || res.Merchant.ID != "000000000000001" || res.Terminal == nil || res.Terminal.ID != "T0000001" {
		t.Errorf("records = %v %v", res.Merchant, res.Terminal)
	}

	// Ages in days.
	f.clock.Advance(49 * time.Hour)
	req := f.goodT1()
	res = f.reg.Check(req)
	if res.Facts.TerminalAgeDays != 2 || res.Facts.MerchantAgeDays != 2 {
		t.Errorf("age days = terminal %d merchant %d, want 2 and 2", res.Facts.TerminalAgeDays, res.Facts.MerchantAgeDays)
	}

	// Facts of a decline are complete too: mismatching device and missing SIM.
	req.DeviceID, req.SIM = "SN-X", ""
	res = f.reg.Check(req)
	if res.Reason != ReasonDeviceMismatch || res.Facts.DeviceOK || res.Facts.SIMOK || !res.Facts.IMEIOK ||
		res.Facts.IdentityMatched != "imei" || res.Facts.Missing != "sim" {
		t.Errorf("decline facts = %s %+v", res.Reason, res.Facts)
	}

	// SoftPOS attestation age.
	r2 := f.goodT2()
	res = f.reg.Check(r2)
	if res.Decline || !res.Facts.AttestationOK || res.Facts.AttestationAgeS != 30 {
		t.Errorf("SoftPOS facts = %s %+v", res.Reason, res.Facts)
	}
}

func TestCheckRecordsLastSeen(t *testing.T) {
	f := newFixture(t)
	if _, ok := f.reg.LastSeen("T0000001"); ok {
		t.Fatal("T0000001 seen before any request")
	}
	req := f.goodT1()
	req.SourceIP = netip.MustParseAddr("10.7.7.7")
	f.reg.Check(req)
	ls, ok := f.reg.LastSeen("T0000001")
	if !ok || !ls.Time.Equal(t0) || ls.Address != req.SourceIP || ls.Location == nil || ls.Location.Lat != req.Location.Lat {
		t.Fatalf("last seen = %+v %v", ls, ok)
	}
	// A declined request of a terminal without a MAC key does not count as seen
	// (whoever knows its ID could send one: until 6 December 2026 it counted, and a
	// stolen terminal looked online at its shop); one that passes does, but an
	// older time does not move it back.
	f.clock.Advance(time.Minute)
	bad := f.goodT1()
	bad.DeviceID = "SN-EVIL"
	bad.SourceIP = netip.MustParseAddr("192.0.2.66")
	bad.Location = GeoPoint{Lat: 31.2, Lon: 121.5, Present: true}
	if res := f.reg.Check(bad); !res.Decline {
		t.Fatal("SN-EVIL not declined")
	}
	if ls, _ = f.reg.LastSeen("T0000001"); !ls.Time.Equal(t0) || ls.Address != netip.MustParseAddr("10.7.7.7") {
		t.Errorf("last seen after a declined keyless request = %+v, want %v from 10.7.7.7", ls, t0)
	}
	if res := f.reg.Check(f.goodT1()); res.Decline {
		t.Fatalf("good T0000001 declined: %s", res.Reason)
	}
	old := f.goodT1()
	old.Now = t0.Add(-time.Hour)
	f.reg.Check(old)
	ls, _ = f.reg.LastSeen("T0000001")
	if !ls.Time.Equal(t0.Add(time.Minute)) || ls.Location == nil {
		t.Errorf("last seen after a good request = %+v, want %v with its location", ls, t0.Add(time.Minute))
	}
	// A terminal with a MAC key is seen only by a request whose MAC verified,
	// declined or not.
	nomac := f.goodT2()
	nomac.MACVerified = false
	if res := f.reg.Check(nomac); !res.Decline {
		t.Fatal("T0000002 without a verified MAC not declined")
	}
	if ls, ok := f.reg.LastSeen("T0000002"); ok {
		t.Errorf("T0000002 seen by a request without a verified MAC: %+v", ls)
	}
	mac := f.goodT2()
	mac.MACVerified = true
	mac.DeviceID = "SN-OTHER" // declined, but the terminal's own
	f.reg.Check(mac)
	if _, ok := f.reg.LastSeen("T0000002"); !ok {
		t.Error("T0000002 not seen by a request whose MAC verified")
	}
	// Seen for a non-financial message.
	f.reg.Seen("LT000001", netip.MustParseAddr("10.0.0.1"), GeoPoint{}, t0.Add(2*time.Minute))
	if ls, ok := f.reg.LastSeen("LT000001"); !ok || !ls.Time.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("LT000001 last seen = %+v %v", ls, ok)
	}
	// Flushed to Badger and back after a restart.
	f.reopen(t)
	ls, ok = f.reg.LastSeen("T0000001")
	if !ok || !ls.Time.Equal(t0.Add(time.Minute)) || ls.Address != netip.MustParseAddr("10.1.2.3") || ls.Location == nil {
		t.Errorf("last seen after reopen = %+v %v", ls, ok)
	}
}

func TestCheckDoesNotAllocate(t *testing.T) {
	f := newFixture(t)
	// T0000001 with its own minimum version and its group's (compared on the way).
	f.apply(t, Change{Op: OpTerminalChange, Target: "T0000001", TerminalPatch: &TerminalPatch{MinAppVersion: strp("2.1")}})
	f.reg.SetGroupMinimums(byTerminal(t, map[string]string{"T0000001": "2.9"}))
	for _, req := range []CheckRequest{f.goodT1(), f.goodT2(), {TerminalID: "LT000001", MerchantID: "000000000000003", SourceIP: honest}} {
		allocs := testing.AllocsPerRun(200, func() {
			if res := f.reg.Check(req); res.Decline {
				t.Fatalf("%s declined: %s", req.TerminalID, res.Reason)
			}
		})
		if allocs != 0 {
			t.Errorf("Check(%s) allocates %.1f times per call, want 0", req.TerminalID, allocs)
		}
	}
}

// TestCheckConcurrentWithWriters runs Check on many goroutines while changes are
// approved; run with -race it shows the snapshot is safe, and every answer must be
// one of the two consistent states.
func TestCheckConcurrentWithWriters(t *testing.T) {
	f := newFixture(t)
	stop := make(chan struct{})
	errs := make(chan string, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			req := CheckRequest{TerminalID: "LT000042", MerchantID: "000000000000003", SourceIP: honest}
			res := f.reg.Check(req)
			if res.Decline && res.Reason != ReasonTerminalSuspended {
				select {
				case errs <- string(res.Reason):
				default:
				}
			}
		}
	}()
	for i := 0; i < 5; i++ {
		f.apply(t, Change{Op: OpTerminalSuspend, Target: "LT000042"})
		if res := f.reg.Check(CheckRequest{TerminalID: "LT000042", MerchantID: "000000000000003"}); res.Reason != ReasonTerminalSuspended {
			t.Fatalf("right after approval of suspend: %q, want terminal-suspended", res.Reason)
		}
		f.apply(t, Change{Op: OpTerminalResume, Target: "LT000042"})
		if res := f.reg.Check(CheckRequest{TerminalID: "LT000042", MerchantID: "000000000000003"}); res.Decline {
			t.Fatalf("right after approval of resume: %q, want accepted", res.Reason)
		}
	}
	close(stop)
	<-done
	select {
	case r := <-errs:
		t.Errorf("concurrent Check declined with %q", r)
	default:
	}
}

func BenchmarkCheck(b *testing.B) {
	f := newFixture(b)
	req := f.goodT1()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res := f.reg.Check(req); res.Decline {
				b.Fatalf("declined: %s", res.Reason)
			}
		}
	})
}

// BenchmarkCheckViaInterface calls Check as the pipeline does, through an
// interface: the method table then holds the promoted method's wrapper.
func BenchmarkCheckViaInterface(b *testing.B) {
	f := newFixture(b)
	req := f.goodT1()
	var c interface {
		Check(CheckRequest) CheckResult
	} = f.reg
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res := c.Check(req); res.Decline {
				b.Fatalf("declined: %s", res.Reason)
			}
		}
	})
}

// The facts work as an expr-lang environment under their documented names.
func TestFactsAsExprEnvironment(t *testing.T) {
	f := newFixture(t)
	req := f.goodT1()
	req.Location.Lat += 0.0045 // about 500 m
	res := f.reg.Check(req)
	if res.Decline {
		t.Fatalf("declined: %s", res.Reason)
	}
	for src, want := range map[string]bool{
		`distance_m > 400 && distance_m < 600`:                             true,
		`merchant_tier == "standard" && limits.per_transaction == 5000000`: true,
		`terminal_kind == "pos" && identity_matched == "device,sim,imei"`:  true,
		`flagged || !location_ok || attestation_age_s != -1`:               false,
		`merchant_status == "active" && terminal_age_days == 0`:            true,
	} {
		prog, err := expr.Compile(src, expr.Env(Facts{}), expr.AsBool())
		if err != nil {
			t.Fatalf("compile %q: %v", src, err)
		}
		got, err := expr.Run(prog, res.Facts)
		if err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", src, got, err, want)
		}
	}
}

// TestRootedSoftPOS: a finding suspends the terminal at once, durably; it stays
// suspended (across a restart) until a reviewed resume.
func TestRootedSoftPOS(t *testing.T) {
	f := newFixture(t)
	req := f.goodT2()
	req.Findings = []string{"root", "hook"}
	res := f.reg.Check(req)
	if !res.Decline || res.ResponseCode != "59" || res.Reason != ReasonDeviceCompromised {
		t.Fatalf("rooted SoftPOS: %v %s %s, want 59 device-compromised", res.Decline, res.ResponseCode, res.Reason)
	}
	if tt, _ := f.reg.Terminal("T0000002"); tt.Status != TerminalSuspended || !strings.Contains(tt.Note, "root,hook") {
		t.Fatalf("T0000002 after finding = %s %q, want suspended", tt.Status, tt.Note)
	}
	// The next transaction, even a clean one, is refused.
	if res := f.reg.Check(f.goodT2()); res.Reason != ReasonTerminalSuspended || res.ResponseCode != "58" {
		t.Errorf("clean request after suspension: %s %s, want 58 terminal-suspended", res.ResponseCode, res.Reason)
	}
	// Oplog: actor system.
	es, _ := f.reg.Oplog(OplogFilter{Target: "T0000002", Action: "terminal.suspend"})
	if len(es) != 1 || es[0].Actor != SystemActor || !strings.Contains(string(es[0].Before), `"status":"active"`) ||
		!strings.Contains(string(es[0].After), `"status":"suspended"`) {
		t.Errorf("oplog of automatic suspension = %+v", es)
	}
	// Incident with the device data at that moment.
	incs, err := f.reg.Incidents(IncidentFilter{TerminalID: "T0000002"})
	if err != nil || len(incs) != 1 {
		t.Fatalf("incidents = %+v, %v", incs, err)
	}
	inc := incs[0]
	if inc.Reason != ReasonDeviceCompromised || inc.Action != "terminal-suspended" || inc.Status != IncidentOpen ||
		strings.Join(inc.Device.Findings, ",") != "root,hook" || inc.Device.IMEI != "860000000000002" || inc.Device.Location == nil ||
		inc.Device.SourceIP != "10.1.2.3" || inc.Merchant == nil || inc.Merchant.ID != "000000000000002" ||
		inc.Terminal == nil || inc.Terminal.Status != TerminalActive || inc.Facts.DistanceM <= 0 || !inc.Device.MACVerified {
		t.Errorf("incident = %+v", inc)
	}

	// Durable: survives a restart.
	f.reopen(t)
	if res := f.reg.Check(f.goodT2()); res.Reason != ReasonTerminalSuspended {
		t.Fatalf("after restart: %q, want terminal-suspended", res.Reason)
	}
	// Resume needs review: the requester cannot approve it.
	c, err := f.reg.RequestChange(alice, Change{Op: OpTerminalResume, Target: "T0000002", Reason: "device replaced"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(alice, c.ID, ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("self-approval of resume: %v", err)
	}
	if res := f.reg.Check(f.goodT2()); res.Reason != ReasonTerminalSuspended {
		t.Errorf("before approval of resume: %q, want terminal-suspended", res.Reason)
	}
	if _, err := f.reg.Approve(dave, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	if res := f.reg.Check(f.goodT2()); res.Decline {
		t.Errorf("after approved resume: %s", res.Reason)
	}
	// Incident handling.
	if _, err := f.reg.ResolveIncident(erin, inc.ID, ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("analyst resolving: %v", err)
	}
	if got, err := f.reg.AcknowledgeIncident(alice, inc.ID, "looking"); err != nil || got.Status != IncidentAcknowledged || got.AckBy != "alice" {
		t.Errorf("ack = %+v, %v", got, err)
	}
	if _, err := f.reg.AcknowledgeIncident(carol, inc.ID, ""); !errors.Is(err, ErrConflict) {
		t.Errorf("second ack: %v", err)
	}
	if got, err := f.reg.ResolveIncident(carol, inc.ID, "device wiped"); err != nil || got.Status != IncidentResolved || got.ResolvedBy != "carol" {
		t.Errorf("resolve = %+v, %v", got, err)
	}
	if es, _ := f.reg.Oplog(OplogFilter{Target: inc.ID}); len(es) != 2 {
		t.Errorf("oplog of incident = %+v", es)
	}
}

// A non-SoftPOS terminal's IF is not trusted and not acted on.
func TestFindingsIgnoredForPOS(t *testing.T) {
	f := newFixture(t)
	req := f.goodT1()
	req.Findings = []string{"root"}
	if res := f.reg.Check(req); res.Decline {
		t.Errorf("POS with IF: %s, want accepted", res.Reason)
	}
	if tt, _ := f.reg.Terminal("T0000001"); tt.Status != TerminalActive {
		t.Errorf("POS suspended for IF: %s", tt.Status)
	}
}

// TestCheckPurposes: a reversal gives money back, so only what proves its sender is
// checked (not the terminal's or merchant's state, its location, network, version or
// attestation); a sign-on or key change is checked as an authorization except for the
// SoftPOS attestation and the application version.
func TestCheckPurposes(t *testing.T) {
	f := newFixture(t)
	rev := func(edit func(*CheckRequest)) CheckResult {
		req := f.goodT1()
		req.Purpose = CheckReversal
		if edit != nil {
			edit(&req)
		}
		return f.reg.Check(req)
	}
	for name, edit := range map[string]func(*CheckRequest){
		"away":          func(r *CheckRequest) { r.Location = GeoPoint{Lat: 31.23, Lon: 121.47, Present: true} },
		"no location":   func(r *CheckRequest) { r.Location = GeoPoint{} },
		"old app":       func(r *CheckRequest) { r.AppVersion = "0.1" },
		"other network": func(r *CheckRequest) { r.SourceIP = netip.MustParseAddr("203.0.113.9") },
	} {
		if res := rev(edit); res.Decline {
			t.Errorf("reversal, %s: declined %s", name, res.Reason)
		}
	}
	for name, c := range map[string]struct {
		edit func(*CheckRequest)
		want Reason
	}{
		"other device":   {func(r *CheckRequest) { r.DeviceID = "SN-EVIL" }, ReasonDeviceMismatch},
		"other SIM":      {func(r *CheckRequest) { r.SIM = "89860000000000009999" }, ReasonSIMMismatch},
		"no identity":    {func(r *CheckRequest) { r.DeviceID, r.SIM, r.IMEI = "", "", "" }, ReasonIdentityMissing},
		"other merchant": {func(r *CheckRequest) { r.MerchantID = "000000000000002" }, ReasonMerchantMismatch},
		"unknown":        {func(r *CheckRequest) { r.TerminalID = "TX999999" }, ReasonTerminalUnknown},
	} {
		if res := rev(c.edit); res.Reason != c.want {
			t.Errorf("reversal, %s: %q, want %s", name, res.Reason, c.want)
		}
	}
	// A suspended terminal's reversal still goes through; its purchase does not.
	c, err := f.reg.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "T0000001", Reason: "stolen"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(dave, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	if res := f.reg.Check(f.goodT1()); res.Reason != ReasonTerminalSuspended {
		t.Fatalf("purchase of a suspended terminal: %q", res.Reason)
	}
	if res := rev(nil); res.Decline {
		t.Errorf("reversal of a suspended terminal: declined %s", res.Reason)
	}
	// Sign-on: the application version is not judged, the location is.
	net := f.goodT2()
	net.Purpose, net.AppVersion, net.AttestationPresent = CheckNetwork, "0.1", false
	if res := f.reg.Check(net); res.Decline {
		t.Errorf("sign-on of an outdated SoftPOS without attestation: declined %s", res.Reason)
	}
	net.Location = GeoPoint{Lat: 39.9, Lon: 116.4, Present: true}
	if res := f.reg.Check(net); res.Reason != ReasonLocationRange {
		t.Errorf("sign-on 1000 km away: %q, want %s", res.Reason, ReasonLocationRange)
	}
}

// TestSignOnWithIntegrityFindings: a sign-on or key change is spared the SoftPOS
// attestation, not the phone's own integrity findings (IF, or the verdicts of a good
// token): a phone that says it is rooted gets no working keys and no update, and is
// suspended at once, as for a purchase.
func TestSignOnWithIntegrityFindings(t *testing.T) {
	f := newFixture(t)
	net := f.goodT2()
	net.Purpose, net.AttestationPresent, net.Findings = CheckNetwork, false, []string{"root"}
	res := f.reg.Check(net)
	if res.Reason != ReasonDeviceCompromised || res.ResponseCode != "59" {
		t.Fatalf("sign-on of a SoftPOS reporting root: %q %s, want %s 59", res.Reason, res.ResponseCode, ReasonDeviceCompromised)
	}
	if res := f.reg.Check(f.goodT2()); res.Reason != ReasonTerminalSuspended {
		t.Fatalf("purchase after a sign-on reporting root: %q, want %s", res.Reason, ReasonTerminalSuspended)
	}
	// A POS's IF is not a SoftPOS finding: its sign-on is not refused for it.
	pos := f.goodT1()
	pos.Purpose, pos.Findings = CheckNetwork, []string{"root"}
	if res := f.reg.Check(pos); res.Decline {
		t.Fatalf("sign-on of a POS with an IF tag: declined %s", res.Reason)
	}
}

// TestStanding: Standing refuses what a sign-on's checks refuse for the terminal's
// standing (its status, its merchant's), with the same reason, and passes an active
// terminal of an active merchant whatever the rest of its checks would say.
func TestStanding(t *testing.T) {
	f := newFixture(t)
	f.apply(t, Change{Op: OpTerminalRegister, Terminal: &Terminal{ID: "T0000100", MerchantID: "000000000000001", Kind: KindPOS}})
	for _, c := range []struct {
		tid  string
		want Reason
	}{
		{"T0000001", ReasonNone},
		{"T0000002", ReasonNone},
		{"LT000077", ReasonNone},
		{"T0000003", ReasonTerminalSuspended},
		{"T0000100", ReasonTerminalPending},
		{"T0000009", ReasonMerchantFrozen},
		{"T9999999", ReasonTerminalUnknown},
	} {
		if got := f.reg.Standing(c.tid); got != c.want {
			t.Errorf("Standing(%s) = %q, want %q", c.tid, got, c.want)
		}
		if c.want == ReasonNone {
			continue
		}
		// A sign-on naming it (no identity: the standing comes first) is refused the same.
		mid := "000000000000001"
		if c.tid == "T0000009" {
			mid = "000000000000009"
		}
		if res := f.reg.Check(CheckRequest{TerminalID: c.tid, MerchantID: mid, Purpose: CheckNetwork}); !res.Decline || res.Reason != c.want {
			t.Errorf("sign-on check of %s: %+v, want declined %q", c.tid, res.Reason, c.want)
		}
	}
}

// TestCheckBatch: a batch (0500) is checked as a sign-on (status, merchant, MAC where
// required, network, any identity or location it sends; not the version or the
// attestation), but carries totals, not its device: what it leaves out does not
// refuse it, though the terminal's missing-identity policy is decline.
func TestCheckBatch(t *testing.T) {
	f := newFixture(t)
	f.apply(t, Change{Op: OpTerminalChange, Target: "T0000001", TerminalPatch: &TerminalPatch{
		AllowedNetworks: &[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, MinAppVersion: strp("2.10")}})
	batch := func(edit func(*CheckRequest)) CheckResult {
		req := CheckRequest{TerminalID: "T0000001", MerchantID: "000000000000001", SourceIP: honest, Now: f.clock.Now(), Purpose: CheckBatch}
		if edit != nil {
			edit(&req)
		}
		return f.reg.Check(req)
	}
	if res := batch(nil); res.Decline {
		t.Fatalf("batch without identity, location or version: declined %s", res.Reason)
	}
	t2 := f.goodT2()
	t2.Purpose, t2.AttestationPresent, t2.AppVersion = CheckBatch, false, ""
	if res := f.reg.Check(t2); res.Decline {
		t.Errorf("SoftPOS batch with a verified MAC, without attestation: declined %s", res.Reason)
	}
	// In this order: the rooted SoftPOS is suspended at once, and the case before
	// it needs it active (a map's random order failed it now and then).
	for _, c := range []struct {
		name string
		edit func(*CheckRequest)
		want Reason
	}{
		{"other device", func(r *CheckRequest) { r.DeviceID = "SN-EVIL" }, ReasonDeviceMismatch},
		{"away", func(r *CheckRequest) { r.Location = GeoPoint{Lat: 31.23, Lon: 121.47, Present: true} }, ReasonLocationRange},
		{"other network", func(r *CheckRequest) { r.SourceIP = netip.MustParseAddr("203.0.113.9") }, ReasonNetworkDenied},
		{"other merchant", func(r *CheckRequest) { r.MerchantID = "000000000000002" }, ReasonMerchantMismatch},
		{"unknown", func(r *CheckRequest) { r.TerminalID = "TX999999" }, ReasonTerminalUnknown},
		{"SoftPOS, no MAC", func(r *CheckRequest) { r.TerminalID, r.MerchantID = t2.TerminalID, t2.MerchantID }, ReasonMACRequired},
		{"SoftPOS, rooted", func(r *CheckRequest) { *r = t2; r.Findings = []string{"root"} }, ReasonDeviceCompromised},
	} {
		if res := batch(c.edit); res.Reason != c.want {
			t.Errorf("batch, %s: %q, want %s", c.name, res.Reason, c.want)
		}
	}
	c, err := f.reg.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "T0000001", Reason: "stolen"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(dave, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	if res := batch(nil); res.Reason != ReasonTerminalSuspended {
		t.Errorf("batch of a suspended terminal: %q, want %s", res.Reason, ReasonTerminalSuspended)
	}
}
