package message

import (
	"encoding/hex"
	"fmt"

	"github.com/moov-io/iso8583"
)

// echoed are the request fields every response carries back (NewResponseBuilder sets
// them; a format error's answer echoes those that could be read).
var echoed = []int{3, 4, 7, 11, 41, 42, 49, 70}

// NewFormatErrorResponse answers a request that could not be decoded with DE 39 = 30,
// echoing what could be read. It returns nil when the error is not answerable.
func NewFormatErrorResponse(fe *FormatError, d Dialect) *iso8583.Message {
	if !fe.Answerable() {
		return nil
	}
	m := iso8583.NewMessage(d.Spec())
	m.MTI(ResponseMTI(fe.MTI))
	for id, v := range fe.Echo {
		if id != fe.Field && validEcho(id, v) {
			_ = m.Field(id, v)
		}
	}
	_ = m.Field(11, fe.STAN)
	_ = m.Field(41, fe.TID)
	_ = m.Field(39, RCFormatError)
	return m
}

// validEcho reports whether v can be packed again in field id (a fixed field of the
// wrong length would make the 30 response itself unpackable).
func validEcho(id int, v string) bool {
	switch id {
	case 3:
		return len(v) == 6
	case 4:
		return len(v) == 12
	case 7:
		return len(v) == 10
	case 11:
		return len(v) == 6
	case 41:
		return len(v) == 8
	case 42:
		return len(v) == 15
	case 49, 70:
		return len(v) == 3
	}
	return false
}

// MACFunc computes the 8-byte MAC of data.
type MACFunc func(data []byte) ([8]byte, error)

// Pack packs m. When mac is not nil the MAC goes into DE 128 if the message has a field
// above 64, else DE 64, computed over every byte before the MAC's 16 hex characters.
func Pack(m *iso8583.Message, mac MACFunc) ([]byte, error) {
	if mac == nil {
		m.UnsetField(64)
		m.UnsetField(128)
		return m.Pack()
	}
	macField := 64
	for id := 65; id < 128; id++ {
		if m.GetField(id) != nil {
			macField = 128
			break
		}
	}
	m.UnsetField(192 - macField) // the other MAC field
	if err := m.BinaryField(macField, make([]byte, 8)); err != nil {
		return nil, err
	}
	raw, err := m.Pack()
	if err != nil {
		return nil, err
	}
	sum, err := mac(raw[:len(raw)-16])
	if err != nil {
		return nil, fmt.Errorf("MAC: %w", err)
	}
	hex.Encode(raw[len(raw)-16:], sum[:])
	for i := len(raw) - 16; i < len(raw); i++ {
		if c := raw[i]; c >= 'a' && c <= 'f' {
			raw[i] = c - 'a' + 'A'
		}
	}
	return raw, nil
}

// Answer is what the switch reads of an issuer's answer to an authorization it
// forwarded: the response code (DE 39) and the approval code (DE 38, "" when the
// answer has none). The issuer link's direct path (SendPacked) hands only this to
// the pipeline, without decoding the answer into a moov-io message.
type Answer struct {
	RC       string
	AuthCode string
	// Amount is the amount a partial approval (RC 10) approved: DE 4 of the
	// issuer's answer (ISO 8583:1987 leaves the approved amount there). It is read
	// for RC 10, -1 when a partial approval's DE 4 is absent or not a number; and,
	// with HasAmount, for any other answer that has a DE 4 (-1 when not a number).
	Amount int64
	// HasAmount is set when the answer has a DE 4 (Amount). An approval other than
	// RC 10 echoes the requested amount there; one of another amount is not the
	// request's approval (the pipeline reverses it).
	HasAmount bool
	// Balance is DE 54 (additional amounts) of the answer as the issuer sent it, ""
	// when it has none: for a balance inquiry, the account's balances
	// (ValidAdditionalAmounts checks its layout).
	Balance string
}

// ValidAdditionalAmounts reports whether s is a DE 54 of ISO 8583:1987's layout: one
// to six amounts of 20 characters each, account type n2, amount type n2 (01 ledger
// balance, 02 available balance), currency n3, sign C (credit) or D (debit), amount
// n12 in minor units.
func ValidAdditionalAmounts(s string) bool {
	if len(s) == 0 || len(s)%AdditionalAmountLen != 0 || len(s) > 6*AdditionalAmountLen {
		return false
	}
	for i := 0; i < len(s); i += AdditionalAmountLen {
		e := s[i : i+AdditionalAmountLen]
		if !digits(e[:7], 7) || (e[7] != 'C' && e[7] != 'D') || !digits(e[8:], 12) {
			return false
		}
	}
	return true
}

// AdditionalAmountLen is the length of one amount of DE 54.
const AdditionalAmountLen = 20

// RCPartialApproval is ISO 8583:1987's "approved for a partial amount": DE 4 of the
// answer carries the amount approved.
const RCPartialApproval = "10"

// AnswerOf reads an Answer out of a decoded issuer message.
func AnswerOf(m *iso8583.Message) Answer {
	var a Answer
	a.RC, _ = m.GetString(39)
	if m.GetField(38) != nil {
		a.AuthCode, _ = m.GetString(38)
	}
	if a.RC == RCPartialApproval {
		a.Amount = -1
	}
	if m.GetField(4) != nil {
		s, _ := m.GetString(4)
		a.Amount, a.HasAmount = ParseAmount([]byte(s)), true
	}
	if m.GetField(54) != nil {
		a.Balance, _ = m.GetString(54)
	}
	return a
}

// ParseAmount reads an amount field (DE 4: digits, minor units); -1 when it is empty,
// longer than 18 digits or not all digits.
func ParseAmount(v []byte) int64 {
	if len(v) == 0 || len(v) > 18 {
		return -1
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}
