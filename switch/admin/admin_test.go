package admin

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

// A token needs the name of who holds it: the audit logs record it, and the
// switch's own name ("system", or one that reads as it: "System", "SYSTEM") would
// let its holder act as the switch.
func TestTokenNames(t *testing.T) {
	good := Token{Token: "t1", Principal: Principal{Name: "alice", Role: RoleOperator}}
	if _, err := NewAuthenticator([]Token{good}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "  ", SystemName, "System", "SYSTEM", "sys.tem"} {
		bad := Token{Token: "t2", Principal: Principal{Name: name, Role: RoleOperator}}
		if _, err := NewAuthenticator([]Token{good, bad}); err == nil || !strings.Contains(err.Error(), "admin token 1") {
			t.Errorf("a token named %q: %v, want refused", name, err)
		}
	}
}

// TestHasNameReadsAsOne: a console user may not be named as a token, nor by a
// name that reads as the token's ("Alice", "a1ice" for alice): the oplog records
// names only. Before, only the identical name was found.
func TestHasNameReadsAsOne(t *testing.T) {
	a, err := NewAuthenticator([]Token{{Token: "t1", Principal: Principal{Name: "alice", Role: RoleOperator}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alice", "Alice", "ALICE", "a1ice", "alice."} {
		if !a.HasName(name) {
			t.Errorf("HasName(%q) = false, want true beside the token alice", name)
		}
	}
	if a.HasName("alicia") {
		t.Error("HasName(alicia) = true, want false")
	}
}

// TestReadJSONOneValue: a body is one JSON value; more after it is refused, not
// dropped unread. Space after it is not more.
func TestReadJSONOneValue(t *testing.T) {
	for body, ok := range map[string]bool{
		`{"a":1}`:         true,
		"{\"a\":1}\n  \t": true,
		`{"a":1}{"a":2}`:  false,
		`{"a":1} x`:       false,
		`{"a":1}]`:        false,
		`{"a":1} {"b":2}`: false,
		`{"b":2}`:         false, // unknown field
	} {
		var v struct{ A int }
		err := ReadJSON(httptest.NewRequest("POST", "/", strings.NewReader(body)), &v)
		if (err == nil) != ok {
			t.Errorf("%q: %v; want ok %v", body, err, ok)
		}
	}
}

func TestReadJSONRefusesNonUTF8(t *testing.T) {
	var v struct{ S string }
	if err := ReadJSON(httptest.NewRequest("POST", "/", strings.NewReader(`{"s":"北京"}`)), &v); err != nil || v.S != "北京" {
		t.Fatalf("UTF-8 body: %q, %v", v.S, err)
	}
	// 北京 in GBK: encoding/json would read each byte as U+FFFD.
	gbk := "{\"s\":\"\xb1\xb1\xbe\xa9\"}"
	err := ReadJSON(httptest.NewRequest("POST", "/", strings.NewReader(gbk)), &v)
	if err == nil || !strings.Contains(err.Error(), "not UTF-8 (byte 0xB1 at offset 6)") {
		t.Fatalf("GBK body: %v, want it refused at offset 6", err)
	}
}

func TestWriteErrorMasksCardNumbers(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, 404, errors.New("journal: no such record: RRN 4761734000000120"))
	if body := w.Body.String(); strings.Contains(body, "4761734000000120") || !strings.Contains(body, "476173******0120") {
		t.Errorf("error answer %s: want the card number masked", body)
	}
}
