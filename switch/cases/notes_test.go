package cases

import (
	"errors"
	"strings"
	"testing"
)

// TestNotesRefuseBidiAndInvisible: an assignment's note and a decision's note that
// hold a bidi, zero-width or control character are refused (ErrInvalid naming the
// code point and the field, the case unchanged); Chinese notes over two lines are
// taken.
func TestNotesRefuseBidiAndInvisible(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	e.open(t, s, "000000000001")
	for _, n := range []struct{ text, code string }{
		{"fraud \u202enot", "U+202E"}, {"已核实\u200b", "U+200B"}, {"\u2067欺诈\u2069", "U+2067"}, {"ok\x07", "U+0007"},
	} {
		_, err := s.Assign(analyst, "CASE-1", "", n.text)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), n.code) || !strings.Contains(err.Error(), "CASE-1: note") {
			t.Errorf("assign with note %q: %v, want ErrInvalid naming %s and the note", n.text, err, n.code)
		}
		_, err = s.Decide(analyst, "CASE-1", VerdictCleared, n.text)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), n.code) || !strings.Contains(err.Error(), "decision note") {
			t.Errorf("decide with note %q: %v, want ErrInvalid naming %s and the decision note", n.text, err, n.code)
		}
	}
	if c, err := s.Get("CASE-1"); err != nil || c.Status != StatusOpen {
		t.Fatalf("case after refused notes: %+v, %v; want open", c, err)
	}
	if _, err := s.Assign(analyst, "CASE-1", "", "我来处理"); err != nil {
		t.Fatalf("assign with a Chinese note: %v", err)
	}
	if _, err := s.Decide(analyst, "CASE-1", VerdictCleared, "老顾客，\n金额正常"); err != nil {
		t.Fatalf("decide with a Chinese note over two lines: %v", err)
	}
}
