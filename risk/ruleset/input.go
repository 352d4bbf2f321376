// Package ruleset is the risk rule language: the Input every expression reads,
// the rule file format (YAML), its compiler to expr programs, the linter, the
// rule files' own tests, and the evaluation of a compiled RuleSet over an Input
// with the counter values and list flags read from package state.
//
// It holds no state of its own: package risk's Engine owns the live counters
// and lists, reloads the files and is what the switch calls. The evaluation
// lives here, with the compiled programs it runs, because a rule file's tests
// (RuleSet.RunTests) and the backtest and explain tools run it without an
// engine. docs/rules.md describes the rule files and every name an expression
// sees.
package ruleset

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchyard/switchyard/risk/state"
)

// MaxCounters is the most velocity counters one rule set may declare.
const MaxCounters = 64

// Transaction types of Txn.Type.
const (
	TxnPurchase = "purchase"
	TxnPreauth  = "preauth"
	TxnVoid     = "void"
	TxnRefund   = "refund"
	TxnBalance  = "balance"
	TxnReversal = "reversal"
)

// Input is everything a rule expression sees about one transaction. The
// switch fills it without building maps and may reuse it (for example from a
// sync.Pool); Evaluate and Observe only read it. The json tags give the
// snapshot the journal stores; Velocity, Lists and Outcome are left out of it
// because the engine derives them.
type Input struct {
	Txn      Txn      `json:"txn" yaml:"txn" expr:"txn"`                // the transaction
	Terminal Terminal `json:"terminal" yaml:"terminal" expr:"terminal"` // the terminal, from the registry
	Merchant Merchant `json:"merchant" yaml:"merchant" expr:"merchant"` // the merchant, from the registry
	Binding  Binding  `json:"binding" yaml:"binding" expr:"binding"`    // the identity-binding checks
	Device   Device   `json:"device" yaml:"device" expr:"device"`       // the device, from DE 48

	// Velocity holds the values of the rule set's counters, by the index the
	// rule set gave each counter. Evaluate fills it; callers leave it alone.
	Velocity [MaxCounters]int `json:"-" yaml:"-" expr:"velocity"`
	// Lists holds list membership of this transaction's BIN, card, terminal,
	// merchant and country. Evaluate fills it from the engine's lists.
	Lists state.ListFlags `json:"-" yaml:"lists" expr:"lists"`
	// Outcome is visible only to counter `where` filters, during Observe.
	Outcome Outcome `json:"-" yaml:"-" expr:"outcome"`
}

// bound holds env, a copy of an Input that expressions are about to read, to the
// sizes the load-time cost check assumes (cost.go): strings of at most
// MaxInputString bytes, cut at a character's start, and at most MaxInputList
// device findings, the first kept (a signed attestation's come first). What a
// request fills is within them already but for the findings (DE 48 values have a
// 3-digit length, so IF gives at most 500, and an attestation token adds up to 4):
// for a request it costs some 30 length checks and copies nothing. An input from
// elsewhere (a test, a tool) with a finding longer than MaxInputString gets a
// copy of its findings, never a write to the caller's.
func (env *Input) bound() {
	x, t, m, d := &env.Txn, &env.Terminal, &env.Merchant, &env.Device
	for _, p := range [...]*string{&x.MTI, &x.ProcCode, &x.Type, &x.Currency, &x.EntryMode, &x.Wallet, &x.BIN,
		&x.CardHash, &x.Country, &x.STAN, &x.RRN, &x.OriginalCardHash, &t.ID, &t.Kind, &t.Status, &t.Region,
		&t.AppVersion, &m.ID, &m.MCC, &m.Tier, &m.Rating, &m.Status, &m.Group, &m.Currency, &d.ID, &env.Outcome.ResponseCode} {
		if len(*p) > MaxInputString {
			*p = clip(*p)
		}
	}
	if len(d.Findings) > MaxInputList {
		d.Findings = d.Findings[:MaxInputList:MaxInputList]
	}
	for i, f := range d.Findings {
		if len(f) > MaxInputString {
			fs := slices.Clone(d.Findings)
			for j := i; j < len(fs); j++ {
				if len(fs[j]) > MaxInputString {
					fs[j] = clip(fs[j])
				}
			}
			d.Findings = fs
			break
		}
	}
}

// clip cuts s to at most MaxInputString bytes, at the start of a character.
func clip(s string) string {
	n := MaxInputString
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Reset clears in for reuse.
func (in *Input) Reset() {
	findings := in.Device.Findings[:0]
	*in = Input{}
	in.Device.Findings = findings
}

// Txn describes the transaction itself.
type Txn struct {
	// MTI is the message type indicator, e.g. "0200".
	MTI string `json:"mti" yaml:"mti" expr:"mti"`
	// ProcCode is DE 3, e.g. "000000".
	ProcCode string `json:"proc_code" yaml:"proc_code" expr:"proc_code"`
	// Type is one of purchase, preauth, void, refund, balance, reversal (see TxnTypeOf).
	Type string `json:"txn_type" yaml:"txn_type" expr:"txn_type"`
	// Amount is DE 4 in minor units (fen for CNY).
	Amount int `json:"amount" yaml:"amount" expr:"amount"`
	// Currency is DE 49, ISO 4217 numeric, e.g. "156".
	Currency string `json:"currency" yaml:"currency" expr:"currency"`
	// EntryMode is DE 22 as sent, e.g. "071"; SetEntryMode also sets the flags below.
	EntryMode string `json:"entry_mode" yaml:"entry_mode" expr:"entry_mode"`
	// Contactless is true for DE 22 07x.
	Contactless bool `json:"contactless" yaml:"contactless" expr:"contactless"`
	// Chip is true for DE 22 05x.
	Chip bool `json:"chip" yaml:"chip" expr:"chip"`
	// Magstripe is true for DE 22 90x (and 02x).
	Magstripe bool `json:"magstripe" yaml:"magstripe" expr:"magstripe"`
	// Manual is true for DE 22 01x (key entered).
	Manual bool `json:"manual" yaml:"manual" expr:"manual"`
	// QR is true for DE 22 03x.
	QR bool `json:"qr" yaml:"qr" expr:"qr"`
	// Wallet is the network of a QR payment's payment code ("unionpay", "wechat",
	// "alipay", or another of the qr.routes table); "" for a card. Such a payment has
	// QR true whatever DE 22 says, and its CardHash is the hash of the payer's code.
	Wallet string `json:"wallet" yaml:"wallet" expr:"wallet"`
	// PINPresent is true when DE 52 carries a PIN block.
	PINPresent bool `json:"pin_present" yaml:"pin_present" expr:"pin_present"`
	// BIN is the first six digits of the PAN.
	BIN string `json:"bin" yaml:"bin" expr:"bin"`
	// CardHash identifies the card: the switch's HMAC of the PAN. Never a PAN.
	CardHash string `json:"card_hash" yaml:"card_hash" expr:"card_hash"`
	// Country is the card issuer's country (ISO 3166 alpha-2) when known, else "".
	Country string `json:"country" yaml:"country" expr:"country"`
	// STAN is DE 11.
	STAN string `json:"stan" yaml:"stan" expr:"stan"`
	// RRN is DE 37 as set by the switch.
	RRN string `json:"rrn" yaml:"rrn" expr:"rrn"`
	// OriginalCardHash is, for a refund or void, the card of the original
	// purchase; "" when unknown.
	OriginalCardHash string `json:"original_card_hash" yaml:"original_card_hash" expr:"original_card_hash"`
	// OriginalAmount is, for a refund or void, the amount of the original
	// purchase; 0 when unknown.
	OriginalAmount int `json:"original_amount" yaml:"original_amount" expr:"original_amount"`
	// Time is when the switch received the request, in UTC.
	Time time.Time `json:"time" yaml:"time" expr:"time"`

	// LocalHour (0-23) is Time in the rule set's time zone; the engine sets it.
	LocalHour int `json:"-" yaml:"-" expr:"local_hour"`
	// LocalTime is "HH:MM" of Time in the rule set's time zone; the engine sets it.
	LocalTime string `json:"-" yaml:"-" expr:"local_time"`
	// Weekday is 0 (Sunday) to 6 (Saturday) in the rule set's time zone; the engine sets it.
	Weekday int `json:"-" yaml:"-" expr:"weekday"`
}

// SetEntryMode stores DE 22 and derives Contactless, Chip, Magstripe, Manual,
// QR and PINPresent from it (third digit 1 = PIN captured). A PIN block in
// DE 52 is the stronger signal: callers may set PINPresent afterwards.
func (t *Txn) SetEntryMode(de22 string) {
	t.EntryMode = de22
	t.Contactless, t.Chip, t.Magstripe, t.Manual, t.QR = false, false, false, false, false
	if len(de22) >= 2 {
		switch de22[:2] {
		case "07":
			t.Contactless = true
		case "05":
			t.Chip = true
		case "90", "02", "80":
			t.Magstripe = true
		case "01":
			t.Manual = true
		case "03":
			t.QR = true
		}
	}
	t.PINPresent = len(de22) >= 3 && de22[2] == '1'
}

// TxnTypeOf maps an MTI and DE 3 to a transaction type (TxnPurchase ...), or
// "" when the message is not a financial transaction the rules know.
func TxnTypeOf(mti, procCode string) string {
	switch {
	case strings.HasPrefix(mti, "04"):
		return TxnReversal
	case strings.HasPrefix(mti, "01"):
		return TxnPreauth
	case !strings.HasPrefix(mti, "02") || len(procCode) < 2:
		return ""
	}
	switch procCode[:2] {
	case "00":
		return TxnPurchase
	case "02":
		return TxnVoid
	case "20":
		return TxnRefund
	case "30", "31":
		// Available funds and balance inquiries (any account type): probes of a
		// card all the same, which card-testing counters count.
		return TxnBalance
	}
	return ""
}

// Terminal describes the acquiring terminal (DE 41) as the registry knows it.
type Terminal struct {
	// ID is DE 41.
	ID string `json:"id" yaml:"id" expr:"id"`
	// Kind is pos, mpos or softpos.
	Kind string `json:"kind" yaml:"kind" expr:"kind"`
	// Status is the registry status, e.g. active or suspended.
	Status string `json:"status" yaml:"status" expr:"status"`
	// AgeDays is the number of days since the terminal was registered.
	AgeDays int `json:"age_days" yaml:"age_days" expr:"age_days"`
	// Region is the terminal's region code in the registry.
	Region string `json:"region" yaml:"region" expr:"region"`
	// AppVersion is DE 48 AV.
	AppVersion string `json:"app_version" yaml:"app_version" expr:"app_version"`
	// Bound is true when the terminal has an identity binding (device, SIM, location).
	Bound bool `json:"bound" yaml:"bound" expr:"bound"`
	// Lat is the registered latitude (WGS84); 0 when none.
	Lat float64 `json:"lat" yaml:"lat" expr:"lat"`
	// Lon is the registered longitude (WGS84); 0 when none.
	Lon float64 `json:"lon" yaml:"lon" expr:"lon"`
	// RadiusM is the registered radius in metres; 0 when none.
	RadiusM int `json:"radius_m" yaml:"radius_m" expr:"radius_m"`
}

// Merchant describes the merchant (DE 42) as the registry knows it.
type Merchant struct {
	// ID is DE 42.
	ID string `json:"id" yaml:"id" expr:"id"`
	// MCC is the merchant category code, e.g. "5411".
	MCC string `json:"mcc" yaml:"mcc" expr:"mcc"`
	// Tier is micro, small, standard or enterprise.
	Tier string `json:"tier" yaml:"tier" expr:"tier"`
	// Rating is the merchant's risk rating: "A" (best) to "E" (worst), "" when unrated.
	Rating string `json:"rating" yaml:"rating" expr:"rating"`
	// SingleLimit is the most one transaction may be, minor units; 0 = none.
	SingleLimit int `json:"single_limit" yaml:"single_limit" expr:"single_limit"`
	// DailyLimit is the most the merchant may take in 24 hours; 0 = none.
	DailyLimit int `json:"daily_limit" yaml:"daily_limit" expr:"daily_limit"`
	// MonthlyLimit is the most the merchant may take in 30 days; 0 = none.
	MonthlyLimit int `json:"monthly_limit" yaml:"monthly_limit" expr:"monthly_limit"`
	// DailyCount is the most approved purchases and pre-authorizations the merchant
	// may take in 24 hours (registry limits.daily_count); 0 = none.
	DailyCount int `json:"daily_count,omitempty" yaml:"daily_count" expr:"daily_count"`
	// Status is the registry status, e.g. active or frozen.
	Status string `json:"status" yaml:"status" expr:"status"`
	// Group is the merchant's group in the registry (a chain, a franchise, a parent
	// company: the merchants one owner runs); "" when none.
	Group string `json:"group,omitempty" yaml:"group" expr:"group"`
	// Currency is the currency the merchant transacts in, ISO 4217 numeric
	// (registry currency, "156"); "" when it takes any. Its limits above are minor
	// units of it. A transaction the rules see at a merchant with a currency is in
	// it: the switch declines one in another before the rules run.
	Currency string `json:"currency,omitempty" yaml:"currency" expr:"currency"`
	// Profile is the merchant's learned profile, or its tier's defaults (see
	// Profile). The journal does not keep it: the tools recompute it.
	Profile Profile `json:"profile" yaml:"profile" expr:"profile"`
}

// Binding holds the results of the switch's identity-binding checks.
type Binding struct {
	// Lat is the reported latitude; valid when LocationKnown.
	Lat float64 `json:"lat" yaml:"lat" expr:"lat"`
	// Lon is the reported longitude; valid when LocationKnown.
	Lon float64 `json:"lon" yaml:"lon" expr:"lon"`
	// DistanceM is the distance in metres from the registered location; valid when LocationKnown.
	DistanceM float64 `json:"distance_m" yaml:"distance_m" expr:"distance_m"`
	// (The booleans follow the floats, together: no padding between them keeps Input,
	// copied and boxed twice per transaction, in a smaller allocation size class.)

	// Checked is true when the terminal is bound and the checks ran.
	Checked bool `json:"checked" yaml:"checked" expr:"checked"`
	// LocationKnown is true when the terminal reported a location (DE 48 GL).
	LocationKnown bool `json:"location_known" yaml:"location_known" expr:"location_known"`
	// LocationOK is true when the reported location is inside the registered radius.
	LocationOK bool `json:"location_ok" yaml:"location_ok" expr:"location_ok"`
	// SIMOK is true when the SIM ICCID matches the binding (or none is bound).
	SIMOK bool `json:"sim_ok" yaml:"sim_ok" expr:"sim_ok"`
	// IMEIOK is true when the IMEI matches the binding (or none is bound).
	IMEIOK bool `json:"imei_ok" yaml:"imei_ok" expr:"imei_ok"`
	// DeviceOK is true when the device serial matches the binding.
	DeviceOK bool `json:"device_ok" yaml:"device_ok" expr:"device_ok"`
	// NetworkOK is true when the terminal has no allowed networks or its
	// connection's source address is in one. The cell location (DE 48 CL) is
	// not checked.
	NetworkOK bool `json:"network_ok" yaml:"network_ok" expr:"network_ok"`
}

// Device describes the terminal's device as reported in DE 48.
type Device struct {
	// ID is DE 48 DI, the device serial number or device ID.
	ID string `json:"id" yaml:"id" expr:"id"`
	// Findings are the SoftPOS device-integrity findings (DE 48 IF): root,
	// debugger, hook, emulator, tamper, malware, devmode.
	Findings []string `json:"findings" yaml:"findings" expr:"findings"`
	// Attested is true when a SoftPOS attestation with verdict OK was present.
	Attested bool `json:"attested" yaml:"attested" expr:"attested"`
	// AttestationAgeS is the age of that attestation in seconds; 0 when not attested.
	AttestationAgeS int `json:"attestation_age_s" yaml:"attestation_age_s" expr:"attestation_age_s"`
}

// Outcome is the final answer a transaction got, given to Observe.
type Outcome struct {
	// Approved is true when the terminal got an approval (DE 39 00).
	Approved bool `json:"approved" yaml:"approved" expr:"approved"`
	// RiskDeclined is true when the rules declined it (Decision.Declined()):
	// decline counters usually leave those out, or a rule's own declines
	// would keep it firing.
	RiskDeclined bool `json:"risk_declined" yaml:"risk_declined" expr:"risk_declined"`
	// Unavailable is true when the answer says only that the issuer or the
	// switch could not decide (UnavailableCode): decline counters leave those
	// out, or an issuer outage would make the rules decline good cards and
	// terminals long after it ended. The engine derives it from ResponseCode
	// when it counts, so nobody sets it.
	Unavailable bool `json:"-" yaml:"-" expr:"unavailable"`
	// ResponseCode is DE 39 of the answer (after the booleans: see Binding).
	ResponseCode string `json:"response_code" yaml:"response_code" expr:"response_code"`
}

// UnavailableCode reports whether a response code says that the issuer or the
// switch could not decide, rather than anything about the card or the terminal:
// 68 (answer too late), 90 (cut-off in progress), 91 (issuer or switch
// inoperative: the issuer's own, or the switch's for a timeout, a lost link or
// an open circuit), 92 (no route to the institution or network) and 96 (system
// malfunction).
func UnavailableCode(rc string) bool {
	switch rc {
	case "68", "90", "91", "92", "96":
		return true
	}
	return false
}

// OutcomeOf is the Outcome of a transaction the rules decided d about and
// that got responseCode.
func OutcomeOf(d *Decision, responseCode string) Outcome {
	return Outcome{Approved: ApprovedCode(responseCode), ResponseCode: responseCode, RiskDeclined: d.Declined()}
}

// ApprovedCode reports whether a response code approves the transaction: 00 and,
// as ISO 8583:1987 has it, 08 (honour with identification), 10 (partial approval)
// and 11 (VIP), the codes the switch treats as approvals everywhere else
// (message.Approved, journal.Record.Approved). The node that handles a transaction
// observes it with OutcomeOf, and every other node of a cluster folds its journal
// record (the outcome read back by journal.Record.Approved): both must say the
// same, and so must a retraction of it.
func ApprovedCode(rc string) bool {
	switch rc {
	case "00", "08", "10", "11":
		return true
	}
	return false
}

// localTimes holds "00:00" ... "23:59" so that Evaluate formats no strings.
var localTimes = func() [24 * 60]string {
	var a [24 * 60]string
	for h := 0; h < 24; h++ {
		for m := 0; m < 60; m++ {
			a[h*60+m] = string([]byte{byte('0' + h/10), byte('0' + h%10), ':', byte('0' + m/10), byte('0' + m%10)})
		}
	}
	return a
}()

// setLocal derives the local-time fields of t from t.Time in loc.
func (t *Txn) setLocal(loc *time.Location) {
	lt := t.Time.In(loc)
	h, m, _ := lt.Clock()
	t.LocalHour = h
	t.LocalTime = localTimes[h*60+m]
	t.Weekday = int(lt.Weekday())
}
