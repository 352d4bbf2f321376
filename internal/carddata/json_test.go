package carddata

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestMaskJSON: the card numbers at the named paths are masked, everything else
// (other fields, an ID of PAN-like digits, numbers, order, spacing) is kept byte
// for byte, and a record without one comes back as it was.
func TestMaskJSON(t *testing.T) {
	const pan = "4761739001010119"
	raw := `{"id":"` + pan + `", "name":"Shop ` + pan + `","n":4761739001010119,` +
		`"merchant":{"name":"x 4761 7390 0101 0119 y","status_reason":"ok"},` +
		`"merchants":[{"id":"1","name":"` + pan + `"},{"name":"plain"}],"reason":{"name":"` + pan + `"},` +
		`"esc":"a\"b","review_note":"call \u0034761739001010119 <now>"}`
	got, n, err := MaskJSON([]byte(raw), "name", "merchant.name", "merchants[].name", "reason", "review_note", "esc")
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("masked %d card numbers, want 4 (name, merchant.name, merchants[0].name, review_note)", n)
	}
	want := `{"id":"` + pan + `", "name":"Shop 476173******0119","n":4761739001010119,` +
		`"merchant":{"name":"x 476173******0119 y","status_reason":"ok"},` +
		`"merchants":[{"id":"1","name":"476173******0119"},{"name":"plain"}],"reason":{"name":"` + pan + `"},` +
		`"esc":"a\"b","review_note":"call 476173******0119 \u003cnow\u003e"}`
	if string(got) != want {
		t.Errorf("MaskJSON:\n got %s\nwant %s", got, want)
	}
	if !json.Valid(got) {
		t.Errorf("the result is not JSON: %s", got)
	}
	again, n, err := MaskJSON(got, "name", "merchant.name", "merchants[].name", "reason", "review_note")
	if err != nil || n != 0 || string(again) != string(got) {
		t.Errorf("a second pass changed %d: %s (%v)", n, again, err)
	}
	clean := []byte(`{"name":"no card here 12345","id":"` + pan + `"}`)
	if out, n, err := MaskJSON(clean, "name"); err != nil || n != 0 || &out[0] != &clean[0] {
		t.Errorf("a record without a card number at the paths: %d masked, same slice %v, %v", n, &out[0] == &clean[0], err)
	}
	if _, _, err := MaskJSON([]byte(`{"name":"`+pan+`"`), "name"); err == nil || !strings.Contains(err.Error(), "mask a JSON record") {
		t.Errorf("truncated JSON: err %v", err)
	}
}
