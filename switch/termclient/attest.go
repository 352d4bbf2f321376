package termclient

import (
	"time"

	"github.com/switchyard/switchyard/switch/attest"
	"github.com/switchyard/switchyard/switch/message"
)

// AttestToken returns the signed attestation token (DE 48 AJ) the attestation
// service s would issue at iat for transaction tx on device, running the demo app
// (attest.DemoAppID) at appVersion: its nonce binds it to
// tx's TID, STAN, amount and DE 7, so tx.Time must be the time Build will put in
// DE 7 (set it before calling).
func AttestToken(s *attest.Signer, tx Txn, device, appVersion string, in attest.Integrity, iat time.Time) (string, error) {
	return s.Sign(attest.Claims{Device: device, App: attest.DemoAppID, AppVersion: appVersion, Integrity: in,
		IssuedAt: iat.Unix(), Nonce: attest.Nonce(tx.TID, tx.STAN, tx.Amount, message.FormatDE7(tx.Time))})
}

// IntegrityOf turns IF-style findings (root, hook, debugger, emulator) into the
// verdicts of a token; "no-tee" clears TEE. Other findings are ignored.
func IntegrityOf(findings []string) attest.Integrity {
	in := attest.Integrity{TEE: true}
	for _, f := range findings {
		switch f {
		case "root":
			in.Root = true
		case "hook":
			in.Hook = true
		case "debugger":
			in.Debugger = true
		case "emulator":
			in.Emulator = true
		case "no-tee":
			in.TEE = false
		}
	}
	return in
}
