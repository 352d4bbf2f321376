package cup

import (
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/switch/message"
)

// Terminal information in F59, as the captured UnionPay terminal sends it
// (testdata/codetd-5053461-sale-0200.hex): repeated TAG(2) LEN(2 digits) VALUE. The
// tags read here are those whose meaning the values show beyond doubt:
//
//	12  SIM ICCID (20 digits, 8986...)            -> DE 48 SI
//	17  location: a 2-letter source (BD BeiDou, GP GPS, ...) then "lat,lon" -> DE 48 GL
//	A2  device group (01 device type, 02 hardware serial number, 03 random factor,
//	    04 serial ciphertext, 05 application version): 05 -> DE 48 AV
//
//	A3  the payer's payment code of a QR payment (F22 = 03x) -> DE 48 QC
//
// Other tags are ignored. An F59 that does not parse so is ignored as a whole (it is
// another acquirer's layout): it never declines a transaction by itself.
func f59Tags(f59 string) map[string]string {
	out := map[string]string{}
	elems, ok := splitTLV2(f59)
	if !ok {
		return nil
	}
	for _, e := range elems {
		switch e[0] {
		case "12":
			if len(e[1]) >= 19 && allDigits(e[1]) {
				out[message.TagSIM] = e[1]
			}
		case "17":
			v := e[1]
			if len(v) > 2 && (v[0] < '0' || v[0] > '9') && v[0] != '+' && v[0] != '-' {
				v = v[2:]
			}
			if _, err := message.ParseGeo(v); err == nil {
				out[message.TagGeo] = v
			}
		case F59PaymentCode:
			out[message.TagQRCode] = e[1]
		case "A2":
			if sub, ok := splitTLV2(e[1]); ok {
				for _, s := range sub {
					if s[0] == "05" && strings.TrimSpace(s[1]) != "" {
						out[message.TagAppVersion] = strings.TrimSpace(s[1])
					}
				}
			}
		}
	}
	return out
}

// F59PaymentCode is the F59 tag of the payer's payment code that a terminal scanned
// (consumer-presented QR, F22 = 03x). The published facts give no tag for it; A3 is
// this switch's choice, next to the A2 device group (docs/cup-dialect.md).
const F59PaymentCode = "A3"

// splitTLV2 splits TAG(2) LEN(2 digits) VALUE elements; false when s is not exactly so.
func splitTLV2(s string) ([][2]string, bool) {
	var out [][2]string
	for len(s) > 0 {
		if len(s) < 4 {
			return nil, false
		}
		n, err := strconv.Atoi(s[2:4])
		if err != nil || n < 0 || len(s) < 4+n {
			return nil, false
		}
		out = append(out, [2]string{s[:2], s[4 : 4+n]})
		s = s[4+n:]
	}
	return out, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// withTags returns the DE 48 tags tlv (already valid) with the values of set
// replacing or adding their tags.
func withTags(tlv string, set map[string]string) (string, error) {
	if len(set) == 0 {
		return tlv, nil
	}
	var b []byte
	seen := map[string]bool{}
	for s := tlv; len(s) >= 5; {
		tag := s[:2]
		n, _ := strconv.Atoi(s[2:5])
		if len(s) < 5+n {
			break
		}
		v := s[5 : 5+n]
		s = s[5+n:]
		if nv, ok := set[tag]; ok {
			v, seen[tag] = nv, true
		}
		var err error
		if b, err = message.AppendTLV(b, tag, v); err != nil {
			return "", err
		}
	}
	for _, tag := range []string{message.TagSIM, message.TagGeo, message.TagAppVersion, message.TagQRCode} {
		if v, ok := set[tag]; ok && !seen[tag] {
			var err error
			if b, err = message.AppendTLV(b, tag, v); err != nil {
				return "", err
			}
		}
	}
	return string(b), nil
}
