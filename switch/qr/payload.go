package qr

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/switchyard/switchyard/internal/currency"
)

// maxAmount is the most characters ID 54, the transaction amount, holds (EMVCo
// MPM: ans, up to 13).
const maxAmount = 13

// IDs of the EMVCo merchant-presented payload's data objects that the switch writes.
const (
	IDFormat     = "00" // payload format indicator, "01"
	IDInitiation = "01" // point of initiation: "11" static, "12" dynamic
	IDMCC        = "52"
	IDCurrency   = "53"
	IDAmount     = "54"
	IDCountry    = "58"
	IDName       = "59"
	IDCity       = "60"
	IDAdditional = "62" // template; its ID 05 is the reference label (the order)
	IDCRC        = "63"
	// IDLanguage is the merchant information language template: its ID 00 is the
	// language preference (ISO 639-1: "ZH", "JA"...), 01 the merchant's name and 02 its
	// city in that language, which IDs 59 and 60 cannot carry (they take the
	// common character set, printable ASCII).
	IDLanguage = "64"
)

// Object is one data object of a payload: its two-digit ID and its value; a template
// (IDs 26-51, 62, 64, 80-99) also has its objects parsed, when they parse.
type Object struct {
	ID      string   `json:"id"`
	Value   string   `json:"value"`
	Objects []Object `json:"objects,omitempty"`
}

// Payload is a decoded merchant-presented payload: its objects in order.
type Payload struct {
	Objects []Object `json:"objects"`
}

// Get returns the value of the top-level object id ("" when absent).
func (p *Payload) Get(id string) string {
	for _, o := range p.Objects {
		if o.ID == id {
			return o.Value
		}
	}
	return ""
}

// Sub returns the value of object sub inside template id ("" when absent).
func (p *Payload) Sub(id, sub string) string {
	for _, o := range p.Objects {
		if o.ID == id {
			for _, s := range o.Objects {
				if s.ID == sub {
					return s.Value
				}
			}
		}
	}
	return ""
}

// MerchantAccount returns the merchant ID (ID 01) of the merchant account
// information template (IDs 26-51) whose ID 00 is guid, the network's globally unique
// identifier: the merchant that network pays. False when no template has guid.
func (p *Payload) MerchantAccount(guid string) (string, bool) {
	for _, o := range p.Objects {
		if o.ID < "26" || o.ID > "51" {
			continue
		}
		var g, mid string
		for _, s := range o.Objects {
			switch s.ID {
			case "00":
				g = s.Value
			case "01":
				mid = s.Value
			}
		}
		if g == guid && mid != "" {
			return mid, true
		}
	}
	return "", false
}

// CRC returns the CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF, no
// reflection, no final XOR) of s's bytes as four upper-case hex digits, as ID 63
// carries it: s is the payload through "6304".
func CRC(s string) string {
	crc := uint16(0xFFFF)
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return fmt.Sprintf("%04X", crc)
}

// MaxPayload is the longest payload Decode reads (EMVCo allows 512 characters).
const MaxPayload = 512

// Decode parses and validates a merchant-presented payload: ID 00 first with "01", a
// CRC (ID 63, four hex digits) last that matches, every object an ID of two digits and
// a length of two digits counted in characters, and nothing after the CRC. Errors name
// the offset (in characters) and the object.
func Decode(s string) (*Payload, error) {
	if !utf8.ValidString(s) {
		return nil, errors.New("payload is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > MaxPayload {
		return nil, fmt.Errorf("payload is %d characters, more than %d", n, MaxPayload)
	}
	objs, err := parseTLV(s, 0)
	if err != nil {
		return nil, err
	}
	if len(objs) == 0 || objs[0].ID != IDFormat {
		return nil, errors.New("payload does not start with ID 00 (payload format indicator)")
	}
	if objs[0].Value != "01" {
		return nil, fmt.Errorf("payload format indicator %q is not \"01\"", objs[0].Value)
	}
	last := objs[len(objs)-1]
	if last.ID != IDCRC {
		return nil, fmt.Errorf("payload does not end with ID 63 (CRC): last object is ID %s", last.ID)
	}
	if len(last.Value) != 4 {
		return nil, fmt.Errorf("CRC (ID 63) %q is not 4 characters", last.Value)
	}
	body := s[:len(s)-4]
	if want := CRC(body); !strings.EqualFold(want, last.Value) {
		return nil, fmt.Errorf("CRC mismatch: payload says %s, computed %s", last.Value, want)
	}
	seen := map[string]bool{}
	for i := range objs {
		o := &objs[i]
		if seen[o.ID] {
			return nil, fmt.Errorf("ID %s given twice", o.ID)
		}
		seen[o.ID] = true
		if isTemplate(o.ID) {
			// A template's inside is parsed when it parses; a template whose value is
			// opaque (some networks' 26-51) stays a value.
			if sub, err := parseTLV(o.Value, 0); err == nil {
				o.Objects = sub
			} else if o.ID == IDAdditional || o.ID == IDLanguage {
				return nil, fmt.Errorf("ID %s: %v", o.ID, err)
			}
		}
	}
	return &Payload{Objects: objs}, nil
}

// isTemplate reports whether id holds nested objects: merchant account information
// (26-51), additional data (62), the language template (64), unreserved templates
// (80-99).
func isTemplate(id string) bool {
	n := int(id[0]-'0')*10 + int(id[1]-'0')
	return n >= 26 && n <= 51 || n == 62 || n == 64 || n >= 80
}

// parseTLV reads ID(2) LEN(2) VALUE objects; lengths count characters.
func parseTLV(s string, base int) ([]Object, error) {
	var out []Object
	r := []rune(s)
	for i := 0; i < len(r); {
		if len(r)-i < 4 {
			return nil, fmt.Errorf("truncated object header at offset %d", base+i)
		}
		id, ln := string(r[i:i+2]), string(r[i+2:i+4])
		if !digits(id) {
			return nil, fmt.Errorf("ID %q at offset %d is not two digits", id, base+i)
		}
		if !digits(ln) {
			return nil, fmt.Errorf("ID %s at offset %d: length %q is not two digits", id, base+i, ln)
		}
		n := int(ln[0]-'0')*10 + int(ln[1]-'0')
		if n == 0 {
			return nil, fmt.Errorf("ID %s at offset %d: empty value", id, base+i)
		}
		if i+4+n > len(r) {
			return nil, fmt.Errorf("ID %s at offset %d: length %d runs past the end (%d characters)", id, base+i, n, len(r))
		}
		out = append(out, Object{ID: id, Value: string(r[i+4 : i+4+n])})
		i += 4 + n
	}
	return out, nil
}

// Common reports whether s is in EMVCo's common character set, printable ASCII
// (0x20 to 0x7e), as IDs 59 (merchant name) and 60 (city) must be.
func Common(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func digits(s string) bool {
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

// Order is what a dynamic merchant-presented code carries.
type Order struct {
	// Accounts are the merchant account information objects by ID (26-51), one per
	// enabled network, each a template's inner objects (ID 00 the network's globally
	// unique identifier, then its merchant ID).
	Accounts map[string][]Object
	MCC      string
	Currency string // ISO 4217 numeric, "156"
	Amount   int64  // minor units of Currency (ID 54 has its decimals); 0: the payer enters the amount
	Country  string // ISO 3166 alpha-2, "CN"
	Name     string // ID 59: printable ASCII, 1 to 25 characters
	City     string // ID 60: printable ASCII, 1 to 15 characters
	// AltLanguage, AltName and AltCity fill the language template (ID 64, its IDs
	// 00, 01 and 02): the merchant's name (1 to 25 characters) and city (optional,
	// 1 to 15) in another language and its script, such as a name in Chinese
	// under "ZH"; AltLanguage is an ISO 639-1 code (ValidLanguage). No template
	// when AltName is empty.
	AltLanguage, AltName, AltCity string
	// Reference is the order reference (ID 62, its ID 05 reference label).
	Reference string
}

// Encode builds the dynamic payload of o: ID 00 first, ID 63 (the CRC over
// everything through "6304") last. It refuses values that do not fit two-digit
// lengths, and a payload longer than MaxPayload characters.
func Encode(o Order) (string, error) {
	var b strings.Builder
	put := func(id, v string) error {
		n := utf8.RuneCountInString(v)
		if n == 0 || n > 99 {
			return fmt.Errorf("ID %s: value of %d characters (1 to 99)", id, n)
		}
		fmt.Fprintf(&b, "%s%02d%s", id, n, v)
		return nil
	}
	tmpl := func(objs []Object) (string, error) {
		var t strings.Builder
		for _, o := range objs {
			n := utf8.RuneCountInString(o.Value)
			if n == 0 || n > 99 {
				return "", fmt.Errorf("ID %s: value of %d characters (1 to 99)", o.ID, n)
			}
			fmt.Fprintf(&t, "%s%02d%s", o.ID, n, o.Value)
		}
		return t.String(), nil
	}
	if err := put(IDFormat, "01"); err != nil {
		return "", err
	}
	_ = put(IDInitiation, "12")
	ids := make([]string, 0, len(o.Accounts))
	for id := range o.Accounts {
		if len(id) != 2 || !digits(id) || id < "26" || id > "51" {
			return "", fmt.Errorf("merchant account information ID %q is not 26 to 51", id)
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		v, err := tmpl(o.Accounts[id])
		if err != nil {
			return "", fmt.Errorf("ID %s: %w", id, err)
		}
		if err := put(id, v); err != nil {
			return "", err
		}
	}
	if err := put(IDMCC, o.MCC); err != nil {
		return "", err
	}
	if err := put(IDCurrency, o.Currency); err != nil {
		return "", err
	}
	if o.Amount > 0 {
		// In major units with the currency's own decimals (ISO 4217): 1000 yen is
		// "1000", 1500 fils "1.500". Until the third release of 6 December 2026 every
		// currency had two, and a yen code asked the payer for a hundredth of the price.
		a := currency.Format(o.Amount, o.Currency)
		if len(a) > maxAmount {
			return "", fmt.Errorf("ID %s: amount %s of currency %s is %d characters, at most %d", IDAmount, a, o.Currency, len(a), maxAmount)
		}
		_ = put(IDAmount, a)
	}
	for _, kv := range [][2]string{{IDCountry, o.Country}, {IDName, o.Name}, {IDCity, o.City}} {
		if !Common(kv[1]) {
			return "", fmt.Errorf("ID %s: value %q is not in the common character set (printable ASCII); "+
				"a name in another script goes in the language template (ID 64)", kv[0], kv[1])
		}
		if err := put(kv[0], kv[1]); err != nil {
			return "", err
		}
	}
	if o.Reference != "" {
		v, err := tmpl([]Object{{ID: "05", Value: o.Reference}})
		if err != nil {
			return "", err
		}
		if err := put(IDAdditional, v); err != nil {
			return "", err
		}
	}
	if o.AltName != "" {
		if !ValidLanguage(o.AltLanguage) {
			return "", fmt.Errorf("ID %s: language preference %q: want an ISO 639-1 code of two letters (ZH, JA, KO...)", IDLanguage, o.AltLanguage)
		}
		if !utf8.ValidString(o.AltName) || !utf8.ValidString(o.AltCity) {
			return "", fmt.Errorf("ID %s: alternate name or city is not valid UTF-8", IDLanguage)
		}
		objs := []Object{{ID: "00", Value: o.AltLanguage}, {ID: "01", Value: o.AltName}}
		if o.AltCity != "" {
			objs = append(objs, Object{ID: "02", Value: o.AltCity})
		}
		v, err := tmpl(objs)
		if err != nil {
			return "", fmt.Errorf("ID %s: %w", IDLanguage, err)
		}
		if err := put(IDLanguage, v); err != nil {
			return "", err
		}
	}
	b.WriteString(IDCRC + "04")
	s := b.String()
	// A wallet reads at most MaxPayload characters (as Decode does): a longer code
	// could be shown but never paid. Until the fifth release of 6 December 2026 it
	// was made all the same.
	if n := utf8.RuneCountInString(s) + 4; n > MaxPayload {
		return "", fmt.Errorf("payload of %d characters is longer than EMVCo's %d (%d merchant account templates: fewer wallet connectors, or shorter GUIDs)",
			n, MaxPayload, len(o.Accounts))
	}
	return s + CRC(s), nil
}

// WithoutLanguageTemplate returns payload s without its language template (ID 64),
// its CRC computed again: the same code in the common character set, which a
// channel that carries only ASCII (the terminal interface's DE 48) can carry. A
// payload without ID 64 comes back as it is. s must decode (Decode).
func WithoutLanguageTemplate(s string) (string, error) {
	p, err := Decode(s)
	if err != nil {
		return "", err
	}
	if p.Get(IDLanguage) == "" {
		return s, nil
	}
	var b strings.Builder
	for _, o := range p.Objects {
		if o.ID == IDLanguage || o.ID == IDCRC {
			continue
		}
		fmt.Fprintf(&b, "%s%02d%s", o.ID, utf8.RuneCountInString(o.Value), o.Value)
	}
	b.WriteString(IDCRC + "04")
	return b.String() + CRC(b.String()), nil
}
