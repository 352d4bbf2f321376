package cvv

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm/internal/testvec"
)

const vectors = "../../testdata/vectors/crypto.json"

func TestPublishedVectors(t *testing.T) {
	for _, v := range testvec.Load(t, vectors, "visa_cvv") {
		c, err := NewPair(v.Hex(t, "cvk_a"), v.Hex(t, "cvk_b"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Compute(v.Str(t, "pan"), v.Str(t, "expiry_yymm"), v.Str(t, "service_code"))
		if err != nil {
			t.Fatal(err)
		}
		if got != v.Str(t, "expected") {
			t.Errorf("%s: CVV %s, want %s", v.Label(), got, v.Str(t, "expected"))
		}
		ok, err := c.Verify(v.Str(t, "expected"), v.Str(t, "pan"), v.Str(t, "expiry_yymm"), v.Str(t, "service_code"))
		if err != nil || !ok {
			t.Errorf("%s: Verify refused the published CVV", v.Label())
		}
		ok, _ = c.Verify("000", v.Str(t, "pan"), v.Str(t, "expiry_yymm"), v.Str(t, "service_code"))
		if ok && v.Str(t, "expected") != "000" {
			t.Errorf("%s: Verify accepted 000", v.Label())
		}
	}
}

func TestVariantsAndDecimalisation(t *testing.T) {
	cvk, _ := hex.DecodeString("0123456789ABCDEFFEDCBA9876543210")
	c, _ := New(cvk)
	cvv, _ := c.Compute("4123456789012345", "8701", "101")
	cvv2, _ := c.Compute("4123456789012345", "8701", ServiceCodeCVV2)
	icvv, _ := c.Compute("4123456789012345", "8701", ServiceCodeICVV)
	if cvv != "561" || cvv2 == cvv || icvv == cvv || len(cvv2) != 3 || len(icvv) != 3 {
		t.Fatalf("cvv %s cvv2 %s icvv %s", cvv, cvv2, icvv)
	}
	// Every result is 3 digits, across many PANs (exercises the A-F second pass).
	for i := 0; i < 300; i++ {
		pan := "476173900101" + strings.Repeat("0", 4-len(itoa(i))) + itoa(i)
		got, err := c.Compute(pan, "2912", "201")
		if err != nil || len(got) != 3 || strings.Trim(got, "0123456789") != "" {
			t.Fatalf("CVV %q %v", got, err)
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	return s
}

func TestBadInput(t *testing.T) {
	cvk, _ := hex.DecodeString("0123456789ABCDEFFEDCBA9876543210")
	c, _ := New(cvk)
	for _, in := range [][3]string{
		{"41234567890", "8701", "101"},
		{"4123456789012345X", "8701", "101"},
		{"4123456789012345", "871", "101"},
		{"4123456789012345", "8713", "101"},
		{"4123456789012345", "8700", "101"},
		{"4123456789012345", "8701", "1O1"},
	} {
		_, err := c.Compute(in[0], in[1], in[2])
		if !errors.Is(err, ErrInput) {
			t.Errorf("%v: err = %v", in, err)
		}
		if err != nil && strings.Contains(err.Error(), "4123456789012345") {
			t.Errorf("error leaks the PAN: %v", err)
		}
	}
	if _, err := New(cvk[:8]); err == nil {
		t.Error("8-byte CVK pair accepted")
	}
	if _, err := NewPair(cvk[:8], cvk[:4]); err == nil {
		t.Error("4-byte CVK B accepted")
	}
}
