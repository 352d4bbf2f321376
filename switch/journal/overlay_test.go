package journal

import (
	"context"
	"testing"
	"time"
)

// fakeOverlay holds one record until Release writes it to the store.
type fakeOverlay struct {
	s        *Store
	rec      *Record
	released int
}

func (o *fakeOverlay) Get(rrn string) (*Record, bool, error) {
	if o.rec == nil || rrn != o.rec.RRN {
		return nil, false, nil
	}
	c := *o.rec
	return &c, true, nil
}

func (o *fakeOverlay) LookupDuplicate(key string) (string, bool) {
	if o.rec == nil || key != DupKey(o.rec.TID, o.rec.STAN, o.rec.DE7) {
		return "", false
	}
	return o.rec.RRN, true
}

func (o *fakeOverlay) Release(ctx context.Context) error {
	o.released++
	if o.rec == nil {
		return nil
	}
	rec := o.rec
	o.rec = nil
	return o.s.Write(ctx, rec, true, true)
}

// TestOverlay: a record held by the store's overlay is read, looked up and scanned
// as if stored; GetStored reads past it.
func TestOverlay(t *testing.T) {
	db, s := open(t, t.TempDir())
	defer db.Close()
	defer s.Close()
	ctx := context.Background()
	at := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	held := sample("200000000001", at, "T1")
	held.STAN, held.DE7 = "000001", "1202070000"
	o := &fakeOverlay{s: s, rec: held}
	s.SetOverlay(o)
	if r, err := s.Get(held.RRN); err != nil || r.RRN != held.RRN {
		t.Fatalf("Get of the held record: %+v %v", r, err)
	}
	if _, err := s.GetStored(held.RRN); err == nil {
		t.Fatal("GetStored found the held record: want it only in the overlay")
	}
	if rrn, ok, err := s.LookupDuplicate("T1", "000001", "1202070000"); err != nil || !ok || rrn != held.RRN {
		t.Fatalf("LookupDuplicate of the held record: %q %v %v", rrn, ok, err)
	}
	var seen []string
	if err := s.Scan(ctx, Query{TID: "T1"}, func(r *Record) bool { seen = append(seen, r.RRN); return true }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != held.RRN || o.released != 1 {
		t.Fatalf("scan saw %v after %d releases, want the held record after one", seen, o.released)
	}
	if last, err := s.LastReceived(); err != nil || !last.Equal(at) || o.released != 2 {
		t.Fatalf("LastReceived: %v %v (%d releases)", last, err, o.released)
	}
	s.SetOverlay(nil)
	if r, err := s.Get(held.RRN); err != nil || r.RRN != held.RRN {
		t.Fatalf("Get of the released record without the overlay: %+v %v", r, err)
	}
}

// TestWriteLater: a write that starts no commit is committed, and readable, with the
// next durable write, in order with it.
func TestWriteLater(t *testing.T) {
	db, s := open(t, t.TempDir())
	defer db.Close()
	defer s.Close()
	ctx := context.Background()
	at := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	r := sample("200000000001", at, "T1")
	enc, err := r.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteEncodedLater(ctx, r, enc, true); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDeliveryLater(r.RRN, true, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDurable(ctx, []byte("test/key"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(r.RRN)
	if err != nil || got.State != StateResponded {
		t.Fatalf("after the durable write: %+v %v, want the record with its delivery", got, err)
	}
}
