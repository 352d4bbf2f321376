package registry

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchyard/switchyard/hsm/dukpt"
	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/internal/currency"
	"github.com/switchyard/switchyard/switch/qr"
)

// MerchantStatus is the lifecycle state of a merchant.
type MerchantStatus string

// The merchant states. Only an active merchant may transact.
const (
	MerchantPending MerchantStatus = "pending" // registered, not yet allowed to transact
	MerchantActive  MerchantStatus = "active"  // may transact
	MerchantFrozen  MerchantStatus = "frozen"  // temporarily barred (risk, compliance)
	MerchantClosed  MerchantStatus = "closed"  // terminated; final
)

// Valid reports whether s is one of the defined merchant states.
func (s MerchantStatus) Valid() bool {
	switch s {
	case MerchantPending, MerchantActive, MerchantFrozen, MerchantClosed:
		return true
	}
	return false
}

// TerminalStatus is the lifecycle state of a terminal.
type TerminalStatus string

// The terminal states. Only an active terminal may transact.
const (
	TerminalPending   TerminalStatus = "pending"   // registered, not yet deployed
	TerminalActive    TerminalStatus = "active"    // may transact
	TerminalSuspended TerminalStatus = "suspended" // barred until a reviewed resume
	TerminalClosed    TerminalStatus = "closed"    // retired; final
)

// Valid reports whether s is one of the defined terminal states.
func (s TerminalStatus) Valid() bool {
	switch s {
	case TerminalPending, TerminalActive, TerminalSuspended, TerminalClosed:
		return true
	}
	return false
}

// TerminalKind is the kind of acceptance device.
type TerminalKind string

// The terminal kinds.
const (
	KindPOS     TerminalKind = "pos"     // fixed or portable POS terminal
	KindMPOS    TerminalKind = "mpos"    // card reader paired with a phone or tablet
	KindSoftPOS TerminalKind = "softpos" // tap-on-phone app (PCI SPoC/MPoC); MAC always required
)

// Valid reports whether k is one of the defined terminal kinds.
func (k TerminalKind) Valid() bool {
	switch k {
	case KindPOS, KindMPOS, KindSoftPOS:
		return true
	}
	return false
}

// Policy decides what happens when a bound terminal omits an identity (DI, SI, IM)
// or its location (GL).
type Policy string

// The missing-identity policies.
const (
	PolicyDecline Policy = "decline" // decline with 59 identity-missing
	PolicyFlag    Policy = "flag"    // accept and set Facts.Flagged for the risk rules
)

// Valid reports whether p is one of the defined policies.
func (p Policy) Valid() bool { return p == PolicyDecline || p == PolicyFlag }

// PINMode says how a terminal's PIN blocks are encrypted.
type PINMode string

// The PIN modes.
const (
	PINModeNone  PINMode = ""      // the terminal sends no PINs
	PINModeTPK   PINMode = "tpk"   // under the terminal PIN key named by KeyRefs.TPK
	PINModeDUKPT PINMode = "dukpt" // DUKPT under the BDK named by KeyRefs.BDK
)

// Tiers of merchants used by the demo fleet. Tier is free text for the registry
// (validated as a short identifier); these are the conventional values.
const (
	TierMicro      = "micro"
	TierStandard   = "standard"
	TierEnterprise = "enterprise"
)

// Risk ratings of a merchant, from the acquirer's underwriting.
const (
	RatingLow    = "low"
	RatingMedium = "medium"
	RatingHigh   = "high"
)

// Limits are a merchant's amount limits in minor units of the transaction currency,
// and its daily count limit. Zero means no limit. The registry stores them; the risk
// rules enforce them for a terminal's transactions (rules/10-limits.yaml: the
// merchant-*-limit rules and merchant-daily-count), the QR desk for a notified
// merchant-presented payment (switch/server/orderlimits.go).
type Limits struct {
	PerTransaction int64 `json:"per_transaction,omitempty" expr:"per_transaction"`
	Daily          int64 `json:"daily,omitempty" expr:"daily"`
	Monthly        int64 `json:"monthly,omitempty" expr:"monthly"`
	// DailyCount is the most approved purchases and pre-authorizations the merchant
	// may take in 24 rolling hours, whatever their amounts (voided or reversed ones
	// do not count, refunded ones do).
	DailyCount int64 `json:"daily_count,omitempty" expr:"daily_count"`
}

// Merchant is a merchant record. Records handed out by the registry are immutable
// snapshots: never modify one, copy it.
type Merchant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// NameLatin is the merchant's name in printable ASCII (1 to 25 characters, ""
	// for none), for a name in another script: a merchant-presented QR code's ID 59
	// (EMVCo's merchant name, which takes the common character set only) carries
	// it, the language template (ID 64) the name. Without it ID 59 carries the
	// merchant ID (switch/server qrNames).
	NameLatin string `json:"name_latin,omitempty"`
	// NameLanguage is the language of Name, an ISO 639-1 code ("zh", "ja"; ""
	// for none): the QR code's language template's preference (ID 64, its ID 00).
	// Without it the language is derived from the name's script (qr.NameLanguage:
	// Han "ZH"), and a name whose script names no language (Cyrillic, accented
	// Latin) gets no template.
	NameLanguage string `json:"name_language,omitempty"`
	MCC          string `json:"mcc"`
	Region       string `json:"region"`
	// Group is the merchant's group: a chain, a franchise or a parent company, the
	// merchants one owner runs ("" for none). The risk rules count across it
	// (counter dimension merchant_group) and see it as merchant.group.
	Group string `json:"group,omitempty"`
	// Currency is the currency the merchant transacts in, ISO 4217 numeric
	// ("156"; currency.Payable), "" for any (as every merchant before 6 December
	// 2026). When set, a card transaction or QR order at the merchant in another
	// currency (DE 49) is declined 58 merchant-currency-mismatch before the
	// issuer or the rules are asked (pipeline.ReasonMerchantCurrency), and the
	// merchant's limits (its own, its tier's, its grade's) are minor units of it,
	// and shown in it (docs/merchant-risk.md, "Currency of the limits"). The
	// rules see it as merchant.currency.
	Currency  string         `json:"currency,omitempty"`
	Tier      string         `json:"tier"`
	Rating    string         `json:"rating"`
	Limits    Limits         `json:"limits"`
	Status    MerchantStatus `json:"status"`
	Note      string         `json:"status_reason,omitempty"` // why the status was last set
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
	Version   int64          `json:"version"` // incremented by every applied change
}

// LimitsCurrency is the currency the merchant's limits are shown in: its own
// (Currency), or the acquirer's (currency.Acquirer) for a merchant that takes any.
func (m *Merchant) LimitsCurrency() string {
	if m.Currency != "" {
		return m.Currency
	}
	return currency.Acquirer
}

// Binding is the identity a terminal is bound to. An empty field is not bound.
type Binding struct {
	DeviceSerial string `json:"device_serial,omitempty"` // DE 48 DI
	ICCID        string `json:"iccid,omitempty"`         // DE 48 SI
	IMEI         string `json:"imei,omitempty"`          // DE 48 IM
}

// Deployment is where a terminal is deployed: a circle of RadiusM metres around a
// WGS84 point.
type Deployment struct {
	Lat     float64 `json:"lat"`
	Lon     float64 `json:"lon"`
	RadiusM float64 `json:"radius_m"`
}

// KeyRefs names a terminal's keys in the key store and says how they are used. The
// registry stores only references, never key material.
type KeyRefs struct {
	TMK         string  `json:"tmk,omitempty"`          // e.g. "T0000001.TMK"
	TPK         string  `json:"tpk,omitempty"`          // e.g. "T0000001.TPK" (a key ID of the key store)
	TAK         string  `json:"tak,omitempty"`          // e.g. "T0000002.TAK"
	BDK         string  `json:"bdk,omitempty"`          // DUKPT BDK, e.g. "BDK.FFFF9876543210E"
	PINMode     PINMode `json:"pin_mode,omitempty"`     // "", "tpk" or "dukpt"
	MACRequired bool    `json:"mac_required,omitempty"` // always true for softpos
	// DUKPTDevice binds the terminal's DUKPT device: its KSN without the counter
	// (ANSI X9.24: key set ID and device ID), 15 hex digits for TDES DUKPT (the
	// 15th with the counter's top bit cleared) or 16 for AES DUKPT (the initial
	// key ID), upper case; a whole KSN given is stored so. A KSN of another device
	// from the terminal is refused (63 ksn-not-bound); empty: any KSN under the
	// terminal's BDK (the BDK's KSN prefix), as before 6 December 2026.
	DUKPTDevice string `json:"dukpt_device,omitempty"`
}

// KSNBound reports whether ksn (as the terminal sent it) is of the terminal's
// DUKPT device: its non-counter part is DUKPTDevice, or the terminal has none.
// It does not allocate.
func (k *KeyRefs) KSNBound(ksn string) bool {
	if k.DUKPTDevice == "" {
		return true
	}
	if len(ksn) != 20 && len(ksn) != 24 {
		return false
	}
	var buf [24]byte
	return string(dukpt.AppendKSNPrefix(buf[:0], ksn)) == k.DUKPTDevice
}

// normalizeDUKPTDevice is a DUKPT device as the registry stores it: upper case, a
// whole KSN cut to its non-counter part, and a TDES device's 15th digit without
// the counter's top bit (dukpt.NormalizePrefix). Text that is not hexadecimal is
// left as it is, for Validate to name.
func normalizeDUKPTDevice(s string) string {
	s = strings.TrimSpace(s)
	if !isHex(s) {
		return s
	}
	switch len(s) {
	case dukpt.TDESPrefixDigits, 20:
		return dukpt.NormalizePrefix(s, false)
	case dukpt.AESPrefixDigits, 24:
		return dukpt.NormalizePrefix(s, true)
	}
	return strings.ToUpper(s)
}

// isHex reports whether s is non-empty and all hexadecimal digits.
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return s != ""
}

// Terminal is a terminal record. Records handed out by the registry are immutable
// snapshots: never modify one (nor its slices), copy it.
type Terminal struct {
	ID              string         `json:"id"`
	MerchantID      string         `json:"merchant_id"`
	Kind            TerminalKind   `json:"kind"`
	Model           string         `json:"model,omitempty"` // hardware model, for application targeting (switch/apps)
	Status          TerminalStatus `json:"status"`
	Note            string         `json:"status_reason,omitempty"` // why the status was last set
	Binding         Binding        `json:"binding"`
	Location        *Deployment    `json:"location,omitempty"`
	AllowedNetworks []netip.Prefix `json:"allowed_networks,omitempty"` // empty: any source
	MinAppVersion   string         `json:"min_app_version,omitempty"`  // dotted numeric
	MissingPolicy   Policy         `json:"missing_policy"`
	Keys            KeyRefs        `json:"keys"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
	ActivatedAt     time.Time      `json:"activated_at,omitzero"`
	Version         int64          `json:"version"`

	// AttestMaxAge is how old a SoftPOS attestation may be for this terminal (0: the
	// registry's MaxAttestationAge). AttestLegacy lets it send the unsigned legacy AT
	// tag instead of a signed token (AJ); off by default.
	AttestMaxAge Duration `json:"attest_max_age,omitempty"`
	AttestLegacy bool     `json:"attest_legacy,omitempty"`

	minVer []int // parsed MinAppVersion, set by prepare
}

// errSoftPOSUnbound says why a SoftPOS terminal without a device serial is refused,
// and what to do.
const errSoftPOSUnbound = "a softpos terminal must be bound to its phone: set its device serial " +
	"(--device-serial, the device_serial CSV column or binding.device_serial), the ID the app sends " +
	"in DE 48 DI and the attestation service signs as the token's dev; without it any phone's tokens would do"

// Bound reports whether any identity or a location is bound to the terminal.
func (t *Terminal) Bound() bool {
	return t.Binding != (Binding{}) || t.Location != nil
}

// MACRequired reports whether the terminal's messages must carry a valid MAC.
func (t *Terminal) MACRequired() bool { return t.Kind == KindSoftPOS || t.Keys.MACRequired }

// HasMACKey reports whether the terminal's messages can prove they are its own
// with a MAC under its registered key: it has a TAK or must MAC. Only such proof
// then makes it seen (Check); a terminal without one is seen by the requests
// that pass its checks.
func (t *Terminal) HasMACKey() bool { return t.Keys.TAK != "" || t.MACRequired() }

// prepare fills the derived fields used by Check. It must run before a record is
// published.
func (t *Terminal) prepare() {
	// Until 5 December 2026 the conventional references were "<terminal ID>/TPK"
	// and "/TAK", which no key can have (a key ID has no '/': "ID/vN" names a
	// version): the terminal's key change and PIN translation failed. They are read
	// as the conventional "<terminal ID>.TPK" and ".TAK".
	if t.Keys.TPK == t.ID+"/TPK" {
		t.Keys.TPK = t.ID + ".TPK"
	}
	if t.Keys.TAK == t.ID+"/TAK" {
		t.Keys.TAK = t.ID + ".TAK"
	}
	t.minVer = nil
	if t.MinAppVersion != "" {
		t.minVer, _ = parseVersion(t.MinAppVersion)
	}
}

// LastSeen is when and from where a terminal last sent a message.
type LastSeen struct {
	Time     time.Time  `json:"time"`
	Address  netip.Addr `json:"address,omitzero"`
	Location *GeoPoint  `json:"location,omitempty"` // last GL the terminal sent
}

// GeoPoint is a WGS84 point as sent in DE 48 GL; Present is false when GL was absent.
type GeoPoint struct {
	Lat     float64 `json:"lat"`
	Lon     float64 `json:"lon"`
	Present bool    `json:"-"`
}

// valid reports whether g is present and within the WGS84 ranges.
func (g GeoPoint) valid() bool {
	return g.Present && g.Lat >= -90 && g.Lat <= 90 && g.Lon >= -180 && g.Lon <= 180 &&
		!math.IsNaN(g.Lat) && !math.IsNaN(g.Lon)
}

// Duration is a time.Duration that reads and writes JSON as a Go duration string
// ("24h", "90m"); it also reads a number of seconds.
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration %s: want a string like \"24h\" or a number of seconds", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// --- validation ---

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isPrintable reports whether s is printable ASCII (0x20 to 0x7e): identifiers and
// references (a device serial, a key reference), which stay ASCII.
func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// MaxNameRunes is the longest merchant name, in characters (runes), not bytes: a
// Chinese character is three bytes of UTF-8 and counts one.
const MaxNameRunes = 100

// textProblem says why s cannot be free text for people (a merchant's name), or
// returns "" when it can: valid UTF-8, 1 to max characters (runes), not blank, and
// every character a letter, mark, digit, punctuation, symbol, an ASCII space or an
// ideographic space (U+3000). Control characters, format characters (the bidi
// embeddings, overrides and isolates U+202A-U+202E and U+2066-U+2069, the marks
// U+200E/U+200F, the zero-width space, joiners and U+FEFF), other spaces, line
// breaks, private-use and unassigned code points are refused, as are the
// invisible letters and marks that make two names look alike (variation
// selectors, the combining grapheme joiner, the Hangul fillers): in the console,
// the review screens and the CLI such a character can reorder or hide part of a
// name.
func textProblem(s string, max int) string {
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	if strings.TrimSpace(s) == "" {
		return "empty or only spaces"
	}
	if n := utf8.RuneCountInString(s); n > max {
		return fmt.Sprintf("%d characters, more than %d", n, max)
	}
	for i, r := range s {
		if r == ' ' || r == '\u3000' {
			continue
		}
		if !unicode.IsGraphic(r) || unicode.Is(unicode.Zs, r) || invisible(r) {
			return fmt.Sprintf("character U+%04X at byte %d is a control, format, invisible or non-standard space character", r, i)
		}
	}
	return ""
}

// NoteProblem says why s cannot be a note or a reason, free text people type for
// other people (a change's reason, which a suspension or freeze keeps as the
// record's status reason; a review note; an incident's, an alert's or a review
// case's note; an alert rule's description), or returns "" when it can: at most
// MaxNote bytes of valid UTF-8 with no control character other than a tab or a line break, no format
// character (the bidi embeddings, overrides, isolates and marks U+202A-U+202E,
// U+2066-U+2069, U+200E/U+200F and U+061C; the zero-width space, joiners and
// U+FEFF; the soft hyphen), no line or paragraph separator (U+2028, U+2029) and
// none of the invisible characters the name check refuses. Text in any script,
// other spaces and private-use characters are taken. The console, the review
// screens and the CLI escape such characters on display; refused at input, none
// is stored to reorder or hide part of a note a reviewer reads (a reason that
// reads "approved" but is not).
func NoteProblem(s string) string {
	if len(s) > MaxNote {
		return fmt.Sprintf("%d bytes long, over the %d bytes a note or reason takes (shorten it; attach long material elsewhere and name it)", len(s), MaxNote)
	}
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	for i, r := range s {
		if r == '\t' || r == '\n' || r == '\r' {
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == 0x2028 || r == 0x2029 || invisible(r) {
			return fmt.Sprintf("character U+%04X at byte %d is a control, format (bidi, zero-width) or invisible character", r, i)
		}
	}
	return ""
}

// MaxNote bounds a note or reason, in bytes (NoteProblem): a few paragraphs in any
// script. Until 8 December 2026 there was no bound but the request body's, and a
// 6 MB reason made the review queue and the oplog pages of every reviewer 6 to 12
// MB (a reason is stored for good in the oplog, twice).
const MaxNote = 4096

// noteError is the error of a note or reason (field, such as "change CHG-4: review
// note") that NoteProblem refuses, nil when it takes it.
func noteError(field, s string) error {
	if len(s) > MaxNote {
		return invalidf("%s: %s", field, NoteProblem(s))
	}
	if p := NoteProblem(s); p != "" {
		return invalidf("%s: %s; free text takes any script, tabs and line breaks, not characters that reorder or hide text", field, p)
	}
	return nil
}

// wideCardNumber reports whether s holds a card number written in full-width
// digits (U+FF10-U+FF19, as a Chinese input method types them), or in other
// non-ASCII digits: s has more card numbers (carddata.MaskText, which reads them as
// their ASCII values) than s with those digits struck out.
func wideCardNumber(s string) bool {
	wide := func(r rune) bool { return r >= utf8.RuneSelf && unicode.IsDigit(r) }
	if !strings.ContainsFunc(s, wide) {
		return false
	}
	struck := strings.Map(func(r rune) rune {
		if wide(r) {
			return 'x'
		}
		return r
	}, s)
	_, n := carddata.MaskText(struck)
	_, w := carddata.MaskText(s)
	return w > n
}

// invisible reports whether r is a graphic character that shows nothing:
// variation selectors, the combining grapheme joiner, the Hangul fillers and the
// braille blank.
func invisible(r rune) bool {
	switch {
	case r >= 0xFE00 && r <= 0xFE0F, r >= 0xE0100 && r <= 0xE01EF, r >= 0x180B && r <= 0x180F:
		return true
	case r == 0x034F, r == 0x115F, r == 0x1160, r == 0x3164, r == 0xFFA0, r == 0x2800:
		return true
	}
	return false
}

// isIdent reports whether s is a short identifier: letters, digits, '-', '_', '.'.
func isIdent(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	// An identifier is shown, logged and kept in the oplog as it is: a card number
	// pasted into one, even glued to letters, would be stored in clear.
	return !carddata.InID(s)
}

// ValidMerchantID reports whether id can be a merchant ID: DE 42, 15 letters or digits.
func ValidMerchantID(id string) bool { return len(id) == 15 && isAlnum(id) }

// ValidTerminalID reports whether id can be a terminal ID: DE 41, 8 letters or digits.
func ValidTerminalID(id string) bool { return len(id) == 8 && isAlnum(id) }

// Validate checks a merchant record and returns the first problem found.
func (m *Merchant) Validate() error {
	switch {
	case !ValidMerchantID(m.ID):
		return invalidf("merchant ID %q: want 15 letters or digits (DE 42)", m.ID)
	case textProblem(m.Name, MaxNameRunes) != "":
		return invalidf("merchant %s: name %q: %s: want 1 to %d characters (counted in characters, not bytes; "+
			"Chinese and other scripts welcome) with no control, format (bidi, zero-width) or invisible characters",
			m.ID, m.Name, textProblem(m.Name, MaxNameRunes), MaxNameRunes)
	case m.NameLatin != "" && (len(m.NameLatin) > qr.MaxName || !isPrintable(m.NameLatin) || strings.TrimSpace(m.NameLatin) == ""):
		return invalidf("merchant %s: ASCII name (name_latin) %q: want 1 to %d printable ASCII characters (letters, digits, "+
			"spaces, punctuation: a QR code's merchant name, EMVCo ID 59), or none", m.ID, m.NameLatin, qr.MaxName)
	case m.NameLanguage != "" && !qr.ValidLanguage(m.NameLanguage):
		return invalidf("merchant %s: name language (name_language) %q: want an ISO 639-1 code of two letters (zh, ja, ko, ru...; "+
			"not a country code such as cn or jp), or none to derive it from the name's script", m.ID, m.NameLanguage)
	case len(m.MCC) != 4 || !isDigits(m.MCC):
		return invalidf("merchant %s: MCC %q: want 4 digits", m.ID, m.MCC)
	case !isIdent(m.Region, 32):
		return invalidf("merchant %s: region %q: want 1 to 32 letters, digits, '-', '_' or '.', and no card number", m.ID, carddata.MaskID(m.Region))
	case wideCardNumber(m.Name):
		return invalidf("merchant %s: name: holds a card number written in full-width digits; "+
			"a card number has no place in a merchant's name", m.ID)
	case m.Group != "" && !isIdent(m.Group, 32):
		return invalidf("merchant %s: group %q: want 1 to 32 letters, digits, '-', '_' or '.' and no card number, or none", m.ID, carddata.MaskID(m.Group))
	case m.Currency != "" && !currency.Payable(m.Currency):
		return invalidf("merchant %s: %v, or none for any currency", m.ID, currency.CheckPayable(m.Currency))
	case !isIdent(m.Tier, 32):
		return invalidf("merchant %s: tier %q: want an identifier such as micro, standard or enterprise", m.ID, carddata.MaskID(m.Tier))
	case m.Rating != RatingLow && m.Rating != RatingMedium && m.Rating != RatingHigh:
		return invalidf("merchant %s: rating %q: want low, medium or high", m.ID, m.Rating)
	case m.Limits.PerTransaction < 0 || m.Limits.Daily < 0 || m.Limits.Monthly < 0 || m.Limits.DailyCount < 0:
		return invalidf("merchant %s: limits %+v: negative limit", m.ID, m.Limits)
	case !m.Status.Valid():
		return invalidf("merchant %s: status %q: want pending, active, frozen or closed", m.ID, m.Status)
	}
	return nil
}

// Validate checks a terminal record (not its merchant reference) and returns the
// first problem found.
func (t *Terminal) Validate() error {
	switch {
	case !ValidTerminalID(t.ID):
		return invalidf("terminal ID %q: want 8 letters or digits (DE 41)", t.ID)
	case !ValidMerchantID(t.MerchantID):
		return invalidf("terminal %s: merchant ID %q: want 15 letters or digits (DE 42)", t.ID, t.MerchantID)
	case !t.Kind.Valid():
		return invalidf("terminal %s: kind %q: want pos, mpos or softpos", t.ID, t.Kind)
	case !t.Status.Valid():
		return invalidf("terminal %s: status %q: want pending, active, suspended or closed", t.ID, t.Status)
	case !t.MissingPolicy.Valid():
		return invalidf("terminal %s: missing-identity policy %q: want decline or flag", t.ID, t.MissingPolicy)
	case t.Model != "" && !isIdent(t.Model, 32):
		return invalidf("terminal %s: model %q: want 1 to 32 letters, digits, '-', '_' or '.', and no card number", t.ID, carddata.MaskID(t.Model))
	}
	b := t.Binding
	if b.DeviceSerial != "" && (len(b.DeviceSerial) > 64 || !isPrintable(b.DeviceSerial)) {
		return invalidf("terminal %s: device serial %q: want up to 64 printable characters", t.ID, carddata.MaskID(b.DeviceSerial))
	}
	// A binding is shown and journaled as it is, and the switch masks a card
	// number a terminal sends in its identity tags (message.ParseTLV): a bound
	// value that read as one could never match, and would be stored in clear.
	// (carddata.InID: an IMEI, 15 digits passing the Luhn check, and an ICCID
	// do not read as one.)
	for _, f := range [][2]string{{"device serial", b.DeviceSerial}, {"SIM ICCID", b.ICCID}, {"IMEI", b.IMEI}} {
		if carddata.InID(f[1]) {
			return invalidf("terminal %s: %s %q holds a card number: a device's identity never does", t.ID, f[0], carddata.MaskID(f[1]))
		}
	}
	if t.Kind == KindSoftPOS && b.DeviceSerial == "" {
		return invalidf("terminal %s: %s", t.ID, errSoftPOSUnbound)
	}
	if b.ICCID != "" && (len(b.ICCID) < 18 || len(b.ICCID) > 22 || !isDigits(b.ICCID)) {
		return invalidf("terminal %s: SIM ICCID %q: want 18 to 22 digits", t.ID, b.ICCID)
	}
	if b.IMEI != "" && (len(b.IMEI) < 14 || len(b.IMEI) > 16 || !isDigits(b.IMEI)) {
		return invalidf("terminal %s: IMEI %q: want 14 to 16 digits", t.ID, b.IMEI)
	}
	if l := t.Location; l != nil {
		g := GeoPoint{Lat: l.Lat, Lon: l.Lon, Present: true}
		if !g.valid() {
			return invalidf("terminal %s: location %v,%v: latitude must be in [-90,90] and longitude in [-180,180]", t.ID, l.Lat, l.Lon)
		}
		if !(l.RadiusM > 0 && l.RadiusM <= 20_000_000) {
			return invalidf("terminal %s: location radius %v m: want more than 0 and at most 20000000", t.ID, l.RadiusM)
		}
	}
	for _, p := range t.AllowedNetworks {
		if !p.IsValid() {
			return invalidf("terminal %s: allowed network %v is not a valid CIDR", t.ID, p)
		}
		if p != p.Masked() {
			return invalidf("terminal %s: allowed network %v has host bits set (did you mean %v?)", t.ID, p, p.Masked())
		}
	}
	if t.MinAppVersion != "" {
		if _, err := parseVersion(t.MinAppVersion); err != nil {
			return invalidf("terminal %s: minimum application version: %v", t.ID, err)
		}
	}
	k := t.Keys
	for name, ref := range map[string]string{"TMK": k.TMK, "TPK": k.TPK, "TAK": k.TAK, "BDK": k.BDK} {
		if ref != "" && (len(ref) > 128 || !isPrintable(ref)) {
			return invalidf("terminal %s: %s key reference %q: want up to 128 printable characters", t.ID, name, ref)
		}
	}
	switch k.PINMode {
	case PINModeNone:
	case PINModeTPK:
		if k.TPK == "" {
			return invalidf("terminal %s: PIN mode tpk needs a TPK key reference", t.ID)
		}
	case PINModeDUKPT:
		if k.BDK == "" {
			return invalidf("terminal %s: PIN mode dukpt needs a BDK key reference", t.ID)
		}
	default:
		return invalidf("terminal %s: PIN mode %q: want tpk, dukpt or empty", t.ID, k.PINMode)
	}
	if d := k.DUKPTDevice; d != "" {
		if k.PINMode != PINModeDUKPT {
			return invalidf("terminal %s: DUKPT device %q without PIN mode dukpt", t.ID, d)
		}
		if !isHex(d) || len(d) != dukpt.TDESPrefixDigits && len(d) != dukpt.AESPrefixDigits {
			return invalidf("terminal %s: DUKPT device %q: want the device's KSN without its counter, 15 hex digits (TDES DUKPT) or 16 (AES DUKPT: the initial key ID), or a whole KSN (20 or 24 hex digits)", t.ID, d)
		}
	}
	if t.AttestMaxAge < 0 || time.Duration(t.AttestMaxAge) > time.Hour {
		return invalidf("terminal %s: attestation maximum age %v: want 0 (the default) to 1h", t.ID, time.Duration(t.AttestMaxAge))
	}
	if t.Kind == KindSoftPOS && !k.MACRequired {
		return invalidf("terminal %s: a softpos terminal must require a MAC", t.ID)
	}
	if k.MACRequired && k.TAK == "" {
		return invalidf("terminal %s: MAC required but no TAK key reference", t.ID)
	}
	return nil
}

// ParseNetworks parses a comma-separated list of CIDRs (a bare address means a
// single host) into prefixes, as the CLI and the CSV import write them.
func ParseNetworks(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
		var p netip.Prefix
		var err error
		if strings.Contains(f, "/") {
			p, err = netip.ParsePrefix(f)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(f)
			if err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return nil, invalidf("network %q: %v", f, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseDeployment parses "lat,lon,radius" (decimal degrees, metres), as the CLI and
// the CSV import write a deployed location.
func ParseDeployment(s string) (*Deployment, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return nil, invalidf("location %q: want lat,lon,radius_m", s)
	}
	var v [3]float64
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(p), "m")), 64)
		if err != nil {
			return nil, invalidf("location %q: part %d %q is not a number", s, i+1, p)
		}
		v[i] = f
	}
	return &Deployment{Lat: v[0], Lon: v[1], RadiusM: v[2]}, nil
}
