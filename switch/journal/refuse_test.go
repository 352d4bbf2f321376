package journal

import (
	"context"
	"errors"
	"testing"
	"time"
)

// While new records are refused (the server's disk guard), a first write fails with
// ErrUnavailable and leaves nothing behind, but for a reversal's or a void's, and the
// records already written still take their later versions and delivery marks; once
// admitted again, new records are written.
func TestRefuseNewKeepsUpdates(t *testing.T) {
	db, s := open(t, t.TempDir())
	defer db.Close()
	defer s.Close()
	ctx := context.Background()
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	inFlight := sample("000000000001", at, "T0000001")
	if err := s.Write(ctx, inFlight, true, true); err != nil {
		t.Fatal(err)
	}

	s.RefuseNew(errors.New("disk nearly full"))
	fresh := sample("000000000002", at, "T0000001")
	if err := s.Write(ctx, fresh, true, true); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a new record while refused: %v, want ErrUnavailable", err)
	}
	if _, err := s.Get(fresh.RRN); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused record is readable: %v", err)
	}
	for _, typ := range []string{"reversal", "void"} {
		back := sample(map[string]string{"reversal": "000000000003", "void": "000000000004"}[typ], at, "T0000001")
		back.Type, back.STAN = typ, map[string]string{"reversal": "000124", "void": "000125"}[typ]
		if err := s.Write(ctx, back, true, true); err != nil {
			t.Fatalf("a %s while new records are refused: %v (it takes an approval back: let through)", typ, err)
		}
	}
	inFlight.AddEvent(StateResponded, at, "")
	if err := s.Write(ctx, inFlight, false, true); err != nil {
		t.Fatalf("a later version while new records are refused: %v", err)
	}
	if err := s.MarkDelivery(inFlight.RRN, true, at); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(inFlight.RRN); err != nil || len(got.Events) != len(inFlight.Events) {
		t.Fatalf("the in-flight record's later version: %+v, %v", got, err)
	}

	s.RefuseNew(nil)
	if err := s.Write(ctx, fresh, true, true); err != nil {
		t.Fatalf("a new record once admitted again: %v", err)
	}
}
