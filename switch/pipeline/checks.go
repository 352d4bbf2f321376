package pipeline

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/attest"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/metrics"
	"github.com/switchyard/switchyard/switch/registry"
)

// Terminals knows the merchants and terminals and checks what a request says about its
// terminal: status, merchant, bound identity, location, network, application version and
// SoftPOS device integrity.
type Terminals interface {
	Check(req registry.CheckRequest) registry.CheckResult
	Terminal(id string) (*registry.Terminal, bool)
	Seen(id string, addr netip.Addr, loc registry.GeoPoint, now time.Time)
	// Standing is the reason a sign-on's checks would refuse the terminal for its
	// status or its merchant's, registry.ReasonNone when both are active; it
	// records nothing.
	Standing(id string) registry.Reason
	// KeyUsers returns the terminals (not closed) whose TMK, TPK or TAK is key ID
	// id (*registry.Registry's): a key another terminal uses is not one a
	// terminal's key change may rotate.
	KeyUsers(id string) []string
}

// Attestations verify SoftPOS attestation tokens (DE 48 AJ; *attest.Verifier).
type Attestations interface {
	Verify(token, nonce string, now time.Time) (attest.Claims, attest.Failure)
}

// checkRequest builds the registry's view of a request. A malformed GL, AT or IF value
// is a format error (the second result names it). A signed attestation (AJ) is
// verified here, against this request's nonce; its verdicts and device go to the
// registry, which judges them against the terminal (age, bound device, findings).
func checkRequest(r *message.Request, c *frontend.Conn, macVerified bool, now time.Time, att Attestations) (registry.CheckRequest, string) {
	tl := &r.TLV
	cr := registry.CheckRequest{
		TerminalID: r.TID, MerchantID: r.MID, SourceIP: c.Remote.Addr(),
		DeviceID: tl.Device, SIM: tl.SIM, IMEI: tl.IMEI, Cell: tl.Cell, AppVersion: tl.AppVersion,
		AppName: tl.AppName, MACVerified: macVerified, Now: now,
		Request: registry.IncidentRequest{MTI: r.MTI, ProcCode: r.ProcCode, Type: TxnType(r.MTI, r.ProcCode), STAN: r.STAN},
	}
	if tl.Has&message.HasGeo != 0 {
		g, err := message.ParseGeo(tl.Geo)
		if err != nil {
			return cr, "GL"
		}
		cr.Location = registry.GeoPoint{Lat: g.Lat, Lon: g.Lon, Present: true}
	}
	// IF findings count under the MAC whatever the attestation says: a compromised
	// phone must not escape suspension by also sending a bad token.
	if tl.Has&message.HasIntegrity != 0 {
		cr.Findings = message.ParseFindings(tl.Integrity)
	}
	switch {
	case tl.Has&message.HasAttestToken != 0:
		cr.AttestationPresent, cr.AttestationSigned = true, true
		if att == nil {
			cr.AttestationFailure = registry.ReasonAttestationUnknown
			break
		}
		cl, fail := att.Verify(tl.AttestToken, attest.Nonce(r.TID, r.STAN, r.Amount, r.DE7), now)
		if fail != attest.OK {
			cr.AttestationFailure = registry.Reason(fail)
			break
		}
		cr.AttestationTime, cr.AttestedDevice = cl.Issued(), cl.Device
		cr.AttestationOK, cr.AttestationNoTEE = true, !cl.Integrity.TEE
		// The signed version counts, never the AV tag, which the app (or a hooked
		// one) writes itself: a token without ver leaves none, and the registry
		// refuses it as malformed where a minimum version applies.
		cr.AppVersion = cl.AppVersion
		// And the signed application: the minimum checked is that of the app the
		// service saw, not of the one the AN tag names.
		cr.AppName = cl.App
		// The service's findings are the phone's, whatever its IF tag says.
		if f := cl.Integrity.Findings(); len(f) > 0 {
			cr.Findings = append(f, cr.Findings...)
		}
	case tl.Has&message.HasAttestation != 0:
		a, err := message.ParseAttestation(tl.Attestation)
		if err != nil {
			return cr, "AT"
		}
		cr.AttestationPresent, cr.AttestationTime, cr.AttestationOK = true, time.Unix(a.Unix, 0), a.OK
	}
	return cr, ""
}

// checkTerminal runs the binding and integrity checks; it returns a response when the
// request is declined.
func (p *Pipeline) checkTerminal(ctx context.Context, t *txn, macVerified bool, purpose registry.CheckPurpose) (*registry.CheckResult, *frontend.Response, error) {
	if p.terminals == nil {
		return nil, nil, nil
	}
	start := p.now()
	cr, bad := checkRequest(t.req, t.conn, macVerified, start, p.attest)
	cr.Purpose = purpose
	cr.Request.RRN = t.rec.RRN
	if bad != "" {
		resp, err := p.decline(ctx, t, message.RCFormatError, "switch", "de48-"+bad+"-malformed")
		return nil, &resp, err
	}
	res := p.terminals.Check(cr)
	took := p.now().Sub(start)
	t.rec.Timings.Checks += took.Microseconds()
	t.stages.add(metrics.StageChecks, took)
	if res.Decline {
		if note := declineNote(&res, &cr); note != "" {
			noteReceived(&t.rec, note)
		}
		resp, err := p.decline(ctx, t, res.ResponseCode, "binding", string(res.Reason))
		return &res, &resp, err
	}
	if res.Facts.Flagged {
		// Accepted by the terminal's policy flag without what it is bound to: the
		// record says so, for the analyst who looks for a terminal off its place.
		noteReceived(&t.rec, flaggedNote(&res.Facts))
	}
	return &res, nil, nil
}

// declineNote is the journal's note on a request the binding checks refused: what
// the check found, for the analyst (the incident has the rest). No card data; the
// identities sent are quoted, cut to 64 bytes.
func declineNote(res *registry.CheckResult, cr *registry.CheckRequest) string {
	f, term := &res.Facts, res.Terminal
	quote := func(s string) string {
		if len(s) > 64 {
			s = s[:64]
		}
		return strconv.Quote(s)
	}
	switch res.Reason {
	case registry.ReasonLocationRange:
		radius := 0.0
		if term != nil && term.Location != nil {
			radius = term.Location.RadiusM
		}
		return fmt.Sprintf("binding: GL %.6f,%.6f is %.0f m from the registered place (radius %.0f m)", f.Lat, f.Lon, f.DistanceM, radius)
	case registry.ReasonDeviceMismatch:
		return "binding: DI " + quote(cr.DeviceID) + " is not the bound device"
	case registry.ReasonSIMMismatch:
		return "binding: SI " + quote(cr.SIM) + " is not the bound SIM"
	case registry.ReasonIMEIMismatch:
		return "binding: IM " + quote(cr.IMEI) + " is not the bound IMEI"
	case registry.ReasonIdentityMissing:
		return "binding: missing " + f.Missing
	case registry.ReasonNetworkDenied:
		return "binding: source " + cr.SourceIP.String() + " is outside the terminal's allowed networks"
	case registry.ReasonMerchantMismatch:
		if term != nil {
			return "binding: DE 42 " + quote(strings.TrimRight(cr.MerchantID, " ")) + " is not the terminal's merchant " + term.MerchantID
		}
	}
	return ""
}

// flaggedNote is the journal's note on a request the registry accepted under the
// terminal's missing-identity policy flag: what it left out.
func flaggedNote(f *registry.Facts) string {
	return "binding: " + f.FlagReason + " (" + f.Missing + "), accepted by the terminal's policy flag"
}

// noteReceived adds note to the note of rec's received event (newRecord's), after
// any note it has.
func noteReceived(rec *journal.Record, note string) {
	if len(rec.Events) == 0 || rec.Events[0].State != journal.StateReceived {
		return
	}
	if e := &rec.Events[0]; e.Note == "" {
		e.Note = note
	} else {
		e.Note += "; " + note
	}
}

// checkNetwork runs the terminal checks on a network management request, which has
// no journal record: it returns the response code and reason of a refusal, or "".
// attestedApp is the app claim of the request's attestation token (DE 48 AJ) when
// it verified and the checks found it good for the terminal (Facts.AttestationOK:
// fresh, of its bound device, TEE), though a sign-on does not require one: the
// application its AV is recorded under (offerUpdate). "" otherwise.
func (p *Pipeline) checkNetwork(t *txn) (rc, reason, attestedApp string) {
	if p.terminals == nil {
		return "", "", ""
	}
	cr, bad := checkRequest(t.req, t.conn, t.macOK, p.now(), p.attest)
	cr.Purpose = registry.CheckNetwork
	// A dialect's unMAC'd sign-in (cup) is not the terminal's proof of itself,
	// even for one registered without a MAC key (the cup terminal MACs with its
	// MAK all the same): it does not make the terminal seen.
	cr.Unproven = t.conn.UnMACdNetwork && !t.macOK
	if bad != "" {
		return message.RCFormatError, "de48-" + bad + "-malformed", ""
	}
	if strings.TrimSpace(cr.MerchantID) == "" {
		// DE 42 is optional in network management: the terminal's own merchant.
		if term, ok := p.terminals.Terminal(t.req.TID); ok {
			cr.MerchantID = term.MerchantID
		}
	}
	res := p.terminals.Check(cr)
	if res.Decline {
		return res.ResponseCode, string(res.Reason), ""
	}
	if res.Facts.Flagged { // no record to note it in: the log has it
		p.log.Warn().Str("tid", t.req.TID).Str("net_code", t.req.NetCode).Str("missing", res.Facts.Missing).
			Str("remote", t.conn.Remote.String()).Msg(flaggedNote(&res.Facts))
	}
	if cr.AttestationSigned && cr.AttestationFailure == registry.ReasonNone && res.Facts.AttestationOK {
		attestedApp = cr.AppName // the token's app claim (checkRequest)
	}
	return "", "", attestedApp
}
