package carddata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaskJSON masks the card numbers (MaskText) in the string values of raw, one JSON
// value (a stored record), found at paths, and reports how many it replaced. A path
// names object keys joined by dots; "[]" after a key stands for every element of
// the array under it: "reason", "merchant.name", "merchants[].status_reason".
// Everything else, the other fields, their order and their spacing, is kept byte
// for byte, so that a record whose free text holds no card number comes back
// unchanged (the same slice) and one that does differs only there. Values at the
// paths that are not strings are left alone. It is for text stored before the
// stores masked it as they wrote it; it fails only on raw that is not JSON.
func MaskJSON(raw []byte, paths ...string) ([]byte, int, error) {
	if countDigitsBytes(raw) < minPAN || len(paths) == 0 {
		return raw, 0, nil
	}
	want := make(map[string]bool, len(paths))
	for _, p := range paths {
		want[strings.ReplaceAll(p, "[]", ".[]")] = true
	}
	type frame struct {
		array     bool
		key       string // the object's current key
		expectKey bool   // an object awaiting a key (not a value)
	}
	var (
		stack  []frame
		out    []byte
		copied int
		n      int
	)
	path := func() string {
		parts := make([]string, len(stack))
		for i, f := range stack {
			if f.array {
				parts[i] = "[]"
			} else {
				parts[i] = f.key
			}
		}
		return strings.Join(parts, ".")
	}
	// valueDone marks the end of a value inside the frame on top: an object then
	// expects its next key.
	valueDone := func() {
		if len(stack) > 0 && !stack[len(stack)-1].array {
			stack[len(stack)-1].expectKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	for {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) && len(stack) == 0 {
			break
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return raw, 0, fmt.Errorf("carddata: mask a JSON record: %w", err)
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{expectKey: true})
			case '[':
				stack = append(stack, frame{array: true})
			default: // '}' or ']'
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if top := len(stack) - 1; top >= 0 && stack[top].expectKey {
				stack[top].key, stack[top].expectKey = t, false
				continue
			}
			if want[path()] {
				if masked, k := MaskText(t); k > 0 {
					start := before + int64(bytes.IndexByte(raw[before:], '"'))
					enc, err := json.Marshal(masked)
					if err != nil {
						return raw, 0, fmt.Errorf("carddata: mask a JSON record: %w", err)
					}
					out = append(append(out, raw[copied:start]...), enc...)
					copied, n = int(dec.InputOffset()), n+k
				}
			}
			valueDone()
		default:
			valueDone()
		}
	}
	if n == 0 {
		return raw, 0, nil
	}
	return append(out, raw[copied:]...), n, nil
}

// countDigitsBytes counts the ASCII digits of b.
func countDigitsBytes(b []byte) int {
	n := 0
	for _, c := range b {
		if c >= '0' && c <= '9' {
			n++
		}
	}
	return n
}

// Tally counts what a clean-up of stored free text (a store's MaskStoredText) did.
type Tally struct {
	// Records is how many stored records (or log entries) held a card number in
	// their free text and were rewritten masked.
	Records int `json:"records"`
	// CardNumbers is how many card numbers were masked in them.
	CardNumbers int `json:"card_numbers"`
	// Rechained is how many entries of a hash-chained log were rewritten only
	// because an entry before them was: their link to it (and so their hash)
	// changed, not their content.
	Rechained int `json:"rechained,omitempty"`
}

// Add adds o to t.
func (t *Tally) Add(o Tally) {
	t.Records += o.Records
	t.CardNumbers += o.CardNumbers
	t.Rechained += o.Rechained
}
