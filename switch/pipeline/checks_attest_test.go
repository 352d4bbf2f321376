package pipeline

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/attest"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

type fixedVerifier struct {
	c    attest.Claims
	fail attest.Failure
}

func (v fixedVerifier) Verify(string, string, time.Time) (attest.Claims, attest.Failure) {
	return v.c, v.fail
}

// TestCheckRequestAttestation: a refused token's reason goes to the registry and the
// IF findings still count (a compromised phone is suspended whatever its token);
// a good token's verdicts and device go to the registry beside IF's.
func TestCheckRequestAttestation(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	req := &message.Request{TID: "T0000002", STAN: "000001", Amount: 100, DE7: "1202010000"}
	req.TLV.Has = message.HasAttestToken | message.HasIntegrity
	req.TLV.AttestToken, req.TLV.Integrity = "x.y.z", "root"
	c := &frontend.Conn{}
	cr, bad := checkRequest(req, c, true, now, fixedVerifier{fail: attest.FailForged})
	if bad != "" || cr.AttestationFailure != registry.ReasonAttestationForged || len(cr.Findings) != 1 || cr.Findings[0] != "root" {
		t.Fatalf("forged token with IF root: %+v %q", cr, bad)
	}
	req.TLV.Integrity = ""
	good := attest.Claims{Device: "SP-1", AppVersion: "2.0", IssuedAt: now.Unix(), Integrity: attest.Integrity{Hook: true, TEE: true}}
	cr, _ = checkRequest(req, c, true, now, fixedVerifier{c: good})
	if cr.AttestationFailure != "" || !cr.AttestationSigned || cr.AttestedDevice != "SP-1" || cr.AppVersion != "2.0" ||
		len(cr.Findings) != 1 || cr.Findings[0] != "hook" || cr.AttestationNoTEE {
		t.Fatalf("good token with hook: %+v", cr)
	}
	cr, _ = checkRequest(req, c, true, now, nil)
	if cr.AttestationFailure != registry.ReasonAttestationUnknown {
		t.Fatalf("no verifier: %+v", cr)
	}
}

// TestSignedVersionNotTheAVTag: with a verified token the version handed to the
// registry is the token's ver, never the AV tag the app writes itself, even when
// the token has none (the registry then refuses it where a minimum applies); the
// legacy AT keeps the AV tag.
func TestSignedVersionNotTheAVTag(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	req := &message.Request{TID: "T0000002", STAN: "000001", Amount: 100, DE7: "1202010000"}
	req.TLV.Has = message.HasAttestToken | message.HasAppVersion
	req.TLV.AttestToken, req.TLV.AppVersion = "x.y.z", "9.9.9"
	c := &frontend.Conn{}
	for ver, want := range map[string]string{"": "", "1.2.0": "1.2.0"} {
		cl := attest.Claims{Device: "SP-1", AppVersion: ver, IssuedAt: now.Unix(), Integrity: attest.Integrity{TEE: true}}
		if cr, _ := checkRequest(req, c, true, now, fixedVerifier{c: cl}); cr.AppVersion != want {
			t.Errorf("token ver %q, AV 9.9.9: version %q, want %q", ver, cr.AppVersion, want)
		}
	}
	req.TLV.Has = message.HasAttestation | message.HasAppVersion
	req.TLV.Attestation = "1800000000:OK"
	if cr, _ := checkRequest(req, c, true, now, fixedVerifier{}); cr.AppVersion != "9.9.9" {
		t.Errorf("legacy AT, AV 9.9.9: version %q", cr.AppVersion)
	}
}

// TestRulesSeeTheSignedVersion: the rules' terminal.app_version is the version the
// registry judged (a signed attestation's ver), not the AV tag a hooked app may
// write; before, a rule holding old versions back read the unsigned tag.
func TestRulesSeeTheSignedVersion(t *testing.T) {
	p := &Pipeline{}
	tx := &txn{req: &message.Request{TID: "T0000002", STAN: "000001", Amount: 100}}
	tx.req.TLV.Has, tx.req.TLV.AppVersion = message.HasAttestToken|message.HasAppVersion, "9.9.9"
	res := &registry.CheckResult{Terminal: &registry.Terminal{ID: "T0000002", Kind: registry.KindSoftPOS}}
	res.Facts.AppVersion = "1.2.0"
	var in risk.Input
	p.fillInput(&in, tx, res, nil)
	if in.Terminal.AppVersion != "1.2.0" {
		t.Errorf("terminal.app_version %q, want the signed 1.2.0 (AV tag 9.9.9)", in.Terminal.AppVersion)
	}
}
