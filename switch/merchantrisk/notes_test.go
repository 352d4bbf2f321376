package merchantrisk

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/risk/rating"
	"github.com/switchyard/switchyard/rules"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestPinReasonRefusesBidi: a pin's or an unpin's reason holding a bidi or
// zero-width character is refused (ErrInvalid naming the code point, no pin set);
// a reason in Chinese is taken.
func TestPinReasonRefusesBidi(t *testing.T) {
	pol, err := rating.ParsePolicy(rules.RatingPolicy, "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg := &fakeRegistry{db: db, merchants: []*registry.Merchant{{ID: "M1", CreatedAt: now.Add(-400 * 24 * time.Hour), Status: registry.MerchantActive}}}
	r, err := New(db, &fakeJournal{}, reg, Options{Policy: pol, Hour: 3, Minute: 30, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []struct{ text, code string }{{"拒付\u202e审查中", "U+202E"}, {"review\u200d", "U+200D"}} {
		if _, err := r.Pin("M1", "D", n.text, "ana", 7); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), n.code) ||
			!strings.Contains(err.Error(), "reason") {
			t.Errorf("pin with reason %q: %v, want ErrInvalid naming %s", n.text, err, n.code)
		}
		if _, err := r.Unpin("M1", n.text, "ana"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), n.code) {
			t.Errorf("unpin with reason %q: %v, want ErrInvalid naming %s", n.text, err, n.code)
		}
	}
	if e, _ := r.Explain("M1"); e != nil && e.Pin != nil {
		t.Fatalf("pinned with a refused reason: %+v", e.Pin)
	}
	if _, err := r.Pin("M1", "D", "拒付审查中", "ana", 7); err != nil {
		t.Fatalf("pin with a Chinese reason: %v", err)
	}
}
