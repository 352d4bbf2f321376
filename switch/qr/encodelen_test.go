package qr

import (
	"fmt"
	"strings"
	"testing"
)

// TestEncodeRefusesOversizePayload: EMVCo's payload is at most 512 characters, and
// Decode (a wallet, the simulator) refuses a longer one. Encode made one of every
// template that fit its two-digit lengths: a switch with many wallet connectors, or
// long globally unique identifiers, handed terminals codes that no payer could pay.
// It now refuses it, saying how long it is, and a payload of exactly 512 characters
// is made and decodes.
func TestEncodeRefusesOversizePayload(t *testing.T) {
	order := func(guid int) Order {
		acc := map[string][]Object{}
		for i := range 6 {
			acc[fmt.Sprint(26+i)] = []Object{{ID: "00", Value: strings.Repeat("G", guid)}, {ID: "01", Value: "000000000000001"}}
		}
		return Order{Accounts: acc, MCC: "5411", Currency: "156", Amount: 100, Country: "CN", Name: "Demo Grocery", City: "Beijing",
			Reference: "100000000001"}
	}
	s, err := Encode(order(60))
	if err == nil {
		_, derr := Decode(s)
		t.Fatalf("payload of %d characters made (Decode: %v); want an error", len(s), derr)
	}
	if !strings.Contains(err.Error(), "512") {
		t.Errorf("error %q does not name the limit", err)
	}
	// Shrink the identifiers until the payload fits: the longest that does decodes.
	for g := 60; g > 0; g-- {
		if s, err = Encode(order(g)); err == nil {
			break
		}
	}
	if err != nil || len(s) > MaxPayload {
		t.Fatalf("no payload within %d characters: %v", MaxPayload, err)
	}
	if _, err := Decode(s); err != nil {
		t.Fatalf("payload of %d characters does not decode: %v", len(s), err)
	}
}
