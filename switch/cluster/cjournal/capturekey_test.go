package cjournal

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
)

// TestCaptureKeyDuplicate: an offline approval's record is keyed by its card's
// approval (journal.Record.CaptureKey), not by its DE 41 + 11 + 7: the same approval
// written by another node under another STAN, time and terminal is void on every
// node and its writer gets a *journal.DuplicateError naming the first, whether the
// applier finds the key among what it applied since its last flush or in the
// store's index, and after a restart. A refusal of one (journaled without DE 7)
// takes no key; another approval of the same card (another key) is taken.
func TestCaptureKeyDuplicate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc := startCluster(t, ctx, 1)
	m1 := openMember(t, ctx, nc.nodes[0], 1, 1, t.TempDir())
	defer func() { m1.close(t) }()
	m2 := openMember(t, ctx, nc.nodes[0], 2, 1, t.TempDir())
	defer func() { m2.close(t) }()
	at := time.Date(2026, 12, 5, 18, 30, 15, 0, time.UTC)
	const key = "00112233445566778899aabbccddeeff"
	write := func(m *member, tid, stan string, at time.Time, key string, edit func(*journal.Record)) (*journal.Record, error) {
		t.Helper()
		rrn, err := m.j.NextRRN()
		if err != nil {
			t.Fatal(err)
		}
		r := request(rrn, tid, stan, at)
		r.Offline, r.CaptureKey = true, key
		if edit != nil {
			edit(r)
		}
		return r, m.j.Write(ctx, r, true, true)
	}
	dupOf := func(err error) string {
		var de *journal.DuplicateError
		if errors.As(err, &de) && de.Key == journal.CaptureDupKey(key) {
			return de.RRN
		}
		return ""
	}
	// A refusal first: it takes no key.
	refused, err := write(m1, "TC000001", "000009", at, key, func(r *journal.Record) { r.DE7, r.RC = "", "05" })
	if err != nil {
		t.Fatal(err)
	}
	first, err := write(m1, "TC000001", "000010", at, key, nil)
	if err != nil {
		t.Fatalf("the capture after a refusal of the same approval: %v", err)
	}
	// Node 2 need not have applied node 1's record: the stream's order decides.
	r, err := write(m2, "TC000001", "000011", at.Add(time.Hour), key, nil)
	if dupOf(err) != first.RRN {
		t.Fatalf("node 2's capture of node 1's approval under another STAN: %v; want a duplicate of %s", err, first.RRN)
	}
	for _, m := range []*member{m1, m2} {
		if err := m.j.CaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := m.j.Get(r.RRN); !errors.Is(err, journal.ErrNotFound) {
			t.Fatalf("node %d holds the second capture %s: %v", m.num, r.RRN, err)
		}
		if got, ok, _ := m.j.LookupDuplicateKey(journal.CaptureDupKey(key)); !ok || got != first.RRN {
			t.Fatalf("node %d's duplicate index: %s %v; want %s", m.num, got, ok, first.RRN)
		}
		if _, ok, _ := m.j.LookupDuplicate(first.TID, first.STAN, first.DE7); ok {
			t.Fatalf("node %d indexes the capture under its DE 41 + 11 + 7 too", m.num)
		}
		if rec, err := m.j.Get(refused.RRN); err != nil || rec.CaptureKey != key {
			t.Fatalf("node %d: the refusal %+v (%v); want it journaled with its key", m.num, rec, err)
		}
	}
	// Once applied everywhere, from the store's index; from another terminal too.
	if _, err := write(m2, "TC000002", "000001", at, key, nil); dupOf(err) != first.RRN {
		t.Fatalf("the approval again from another terminal, once applied: %v", err)
	}
	if _, err := write(m2, "TC000001", "000012", at, "ffeeddccbbaa99887766554433221100", nil); err != nil {
		t.Fatalf("another approval of the card: %v", err)
	}
	// After a restart of node 2, from its store's index.
	m2.close(t)
	m2 = openMember(t, ctx, nc.nodes[0], 2, 1, m2.dir)
	if _, err := write(m2, "TC000001", "000013", at.Add(2*time.Hour), key, nil); dupOf(err) != first.RRN {
		t.Fatalf("the approval again after node 2's restart: %v", err)
	}
}
