// Package testvec loads the published test vectors in testdata/vectors/crypto.json for
// the tests of the hsm packages.
package testvec

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// Vector is one entry of crypto.json: its "kind" and its other fields as strings.
type Vector map[string]any

// Str returns field name as a string, failing the test when it is missing.
func (v Vector) Str(t testing.TB, name string) string {
	t.Helper()
	s, ok := v[name].(string)
	if !ok {
		t.Fatalf("vector %s: field %q missing or not a string", v.Label(), name)
	}
	return s
}

// Opt returns field name as a string, or "" when it is missing.
func (v Vector) Opt(name string) string {
	s, _ := v[name].(string)
	return s
}

// Hex returns field name decoded from hex, failing the test when it is missing or bad.
func (v Vector) Hex(t testing.TB, name string) []byte {
	t.Helper()
	b, err := hex.DecodeString(v.Str(t, name))
	if err != nil {
		t.Fatalf("vector %s: field %q: %v", v.Label(), name, err)
	}
	return b
}

// Label names the vector in test output: its kind and its most telling field.
func (v Vector) Label() string {
	k, _ := v["kind"].(string)
	for _, f := range []string{"ksn", "key_block", "pan", "key", "msg"} {
		if s, ok := v[f].(string); ok {
			if len(s) > 24 {
				s = s[:24] + "..."
			}
			return k + "/" + f + "=" + s
		}
	}
	return k
}

// Load reads the vectors file at path and returns the entries of the given kind,
// failing the test when the file cannot be read or holds no entry of that kind.
func Load(t testing.TB, path, kind string) []Vector {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read test vectors: %v", err)
	}
	var all []Vector
	if err := json.Unmarshal(raw, &all); err != nil {
		t.Fatalf("parse test vectors %s: %v", path, err)
	}
	var out []Vector
	for _, v := range all {
		if k, _ := v["kind"].(string); k == kind {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no test vector of kind %q in %s", kind, path)
	}
	return out
}

// Upper returns strings.ToUpper(hex.EncodeToString(b)).
func Upper(b []byte) string {
	return strings.ToUpper(hex.EncodeToString(b))
}
