package registry

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Reason identifies why Check declined (or flagged) a request. It is sent to the
// terminal in DE 48 tag RS and counted in the metrics.
type Reason string

// The reasons, in the order Check evaluates them (the first that applies wins).
const (
	ReasonNone Reason = ""

	ReasonTerminalUnknown   Reason = "terminal-unknown"      // 58: DE 41 not in the registry
	ReasonTerminalPending   Reason = "terminal-pending"      // 58: terminal registered, not activated
	ReasonTerminalSuspended Reason = "terminal-suspended"    // 58: terminal suspended (by an operator or automatically)
	ReasonTerminalClosed    Reason = "terminal-closed"       // 58: terminal closed
	ReasonMerchantMismatch  Reason = "merchant-mismatch"     // 03: DE 42 is not the terminal's merchant (terminal swapping, 切机)
	ReasonMerchantUnknown   Reason = "merchant-unknown"      // 03: the terminal's merchant is missing from the registry
	ReasonMerchantPending   Reason = "merchant-pending"      // 03: merchant registered, not activated
	ReasonMerchantFrozen    Reason = "merchant-frozen"       // 03: merchant frozen
	ReasonMerchantClosed    Reason = "merchant-closed"       // 03: merchant closed
	ReasonMACRequired       Reason = "mac-required"          // 63: MAC required but not verified (the lead refuses these earlier)
	ReasonDeviceCompromised Reason = "device-compromised"    // 59: SoftPOS IF finding; the terminal is suspended at once
	ReasonAttestationAbsent Reason = "attestation-missing"   // 58: SoftPOS message without AT
	ReasonAttestationFail   Reason = "attestation-fail"      // 58: SoftPOS AT verdict not OK
	ReasonAttestationStale  Reason = "attestation-stale"     // 58: SoftPOS AT older than the maximum (or dated in the future)
	ReasonDeviceMismatch    Reason = "device-mismatch"       // 59: DI differs from the bound device serial
	ReasonSIMMismatch       Reason = "sim-mismatch"          // 59: SI differs from the bound SIM ICCID
	ReasonIMEIMismatch      Reason = "imei-mismatch"         // 59: IM differs from the bound IMEI
	ReasonLocationRange     Reason = "location-out-of-range" // 59: GL farther from the deployed place than its radius
	ReasonIdentityMissing   Reason = "identity-missing"      // 59 (policy decline) or flag: a bound DI/SI/IM or the GL of a located terminal is absent
	ReasonNetworkDenied     Reason = "network-denied"        // 58: source address outside the allowed networks
	ReasonAppVersionLow     Reason = "app-version-low"       // 58: AV below the minimum version (or absent while a minimum is set)
)

// ReasonSoftPOSUnbound (58) refuses a SoftPOS terminal whose record has no device
// serial: one stored before validation required it (5 December 2026). Without a
// serial to compare the token's device with, any phone's tokens would pass. It is
// checked after the integrity findings, before the attestation.
const ReasonSoftPOSUnbound Reason = "softpos-device-unbound"

// The reasons of the signed attestation (DE 48 AJ, package attest), checked where
// attestation-stale is: each failure its own reason.
const (
	ReasonAttestationForged    Reason = "attestation-forged"          // 59: AJ not a JWS, or its signature does not verify
	ReasonAttestationUnknown   Reason = "attestation-unknown-key"     // 58: AJ signed by a key that is not pinned
	ReasonAttestationUnbound   Reason = "attestation-unbound"         // 59: AJ nonce is not this transaction's
	ReasonAttestationReplayed  Reason = "attestation-replayed"        // 59: AJ nonce seen before
	ReasonAttestationMalformed Reason = "attestation-malformed"       // 58: AJ verifies but lacks iat, nonce or device (or ver, where a minimum version applies)
	ReasonAttestationDevice    Reason = "attestation-device-mismatch" // 59: AJ device is not the terminal's bound device
	ReasonAttestationNoTEE     Reason = "attestation-no-tee"          // 58: AJ says the phone has no TEE
	ReasonAttestationLegacy    Reason = "attestation-legacy-refused"  // 58: unsigned AT from a terminal whose policy wants AJ
	ReasonAttestationApp       Reason = "attestation-app-refused"     // 58: AJ app is not an allowed application ID (attestation.apps)
)

// attestationReason reports whether reason is a refusal of the SoftPOS attestation
// itself (AT or AJ absent, failed, stale, refused by the verifier, of another
// device...), after which an incident must not say the attestation was OK.
func attestationReason(reason Reason) bool {
	switch reason {
	case ReasonAttestationAbsent, ReasonAttestationFail, ReasonAttestationStale, ReasonAttestationForged,
		ReasonAttestationUnknown, ReasonAttestationUnbound, ReasonAttestationReplayed, ReasonAttestationMalformed,
		ReasonAttestationDevice, ReasonAttestationNoTEE, ReasonAttestationLegacy, ReasonAttestationApp:
		return true
	}
	return false
}

// Response codes Check sets (DE 39).
const (
	RCInvalidMerchant    = "03"
	RCNotPermittedToTerm = "58"
	RCSuspectedFraud     = "59"
	RCSecurityViolation  = "63"
)

// Reasons lists every decline reason with its response code, for documentation,
// metrics and tests.
var Reasons = []struct {
	Reason       Reason
	ResponseCode string
	Incident     bool // whether the decline creates an incident
}{
	{ReasonTerminalUnknown, RCNotPermittedToTerm, false},
	{ReasonTerminalPending, RCNotPermittedToTerm, false},
	{ReasonTerminalSuspended, RCNotPermittedToTerm, false},
	{ReasonTerminalClosed, RCNotPermittedToTerm, false},
	{ReasonMerchantMismatch, RCInvalidMerchant, true},
	{ReasonMerchantUnknown, RCInvalidMerchant, false},
	{ReasonMerchantPending, RCInvalidMerchant, false},
	{ReasonMerchantFrozen, RCInvalidMerchant, false},
	{ReasonMerchantClosed, RCInvalidMerchant, false},
	{ReasonMACRequired, RCSecurityViolation, true},
	{ReasonDeviceCompromised, RCSuspectedFraud, true},
	{ReasonSoftPOSUnbound, RCNotPermittedToTerm, true},
	{ReasonAttestationAbsent, RCNotPermittedToTerm, true},
	{ReasonAttestationFail, RCNotPermittedToTerm, true},
	{ReasonAttestationStale, RCNotPermittedToTerm, true},
	{ReasonAttestationForged, RCSuspectedFraud, true},
	{ReasonAttestationUnknown, RCNotPermittedToTerm, true},
	{ReasonAttestationUnbound, RCSuspectedFraud, true},
	{ReasonAttestationReplayed, RCSuspectedFraud, true},
	{ReasonAttestationMalformed, RCNotPermittedToTerm, true},
	{ReasonAttestationDevice, RCSuspectedFraud, true},
	{ReasonAttestationNoTEE, RCNotPermittedToTerm, true},
	{ReasonAttestationLegacy, RCNotPermittedToTerm, true},
	{ReasonAttestationApp, RCNotPermittedToTerm, true},
	{ReasonDeviceMismatch, RCSuspectedFraud, true},
	{ReasonSIMMismatch, RCSuspectedFraud, true},
	{ReasonIMEIMismatch, RCSuspectedFraud, true},
	{ReasonLocationRange, RCSuspectedFraud, true},
	{ReasonIdentityMissing, RCSuspectedFraud, true},
	{ReasonNetworkDenied, RCNotPermittedToTerm, true},
	{ReasonAppVersionLow, RCNotPermittedToTerm, true},
}

// CheckRequest is what Check needs from a financial request. The lead's code fills
// it from DE 41, DE 42, the connection and the parsed DE 48 TLV. Strings may alias
// message buffers: Check copies what it keeps.
type CheckRequest struct {
	TerminalID string     // DE 41
	MerchantID string     // DE 42 (15 characters; trailing spaces are ignored)
	SourceIP   netip.Addr // remote address of the terminal connection

	DeviceID   string   // DE 48 DI
	SIM        string   // DE 48 SI
	IMEI       string   // DE 48 IM
	Location   GeoPoint // DE 48 GL; Present false when absent
	Cell       string   // DE 48 CL, recorded in incidents only
	AppVersion string   // DE 48 AV; for a verified signed attestation (AJ), its "ver" claim, even empty
	// AppName is the application the terminal runs, whose rollout groups' minimum
	// it is held to (GroupMinimums): DE 48 AN; for a verified signed attestation
	// (AJ), its "app" claim, even empty.
	AppName  string
	Findings []string // DE 48 IF, split at commas; empty means clean

	AttestationPresent bool      // DE 48 AT present
	AttestationTime    time.Time // AT UNIXSECONDS
	AttestationOK      bool      // AT VERDICT == "OK"; for AJ: verified, TEE present
	// AttestationSigned is set when the attestation came as a signed token (AJ) and
	// the lead verified it (package attest); AttestationTime is then its iat.
	// AttestationFailure is set instead when the token was refused (its reason).
	AttestationSigned  bool
	AttestationFailure Reason
	AttestedDevice     string // the token's device ID, compared with the bound device
	AttestationNoTEE   bool   // the token says the phone has no TEE

	MACVerified bool      // the message carried a MAC the lead verified
	Now         time.Time // the time of the request; zero means the registry's clock
	// Unproven: the message proves nothing of its sender whatever keys the terminal
	// is registered with (a dialect's network message its dialect does not MAC,
	// the cup sign-in): passing the checks, it does not make the terminal seen.
	Unproven bool

	// Request names the request for its incident (none of it is checked).
	Request IncidentRequest

	// Purpose narrows the checks for requests that are not new authorizations.
	Purpose CheckPurpose
}

// CheckPurpose says what a checked request is for.
type CheckPurpose uint8

const (
	// CheckFinancial is an authorization: every check.
	CheckFinancial CheckPurpose = iota
	// CheckReversal is a terminal's reversal, which gives a cardholder's money back
	// and must not be refused for the state of the terminal or its merchant: only
	// what proves the sender is checked (registered, its merchant, the MAC where
	// required, its device, SIM and IMEI, missing ones per the terminal's policy),
	// not the status, SoftPOS attestation, location, network or application version.
	CheckReversal
	// CheckNetwork is a sign-on or key change: every check but the SoftPOS
	// attestation (its MAC is required) and the application version (a sign-on is
	// where an outdated terminal is offered its update). A SoftPOS's integrity
	// findings count: it is declined device-compromised and suspended.
	CheckNetwork
	// CheckBatch is a terminal's batch (0500), which moves no money but closes the
	// terminal's totals: the sign-on's checks (status, merchant, MAC where required,
	// network; not the attestation or the application version; a SoftPOS's
	// integrity findings count), except that a batch carries totals, not its device:
	// a device, SIM, IMEI or location it does send must match, but one it leaves out
	// does not refuse it, whatever the terminal's missing-identity policy.
	CheckBatch
)

// Facts are the results of the checks, handed to the risk rules. The JSON names are
// also expr-lang names (struct tag "expr"), so a Facts value can be a rules
// environment as it is.
type Facts struct {
	// DistanceM is the haversine distance in metres from the deployed location to
	// GL; 0 when either is unknown.
	DistanceM     float64 `json:"distance_m" expr:"distance_m"`
	LocationKnown bool    `json:"location_known" expr:"location_known"` // GL present and valid
	// Lat and Lon are the location the terminal reported in GL (decimal degrees);
	// 0 when LocationKnown is false.
	Lat float64 `json:"lat" expr:"lat"`
	Lon float64 `json:"lon" expr:"lon"`
	// LocationOK: no deployed location, or GL within its radius.
	LocationOK bool `json:"location_ok" expr:"location_ok"`
	// DeviceOK, SIMOK, IMEIOK: the identity is not bound, or it is bound and the
	// request carries exactly the bound value.
	DeviceOK bool `json:"device_ok" expr:"device_ok"`
	SIMOK    bool `json:"sim_ok" expr:"sim_ok"`
	IMEIOK   bool `json:"imei_ok" expr:"imei_ok"`
	// IdentityMatched lists the bound identities that were present and equal, in the
	// order device,sim,imei ("" when none).
	IdentityMatched string `json:"identity_matched" expr:"identity_matched"`
	// Missing lists what a bound terminal left out, from device,sim,imei,location.
	Missing      string `json:"missing" expr:"missing"`
	NetworkOK    bool   `json:"network_ok" expr:"network_ok"`         // no allowed networks, or the source address is in one (the cell, CL, is not checked)
	AppVersionOK bool   `json:"app_version_ok" expr:"app_version_ok"` // no minimum, or AV at least the minimum
	// AttestationAgeS is the age of the SoftPOS attestation in seconds; -1 when AT
	// was absent.
	AttestationAgeS float64  `json:"attestation_age_s" expr:"attestation_age_s"`
	AttestationOK   bool     `json:"attestation_ok" expr:"attestation_ok"` // AT present, verdict OK and fresh
	Findings        []string `json:"findings" expr:"findings"`             // DE 48 IF findings as sent (aliases the request)
	// Flagged is set when the terminal's policy is "flag" and identity or location
	// was missing; FlagReason then says why.
	Flagged    bool   `json:"flagged" expr:"flagged"`
	FlagReason string `json:"flag_reason,omitempty" expr:"flag_reason"`

	// Merchant and terminal facts (also available in full in CheckResult). Plain
	// strings, so that rule expressions compare them with string literals.
	MerchantTier    string `json:"merchant_tier" expr:"merchant_tier"`
	MerchantRating  string `json:"merchant_rating" expr:"merchant_rating"`
	MCC             string `json:"mcc" expr:"mcc"`
	Region          string `json:"region" expr:"region"`
	Limits          Limits `json:"limits" expr:"limits"`
	MerchantStatus  string `json:"merchant_status" expr:"merchant_status"`
	MerchantAgeDays int    `json:"merchant_age_days" expr:"merchant_age_days"`
	TerminalKind    string `json:"terminal_kind" expr:"terminal_kind"`
	TerminalStatus  string `json:"terminal_status" expr:"terminal_status"`
	TerminalAgeDays int    `json:"terminal_age_days" expr:"terminal_age_days"`
	AppVersion      string `json:"app_version" expr:"app_version"` // AV as sent (aliases the request)
}

// CheckResult is the outcome of Check. When Decline is set, ResponseCode goes into
// DE 39 and Reason into DE 48 RS, and nothing is forwarded.
type CheckResult struct {
	Decline      bool
	ResponseCode string
	Reason       Reason
	Facts        Facts
	// Merchant and Terminal are the records the checks used (immutable snapshots;
	// nil when unknown). Do not modify them.
	Merchant *Merchant
	Terminal *Terminal
}

var (
	matchedNames [8]string // bit 0 device, 1 sim, 2 imei
	missingNames [16]string
)

func init() {
	parts := []string{"device", "sim", "imei", "location"}
	for i := range missingNames {
		var s []string
		for b := 0; b < 4; b++ {
			if i&(1<<b) != 0 {
				s = append(s, parts[b])
			}
		}
		missingNames[i] = strings.Join(s, ",")
		if i < 8 {
			matchedNames[i] = missingNames[i]
		}
	}
}

// checker runs the binding and SoftPOS integrity checks of every financial request
// (Check), the transaction hot path. It reads only the store's snapshot (atomic
// pointers, no lock shared with writers, no allocation for an accepted request); a
// decline hands its incident to the incidents queue, and a SoftPOS reporting
// device-integrity findings is suspended through the review workflow's
// systemSuspend.
type checker struct {
	*store
	incidents *incidents
	review    *review
}

// Check runs the binding and SoftPOS integrity checks on a financial request and
// records that the terminal was seen when the request proves to be the terminal's
// (seenProof). It reads only the in-memory snapshot and does not allocate on the
// path of an accepted request. A violation creates an incident (written in the
// background); a SoftPOS device-integrity finding also suspends the terminal before
// Check returns, so the next request is refused.
func (r *checker) Check(req CheckRequest) CheckResult {
	if req.Now.IsZero() {
		req.Now = r.clock()
	}
	res := r.check(req)
	if tsl := r.snap.Load().terminals[req.TerminalID]; tsl != nil && seenProof(tsl.rec.Load(), &req, &res) {
		tsl.touch(req.SourceIP, req.Location, req.Now)
	}
	return res
}

// seenProof says whether a request checked with result res proves that the
// terminal t sent it, so that its time, source address and location may become
// the terminal's last-seen, which the console shows and the offline alerts read:
// its MAC verified under the terminal's key, or, for a terminal registered without
// any MAC key (no TAK, no MAC required), it passed the checks and is not Unproven
// (a cup sign-in: the terminal's first MAC'd request after it is). Until 6 December 2026
// every request naming a known terminal counted, a refused one without its MAC too:
// whoever knew a stolen terminal's ID kept it looking online at its shop.
func seenProof(t *Terminal, req *CheckRequest, res *CheckResult) bool {
	if req.MACVerified {
		return true
	}
	return !t.HasMACKey() && !res.Decline && !req.Unproven
}

// check is Check without the last-seen.
func (r *checker) check(req CheckRequest) CheckResult {
	now := req.Now
	var res CheckResult
	res.Facts.AttestationAgeS = -1
	res.Facts.Findings = req.Findings
	res.Facts.AppVersion = req.AppVersion

	s := r.snap.Load()
	tsl := s.terminals[req.TerminalID]
	if tsl == nil {
		return r.decline(res, ReasonTerminalUnknown, nil)
	}
	t := tsl.rec.Load()
	res.Terminal = t
	res.Facts.TerminalKind = string(t.Kind)
	res.Facts.TerminalStatus = string(t.Status)
	res.Facts.TerminalAgeDays = ageDays(t.CreatedAt, now)
	var m *Merchant
	if msl := s.merchants[t.MerchantID]; msl != nil {
		m = msl.rec.Load()
		res.Merchant = m
		res.Facts.MerchantTier = m.Tier
		res.Facts.MerchantRating = m.Rating
		res.Facts.MCC = m.MCC
		res.Facts.Region = m.Region
		res.Facts.Limits = m.Limits
		res.Facts.MerchantStatus = string(m.Status)
		res.Facts.MerchantAgeDays = ageDays(m.CreatedAt, now)
	}

	// Facts first, so that rules and incidents see all of them.
	f := &res.Facts
	var matched, missing int
	f.DeviceOK, matched, missing = identityFact(t.Binding.DeviceSerial, req.DeviceID, 0, matched, missing)
	f.SIMOK, matched, missing = identityFact(t.Binding.ICCID, req.SIM, 1, matched, missing)
	f.IMEIOK, matched, missing = identityFact(t.Binding.IMEI, req.IMEI, 2, matched, missing)
	f.LocationKnown = req.Location.valid()
	if f.LocationKnown {
		f.Lat, f.Lon = req.Location.Lat, req.Location.Lon
	}
	f.LocationOK = true
	if t.Location != nil {
		if f.LocationKnown {
			f.DistanceM = Haversine(t.Location.Lat, t.Location.Lon, req.Location.Lat, req.Location.Lon)
			f.LocationOK = f.DistanceM <= t.Location.RadiusM
		} else {
			f.LocationOK = false
			missing |= 1 << 3
		}
	}
	f.IdentityMatched = matchedNames[matched]
	f.Missing = missingNames[missing]
	f.NetworkOK = networkAllowed(t.AllowedNetworks, req.SourceIP)
	// The higher of the terminal's own minimum and its rollout group's: a group's
	// rollout never lowers a floor an operator set (a security fix, say).
	minVer := t.minVer
	if _, gm := r.groupMinimum(t, m, req.AppName); gm != nil && (minVer == nil || compareParts(gm, minVer) > 0) {
		minVer = gm
	}
	f.AppVersionOK = minVer == nil || (req.AppVersion != "" && compareVersion(req.AppVersion, minVer) >= 0)
	softpos := t.Kind == KindSoftPOS
	var attReason Reason
	if req.AttestationFailure != ReasonNone {
		attReason = req.AttestationFailure
	} else if req.AttestationPresent {
		age := now.Sub(req.AttestationTime)
		f.AttestationAgeS = age.Seconds()
		maxAge := r.opts.MaxAttestationAge
		if t.AttestMaxAge > 0 {
			maxAge = time.Duration(t.AttestMaxAge)
		}
		switch {
		case !req.AttestationSigned && !t.AttestLegacy:
			attReason = ReasonAttestationLegacy
		case req.AttestationTime.Before(now.Add(-maxAge)) || req.AttestationTime.After(now.Add(maxAge)):
			// Times compared, not age: now.Sub saturates for a time centuries ahead
			// and the negation of the smallest Duration is itself, so such an
			// attestation compared as an age was fresh forever.
			attReason = ReasonAttestationStale
		case req.AttestationSigned && req.AttestedDevice != t.Binding.DeviceSerial:
			// An unbound SoftPOS never gets here (softpos-device-unbound first), so
			// no token's dev is trusted for want of a serial to compare it with.
			attReason = ReasonAttestationDevice
		case req.AttestationSigned && req.AppVersion == "" && minVer != nil:
			// The version checked against the minimum must be the signed one: the
			// unsigned AV tag proves nothing, so a token without ver is refused.
			attReason = ReasonAttestationMalformed
		case req.AttestationNoTEE:
			attReason = ReasonAttestationNoTEE
		case !req.AttestationOK:
			attReason = ReasonAttestationFail
		default:
			f.AttestationOK = true
		}
	} else {
		attReason = ReasonAttestationAbsent
	}
	hasFindings := false
	for _, x := range req.Findings {
		if strings.TrimSpace(x) != "" {
			hasFindings = true
			break
		}
	}

	if req.Purpose == CheckReversal {
		return r.checkReversal(res, &req, t, m, missing)
	}
	if req.Purpose == CheckNetwork || req.Purpose == CheckBatch {
		// Neither the attestation nor the version: a sign-on is where an outdated
		// phone gets its update. Its integrity findings still count (below): a
		// phone that says it is rooted gets no working keys.
		attReason, f.AppVersionOK = ReasonNone, true
	}
	// Decisions, in order.
	if why := terminalStanding(t); why != ReasonNone {
		return r.decline(res, why, nil)
	}
	if strings.TrimRight(req.MerchantID, " ") != t.MerchantID {
		return r.decline(res, ReasonMerchantMismatch, &req)
	}
	if why := merchantStanding(m); why != ReasonNone {
		return r.decline(res, why, nil)
	}
	if t.MACRequired() && !req.MACVerified {
		return r.decline(res, ReasonMACRequired, &req)
	}
	if softpos {
		if hasFindings {
			res = r.decline(res, ReasonDeviceCompromised, &req)
			r.review.autoSuspend(t.ID, now, req.Findings)
			return res
		}
		if t.Binding.DeviceSerial == "" {
			// Validation refuses such a record since 5 December 2026; one stored
			// before is refused, not trusted: its tokens could come from any phone.
			return r.decline(res, ReasonSoftPOSUnbound, &req)
		}
		if attReason != ReasonNone {
			if attReason == ReasonAttestationDevice {
				// The signed device is not the bound one, whatever DI says: the
				// facts (the incident's) must not say the device passed.
				f.DeviceOK = false
			}
			return r.decline(res, attReason, &req)
		}
	}
	switch {
	case !f.DeviceOK && missing&1 == 0:
		return r.decline(res, ReasonDeviceMismatch, &req)
	case !f.SIMOK && missing&2 == 0:
		return r.decline(res, ReasonSIMMismatch, &req)
	case !f.IMEIOK && missing&4 == 0:
		return r.decline(res, ReasonIMEIMismatch, &req)
	case f.LocationKnown && !f.LocationOK:
		return r.decline(res, ReasonLocationRange, &req)
	}
	if missing != 0 && req.Purpose != CheckBatch {
		if t.MissingPolicy == PolicyFlag {
			f.Flagged, f.FlagReason = true, string(ReasonIdentityMissing)
			r.m.flag(missing)
		} else {
			return r.decline(res, ReasonIdentityMissing, &req)
		}
	}
	if !f.NetworkOK {
		return r.decline(res, ReasonNetworkDenied, &req)
	}
	if !f.AppVersionOK {
		return r.decline(res, ReasonAppVersionLow, &req)
	}
	return res
}

// terminalStanding is the reason a terminal's status refuses its requests (but its
// reversals), ReasonNone when it is active.
func terminalStanding(t *Terminal) Reason {
	switch t.Status {
	case TerminalActive:
		return ReasonNone
	case TerminalPending:
		return ReasonTerminalPending
	case TerminalSuspended:
		return ReasonTerminalSuspended
	default:
		return ReasonTerminalClosed
	}
}

// merchantStanding is the reason a merchant (nil: unknown) refuses its terminals'
// requests (but their reversals), ReasonNone when it is active.
func merchantStanding(m *Merchant) Reason {
	if m == nil {
		return ReasonMerchantUnknown
	}
	switch m.Status {
	case MerchantActive:
		return ReasonNone
	case MerchantPending:
		return ReasonMerchantPending
	case MerchantFrozen:
		return ReasonMerchantFrozen
	default:
		return ReasonMerchantClosed
	}
}

// Standing says whether terminal id may sign on as far as the standing goes: it
// returns the reason a sign-on's checks (CheckNetwork) would refuse it for its own
// status or its merchant's (unknown, pending, suspended, closed; pending, frozen,
// closed), or ReasonNone when both are active. Unlike Check it records nothing (no
// decline counted, no incident, not seen): an echo, answered without the terminal
// checks, asks it before the update offer (switch/pipeline).
func (r *checker) Standing(id string) Reason {
	s := r.snap.Load()
	tsl := s.terminals[id]
	if tsl == nil {
		return ReasonTerminalUnknown
	}
	t := tsl.rec.Load()
	if why := terminalStanding(t); why != ReasonNone {
		return why
	}
	var m *Merchant
	if msl := s.merchants[t.MerchantID]; msl != nil {
		m = msl.rec.Load()
	}
	return merchantStanding(m)
}

// checkReversal decides a reversal (CheckReversal) from the facts Check gathered.
func (r *checker) checkReversal(res CheckResult, req *CheckRequest, t *Terminal, m *Merchant, missing int) CheckResult {
	f := &res.Facts
	switch {
	case strings.TrimRight(req.MerchantID, " ") != t.MerchantID:
		return r.decline(res, ReasonMerchantMismatch, req)
	case m == nil:
		return r.decline(res, ReasonMerchantUnknown, nil)
	case t.MACRequired() && !req.MACVerified:
		return r.decline(res, ReasonMACRequired, req)
	case !f.DeviceOK && missing&1 == 0:
		return r.decline(res, ReasonDeviceMismatch, req)
	case !f.SIMOK && missing&2 == 0:
		return r.decline(res, ReasonSIMMismatch, req)
	case !f.IMEIOK && missing&4 == 0:
		return r.decline(res, ReasonIMEIMismatch, req)
	}
	if missing&7 != 0 { // the location does not count here
		if t.MissingPolicy == PolicyFlag {
			f.Flagged, f.FlagReason = true, string(ReasonIdentityMissing)
			r.m.flag(missing & 7)
		} else {
			return r.decline(res, ReasonIdentityMissing, req)
		}
	}
	return res
}

// identityFact compares a bound identity with the one sent; bit is its position in
// the matched/missing masks.
func identityFact(bound, sent string, bit int, matched, missing int) (bool, int, int) {
	switch {
	case bound == "":
		return true, matched, missing
	case sent == "":
		return false, matched, missing | 1<<bit
	case sent == bound:
		return true, matched | 1<<bit, missing
	}
	return false, matched, missing
}

func (r *checker) decline(res CheckResult, reason Reason, req *CheckRequest) CheckResult {
	res.Decline = true
	res.Reason = reason
	res.ResponseCode = reasonCode(reason)
	r.m.decline(reason)
	if req != nil {
		r.incidents.recordIncident(res, req)
	}
	return res
}

func reasonCode(reason Reason) string {
	for _, x := range Reasons {
		if x.Reason == reason {
			return x.ResponseCode
		}
	}
	return RCNotPermittedToTerm
}

func ageDays(since, now time.Time) int {
	if since.IsZero() || now.Before(since) {
		return 0
	}
	return int(now.Sub(since) / (24 * time.Hour))
}

func networkAllowed(nets []netip.Prefix, ip netip.Addr) bool {
	if len(nets) == 0 {
		return true
	}
	ip = ip.Unmap()
	for _, p := range nets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// EarthRadiusM is the mean Earth radius used by Haversine: the IUGG mean radius
// R1 = (2a + b) / 3 of the WGS84 ellipsoid, 6,371,008.8 m.
const EarthRadiusM = 6371008.8

// Haversine returns the great-circle distance in metres between two WGS84 points
// (decimal degrees), on a sphere of radius EarthRadiusM. Against the ellipsoid the
// error is below 0.5 %, far inside any deployment radius.
func Haversine(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	sLat := math.Sin(dLat / 2)
	sLon := math.Sin(dLon / 2)
	a := sLat*sLat + math.Cos(lat1*rad)*math.Cos(lat2*rad)*sLon*sLon
	if a > 1 {
		a = 1
	}
	return 2 * EarthRadiusM * math.Asin(math.Sqrt(a))
}

// parseVersion parses a strictly dotted numeric version such as "2.10.3".
func parseVersion(s string) ([]int, error) {
	parts := strings.Split(s, ".")
	out := make([]int, len(parts))
	for i, p := range parts {
		if !isDigits(p) || len(p) > 9 {
			return nil, fmt.Errorf("version %q: part %d %q is not a number", s, i+1, p)
		}
		out[i], _ = strconv.Atoi(p)
	}
	return out, nil
}

// ParseVersion parses a strictly dotted numeric version such as "2.10.3" into its
// parts, as GroupMinimums returns them.
func ParseVersion(s string) ([]int, error) { return parseVersion(s) }

// compareVersion compares a version as sent in AV with a parsed minimum, part by
// part numerically (1.10 > 1.9; missing parts count as 0, so 1.2 == 1.2.0). Each
// part of v counts by its leading digits ("3-beta" is 3; no digits is 0). It
// returns -1, 0 or 1 and does not allocate.
func compareVersion(v string, min []int) int {
	i := 0
	for k := 0; i < len(v) || k < len(min); k++ {
		n, nd, stop := 0, 0, false
		for i < len(v) && v[i] != '.' {
			c := v[i]
			if !stop && c >= '0' && c <= '9' && nd < 9 {
				n = n*10 + int(c-'0')
				nd++
			} else {
				stop = true // only the leading digits of a part count
			}
			i++
		}
		if i < len(v) {
			i++ // the dot
		}
		want := 0
		if k < len(min) {
			want = min[k]
		}
		if n != want {
			if n < want {
				return -1
			}
			return 1
		}
	}
	return 0
}

// CompareParts compares two versions parsed by ParseVersion as compareVersion does
// (missing parts count as 0); it returns -1, 0 or 1 and does not allocate.
func CompareParts(a, b []int) int { return compareParts(a, b) }

// compareParts is CompareParts.
func compareParts(a, b []int) int {
	for k := 0; k < len(a) || k < len(b); k++ {
		x, y := 0, 0
		if k < len(a) {
			x = a[k]
		}
		if k < len(b) {
			y = b[k]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// CompareVersions compares two dotted numeric versions like compareVersion; it
// returns an error when b is not strictly numeric.
func CompareVersions(a, b string) (int, error) {
	mv, err := parseVersion(b)
	if err != nil {
		return 0, err
	}
	return compareVersion(a, mv), nil
}
