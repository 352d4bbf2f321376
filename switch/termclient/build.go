package termclient

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/internal/currency"
	"github.com/switchyard/switchyard/switch/message"
)

// Txn describes a request to build. Zero fields take the defaults of a demo purchase.
type Txn struct {
	MTI       string // default 0200
	ProcCode  string // default 000000
	PAN       string
	Track2    string
	Amount    int64
	Currency  string // default 156
	Expiry    string // YYMM
	EntryMode string // default 071 (contactless chip, PIN captured) or 072 without PIN
	TID       string
	MID       string
	STAN      string // default: the next from a process-wide counter
	Time      time.Time
	RRN       string // DE 37: the original of a void or refund
	AuthCode  string // DE 38
	Original  string // DE 90 for reversals
	NetCode   string // DE 70 for 0800
	PINBlock  []byte // 8 bytes, already encrypted
	ICC       string // DE 55: the chip's data objects (BER-TLV) as hex
	TLV       [][2]string
	// QR sends a payment code instead of a card (DE 48 QC, docs/qr.md); QRRefund
	// marks a refund or void of a QR payment (QC empty, no card). Entry mode defaults
	// to 032 (QR).
	QRCode   string
	QRRefund bool
}

var stanCounter atomic.Uint32

// NextSTAN returns a process-wide STAN, 000001 to 999999.
func NextSTAN() string {
	return fmt.Sprintf("%06d", stanCounter.Add(1)%999999+1)
}

// Build builds the request message for t in dialect d.
func Build(t Txn, d message.Dialect) (*iso8583.Message, error) {
	if t.MTI == "" {
		t.MTI = "0200"
	}
	if t.Time.IsZero() {
		t.Time = time.Now()
	}
	if t.STAN == "" {
		t.STAN = NextSTAN()
	}
	m := iso8583.NewMessage(d.Spec())
	m.MTI(t.MTI)
	set := func(id int, v string) error {
		if v == "" {
			return nil
		}
		if err := m.Field(id, v); err != nil {
			return fmt.Errorf("DE %d: %w", id, err)
		}
		return nil
	}
	var err error
	must := func(id int, v string) {
		if err == nil {
			err = set(id, v)
		}
	}
	must(7, message.FormatDE7(t.Time))
	must(11, t.STAN)
	must(41, t.TID)
	must(42, t.MID)
	if t.MTI == "0800" {
		must(70, t.NetCode)
		if len(t.TLV) > 0 { // AV at sign-on and echo: the installed application version
			var b []byte
			for _, kv := range t.TLV {
				if b, err = message.AppendTLV(b, kv[0], kv[1]); err != nil {
					return nil, err
				}
			}
			must(48, string(b))
		}
		return m, err
	}
	if t.ProcCode == "" {
		t.ProcCode = message.PCPurchase
	}
	if t.Currency == "" {
		t.Currency = "156"
	}
	if t.QRCode != "" || t.QRRefund {
		t.TLV = append([][2]string{{message.TagQRCode, t.QRCode}}, t.TLV...)
		if t.EntryMode == "" {
			t.EntryMode = "032"
		}
	}
	if t.EntryMode == "" {
		t.EntryMode = "072"
		if len(t.PINBlock) > 0 {
			t.EntryMode = "071"
		}
	}
	must(2, t.PAN)
	must(3, t.ProcCode)
	if t.MTI != "0500" {
		must(4, fmt.Sprintf("%012d", t.Amount))
	}
	local := t.Time.Local()
	must(12, local.Format("150405"))
	must(13, local.Format("0102"))
	must(14, t.Expiry)
	if t.MTI != "0500" {
		must(22, t.EntryMode)
		must(25, "00")
	}
	must(35, t.Track2)
	must(37, t.RRN)
	must(38, t.AuthCode)
	if len(t.TLV) > 0 {
		var b []byte
		for _, kv := range t.TLV {
			if b, err = message.AppendTLV(b, kv[0], kv[1]); err != nil {
				return nil, err
			}
		}
		must(48, string(b))
	}
	if t.MTI != "0500" {
		must(49, t.Currency)
	}
	must(55, t.ICC)
	must(90, t.Original)
	if err != nil {
		return nil, err
	}
	if len(t.PINBlock) > 0 {
		if len(t.PINBlock) != 8 {
			return nil, fmt.Errorf("PIN block must be 8 bytes, got %d", len(t.PINBlock))
		}
		if err := m.BinaryField(52, t.PINBlock); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// OriginalData builds DE 90 for a reversal of the request (MTI, STAN, DE 7), zero filled.
func OriginalData(mti, stan, de7 string) string {
	return mti + stan + de7 + "0000000000000000000000"
}

// Result is a decoded answer, for printing.
type Result struct {
	MTI      string `json:"mti"`
	ProcCode string `json:"proc_code,omitempty"`
	Amount   string `json:"amount,omitempty"`
	STAN     string `json:"stan"`
	TID      string `json:"tid"`
	MID      string `json:"mid,omitempty"`
	RRN      string `json:"rrn,omitempty"`
	AuthCode string `json:"auth_code,omitempty"`
	RC       string `json:"rc"`
	Reason   string `json:"reason,omitempty"`
	DE48     string `json:"de48,omitempty"`
	MAC      string `json:"mac,omitempty"`
	// Balance is DE 54 (additional amounts) of an approved balance inquiry's
	// answer: the issuer's balances, ISO 8583:1987's 20-character amounts.
	Balance string `json:"balance,omitempty"`
}

// Decode reads the fields of an answer a terminal looks at.
func Decode(m *iso8583.Message) (Result, error) {
	get := func(id int) string {
		if m.GetField(id) == nil {
			return ""
		}
		v, _ := m.GetString(id)
		return v
	}
	var r Result
	r.MTI, _ = m.GetMTI()
	r.ProcCode, r.Amount, r.STAN, r.TID, r.MID = get(3), get(4), get(11), get(41), get(42)
	r.RRN, r.AuthCode, r.RC, r.DE48, r.Balance = get(37), get(38), get(39), get(48), get(54)
	for _, id := range []int{64, 128} {
		if m.GetField(id) != nil {
			b, _ := m.GetBytes(id)
			r.MAC = fmt.Sprintf("%X", b)
		}
	}
	if r.DE48 != "" {
		if t, err := message.ParseTLV(r.DE48); err == nil {
			r.Reason = t.Reason
		}
	}
	if r.RC == "" {
		return r, fmt.Errorf("answer %s without DE 39", r.MTI)
	}
	return r, nil
}

// MaxAmount is the largest amount DE 4 carries: 12 digits of minor units.
const MaxAmount = 999_999_999_999

// ParseAmount reads an amount of the currency numeric (ISO 4217 numeric code, DE
// 49: "156" CNY) as minor units, exactly (no floating point). Digits alone are
// minor units ("1000" is 10.00 yuan, or 1000 yen); with a point they are major
// units with at most the currency's decimals ("10.00" yuan, "1000" or "1000." yen,
// "1.500" dinars; "10.5" yen and "10.005" yuan are refused). It refuses a sign,
// anything but digits and one point, a currency that is not three digits and an
// amount of more minor units than DE 4's 12 digits hold (MaxAmount). Its errors
// name the input.
func ParseAmount(s, numeric string) (int64, error) {
	if len(numeric) != 3 || !allDigits(numeric) {
		return 0, fmt.Errorf("currency %q: not an ISO 4217 numeric code (three digits, 156 for CNY)", numeric)
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("amount %q: negative (an amount is 0 or more; a refund is its own transaction)", s)
	}
	var n int64
	if strings.Contains(s, ".") {
		v, err := currency.Parse(s, numeric)
		if err != nil {
			return 0, err
		}
		n = v
	} else {
		if s == "" || !allDigits(s) {
			return 0, fmt.Errorf("amount %q: not a number of minor units (digits, or major units with a point)", s)
		}
		all := strings.TrimLeft(s, "0")
		if len(all) > 12 {
			return 0, fmt.Errorf("amount %q: more than DE 4's 12 digits of minor units (at most %d)", s, int64(MaxAmount))
		}
		v, err := strconv.ParseInt("0"+all, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("amount %q: %w", s, err)
		}
		n = v
	}
	if n > MaxAmount {
		return 0, fmt.Errorf("amount %q: %d minor units of currency %s, more than DE 4's 12 digits hold (at most %s)", s, n, numeric, currency.Format(MaxAmount, numeric))
	}
	return n, nil
}

// allDigits reports whether s is made of ASCII digits only ("" is).
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
