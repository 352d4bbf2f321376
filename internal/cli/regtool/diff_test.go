package regtool

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestDiffShowsLookAlikes: change show's line for a value that reads like the
// one before (a terminal moved to merchant 00000000000000I from
// 000000000000001) says by which character it differs; a plain change's line
// says nothing more. Before, the two IDs were printed alone.
func TestDiffShowsLookAlikes(t *testing.T) {
	before := json.RawMessage(`{"id":"T0000001","merchant_id":"000000000000001","model":"A920"}`)
	after := json.RawMessage(`{"id":"T0000001","merchant_id":"00000000000000I","model":"A930"}`)
	lines := Diff(before, after)
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), lines)
	}
	if !strings.Contains(lines[0], `merchant_id: "000000000000001" -> "00000000000000I" (reads like the value before, but is not: U+0049 'I' where the other has U+0031 '1' (character 15))`) {
		t.Fatalf("merchant_id line: %q", lines[0])
	}
	if lines[1] != `model: "A920" -> "A930"` {
		t.Fatalf("model line: %q", lines[1])
	}
}
