package state

import (
	"strings"
	"testing"
)

// TestListsCardHashForm: a card value of hex digits only is a card hash as the
// switch writes it (the pipeline's CardHash: 32 lower-case hex digits) or is
// refused as a new entry, saying which form is wanted: one cut to 16 characters,
// the whole HMAC (64), or in upper case never matches a card (until the fifteenth
// release of 8 December 2026 they were taken, silently). The switch's form and
// the tests' placeholders (letters past f, - _ + =) are taken as before, and an
// entry stored before, in a form now refused, can still be removed.
func TestListsCardHashForm(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	l, err := OpenLists(db, ListsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const hash = "9f2c41d0aa17e3b5c0ffee0112345678"
	for _, v := range []string{hash[:16], hash + hash, strings.ToUpper(hash), hash[:24], hash[:31]} {
		_, err := l.Add("alice", ListEntry{List: ListDeny, Kind: KindCard, Value: v})
		if err == nil || !strings.Contains(err.Error(), "32 lower-case hex digits") {
			t.Errorf("card %q: %v, want refused for the form the switch writes", v, err)
		}
	}
	for _, v := range []string{hash, "card-hash-meanwhile-0000", "Zk3hC0lludingCardHash00", "c2FtcGxlLWNhcmQtaGFzaC0wMDAx"} {
		if _, err := l.Add("alice", ListEntry{List: ListDeny, Kind: KindCard, Value: v}); err != nil {
			t.Errorf("card %q: %v", v, err)
		}
	}
	// Hex digits of other lengths stay valid for the other kinds.
	if _, err := l.Add("alice", ListEntry{List: "watch", Kind: KindTerminal, Value: "ABCDEF01"}); err != nil {
		t.Errorf("terminal ABCDEF01: %v", err)
	}
	plantClearNote(t, l, hash[:16], "added before the check")
	if ok, err := l.Remove("bob", ListDeny, KindCard, hash[:16]); err != nil || !ok {
		t.Errorf("removing the truncated hash stored before: %v %v", ok, err)
	}
}
