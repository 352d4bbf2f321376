package pipeline

import (
	"testing"
	"time"

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
