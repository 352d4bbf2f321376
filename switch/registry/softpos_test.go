package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

// TestSoftPOSMustBeBound: a SoftPOS terminal without a device serial would accept
// any phone's attestation tokens (there is nothing to compare their dev with), so
// no path creates one, unbinds one, turns an unbound terminal into one or
// activates one: a register, an import row, a change.
func TestSoftPOSMustBeBound(t *testing.T) {
	f := newFixture(t)
	unbound := func(err error) bool {
		return errors.Is(err, ErrInvalid) && strings.Contains(err.Error(), "softpos") && strings.Contains(err.Error(), "device serial")
	}
	for _, status := range []TerminalStatus{TerminalPending, TerminalActive} {
		_, err := f.reg.RequestChange(alice, Change{Op: OpTerminalRegister, Terminal: &Terminal{
			ID: "T0000300", MerchantID: "000000000000002", Kind: KindSoftPOS, Status: status, Binding: Binding{IMEI: "860000000000300"}}})
		if !unbound(err) {
			t.Errorf("register an unbound %s softpos: %v, want invalid, naming the device serial", status, err)
		}
	}
	csv := "terminal_id,merchant_id,kind,status,device_serial\n" +
		"T0000301,000000000000002,softpos,active,\n" +
		"T0000302,000000000000002,softpos,active,SP-302\n"
	rep, err := f.reg.ImportTerminals(alice, strings.NewReader(csv), "", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2 || rep.Rows[0].OK || !strings.Contains(rep.Rows[0].Error, "device serial") || !rep.Rows[1].OK {
		t.Errorf("import of an unbound and a bound softpos: %+v, want the first row refused for its device serial", rep.Rows)
	}
	if _, err := f.reg.RequestChange(alice, Change{Op: OpTerminalChange, Target: "T0000002", TerminalPatch: &TerminalPatch{DeviceSerial: strp("")}}); !unbound(err) {
		t.Errorf("unbind the demo softpos: %v, want invalid", err)
	}
	kind := KindSoftPOS
	if _, err := f.reg.RequestChange(alice, Change{Op: OpTerminalChange, Target: "LT000001", TerminalPatch: &TerminalPatch{Kind: &kind}}); !unbound(err) {
		t.Errorf("make the unbound LT000001 a softpos: %v, want invalid", err)
	}
	// Bound in the same change, it may become one.
	f.apply(t, Change{Op: OpTerminalChange, Target: "LT000001", TerminalPatch: &TerminalPatch{Kind: &kind, DeviceSerial: strp("SP-LT000001")}})
}

// TestUnboundSoftPOSFromAnOlderVersion: a SoftPOS record stored unbound by a
// version that allowed it is refused at Check (58 softpos-device-unbound, an
// incident), for a purchase and a sign-on, whatever device its token names; it
// cannot be activated or resumed until a reviewed change binds it, after which it
// works as before.
func TestUnboundSoftPOSFromAnOlderVersion(t *testing.T) {
	f := newFixture(t)
	// What an older version stored: T0000002 unbound, and a pending T0000400.
	t2, _ := f.reg.Terminal("T0000002")
	old := *t2
	old.Binding.DeviceSerial = ""
	pending := old
	pending.ID, pending.Status, pending.Keys.TAK = "T0000400", TerminalPending, "T0000400.TAK"
	f.close(t)
	db := openDB(t, f.dir)
	if err := db.Update(func(txn *badger.Txn) error {
		for _, rec := range []*Terminal{&old, &pending} {
			if err := putJSON(txn, []byte(pfxTerminal+rec.ID), rec); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	f.opts.Logger = zerolog.New(&logs)
	f.open(t)
	if !strings.Contains(logs.String(), `"terminals":2`) || !strings.Contains(logs.String(), "T0000400") || !strings.Contains(logs.String(), "--device-serial") {
		t.Errorf("the start does not name the unbound SoftPOS terminals and how to bind them:\n%s", logs.String())
	}

	for _, dev := range []string{"SP-T0000002", "SP-ROOTED-PHONE", ""} {
		req := f.goodT2()
		req.AttestedDevice, req.DeviceID = dev, dev
		if res := f.reg.Check(req); !res.Decline || res.ResponseCode != "58" || res.Reason != ReasonSoftPOSUnbound {
			t.Errorf("purchase of the unbound softpos, token of %q: %v %s %q, want 58 %s", dev, res.Decline, res.ResponseCode, res.Reason, ReasonSoftPOSUnbound)
		}
	}
	net := f.goodT2()
	net.Purpose, net.AttestationPresent = CheckNetwork, false
	if res := f.reg.Check(net); res.Reason != ReasonSoftPOSUnbound {
		t.Errorf("sign-on of the unbound softpos: %q, want %s", res.Reason, ReasonSoftPOSUnbound)
	}
	incs, err := f.reg.Incidents(IncidentFilter{TerminalID: "T0000002"})
	if err != nil || len(incs) != 4 || incs[0].Reason != ReasonSoftPOSUnbound {
		t.Errorf("incidents of the unbound softpos: %d, %v, want 4 %s", len(incs), err, ReasonSoftPOSUnbound)
	}

	if _, err := f.reg.RequestChange(alice, Change{Op: OpTerminalActivate, Target: "T0000400"}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "device serial") {
		t.Errorf("activate an unbound softpos: %v, want invalid, naming the device serial", err)
	}
	f.apply(t, Change{Op: OpTerminalSuspend, Target: "T0000002", Reason: "unbound"})
	if _, err := f.reg.RequestChange(alice, Change{Op: OpTerminalResume, Target: "T0000002"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("resume an unbound softpos: %v, want invalid", err)
	}
	// The upgrade path: bind, then resume.
	f.apply(t, Change{Op: OpTerminalChange, Target: "T0000002", TerminalPatch: &TerminalPatch{DeviceSerial: strp("SP-T0000002")}})
	f.apply(t, Change{Op: OpTerminalResume, Target: "T0000002", Reason: "bound"})
	if res := f.reg.Check(f.goodT2()); res.Decline {
		t.Errorf("the softpos once bound: declined %s", res.Reason)
	}
}

// lockedBuffer is a log sink the registry's background writers may share with the
// test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSignedTokenWithoutVersion: for a signed attestation the version is its ver
// claim (the pipeline puts it in AppVersion, even empty); where a minimum applies,
// the terminal's own or its group's, a token without one is malformed (58), not
// let through on the unsigned AV tag. Without a minimum it does not matter, and the
// legacy AT keeps the AV tag's version.
func TestSignedTokenWithoutVersion(t *testing.T) {
	f := newFixture(t)
	noVer := f.goodT2()
	noVer.AppVersion = ""
	if res := f.reg.Check(noVer); res.Decline {
		t.Fatalf("token without ver, no minimum: declined %s", res.Reason)
	}
	f.reg.SetGroupMinimums(byTerminal(t, map[string]string{"T0000002": "5.0"}))
	if res := f.reg.Check(noVer); res.Reason != ReasonAttestationMalformed || res.ResponseCode != "58" {
		t.Errorf("token without ver, group minimum 5.0: %s %q, want 58 %s", res.ResponseCode, res.Reason, ReasonAttestationMalformed)
	}
	f.reg.SetGroupMinimums(nil)
	f.apply(t, Change{Op: OpTerminalChange, Target: "T0000002", TerminalPatch: &TerminalPatch{MinAppVersion: strp("5.0"), AttestLegacy: new(true)}})
	if res := f.reg.Check(noVer); res.Reason != ReasonAttestationMalformed {
		t.Errorf("token without ver, own minimum 5.0: %q, want %s", res.Reason, ReasonAttestationMalformed)
	}
	if res := f.reg.Check(f.goodT2()); res.Decline {
		t.Errorf("token with ver 5.1, minimum 5.0: declined %s", res.Reason)
	}
	old := f.goodT2()
	old.AppVersion = "4.9"
	if res := f.reg.Check(old); res.Reason != ReasonAppVersionLow {
		t.Errorf("token with ver 4.9, minimum 5.0: %q, want %s", res.Reason, ReasonAppVersionLow)
	}
	legacy := noVer
	legacy.AttestationSigned, legacy.AttestedDevice = false, ""
	if res := f.reg.Check(legacy); res.Reason != ReasonAppVersionLow {
		t.Errorf("legacy AT without AV, minimum 5.0: %q, want %s", res.Reason, ReasonAppVersionLow)
	}
}

// TestAttestationDeviceMismatchIncident: the incident of a SoftPOS request whose
// signed token names another device (attestation-device-mismatch) records the token's
// dev (attested_device) beside the DI the request sent, and its facts do not say the
// device or the attestation passed: device_ok and attestation_ok are false. Until the
// fifteenth release of 8 December 2026 the token's dev was nowhere in it, and it said
// device_ok true and attestation_ok true. A sign-on, which does not check the token,
// is not refused for it.
func TestAttestationDeviceMismatchIncident(t *testing.T) {
	f := newFixture(t)
	req := f.goodT2() // DI is the bound serial; the token was issued for another phone
	req.AttestedDevice = "SP-STOLEN-PHONE"
	res := f.reg.Check(req)
	if !res.Decline || res.Reason != ReasonAttestationDevice || res.ResponseCode != "59" {
		t.Fatalf("token of another device: %v %s %s, want 59 attestation-device-mismatch", res.Decline, res.ResponseCode, res.Reason)
	}
	incs, err := f.reg.Incidents(IncidentFilter{Reason: ReasonAttestationDevice})
	if err != nil || len(incs) != 1 {
		t.Fatalf("incidents = %+v, %v", incs, err)
	}
	inc := incs[0]
	if inc.Device.AttestedDevice != "SP-STOLEN-PHONE" || inc.Device.DeviceID != "SP-T0000002" {
		t.Errorf("incident device: attested %q, DI %q; want the token's dev SP-STOLEN-PHONE and the DI sent", inc.Device.AttestedDevice, inc.Device.DeviceID)
	}
	if inc.Facts.DeviceOK || inc.Facts.AttestationOK || inc.Device.AttestationOK {
		t.Errorf("incident says ok for the failed check: facts device_ok %v attestation_ok %v, device attestation_ok %v",
			inc.Facts.DeviceOK, inc.Facts.AttestationOK, inc.Device.AttestationOK)
	}
	if b, _ := json.Marshal(inc); !strings.Contains(string(b), `"attested_device":"SP-STOLEN-PHONE"`) {
		t.Errorf("incident JSON without attested_device: %s", b)
	}

	// A sign-on does not check the attestation: the DI is the bound one.
	req.Purpose = CheckNetwork
	if res := f.reg.Check(req); res.Decline {
		t.Errorf("sign-on with a token of another device: %s %s, want accepted", res.ResponseCode, res.Reason)
	}
}
