package cjournal

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/switch/journal"
)

// TestKSNReplay: a request whose DUKPT KSN another node's record carried earlier in
// the stream is void on every node, and its writer gets a *journal.KSNReplayError
// naming that record, whether the applier finds the KSN among what it applied since
// its last flush or in the store's index, and after a restart; the same request
// written again (its own RRN) and a request with a new KSN are taken.
func TestKSNReplay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc := startCluster(t, ctx, 1)
	m1 := openMember(t, ctx, nc.nodes[0], 1, 1, t.TempDir())
	defer func() { m1.close(t) }()
	m2 := openMember(t, ctx, nc.nodes[0], 2, 1, t.TempDir())
	defer func() { m2.close(t) }()
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	write := func(m *member, tid, stan, ksn string) (*journal.Record, error) {
		t.Helper()
		rrn, err := m.j.NextRRN()
		if err != nil {
			t.Fatal(err)
		}
		r := request(rrn, tid, stan, at)
		r.KSN = ksn
		return r, m.j.Write(ctx, r, true, true)
	}
	replayOf := func(err error) string {
		var re *journal.KSNReplayError
		if errors.As(err, &re) {
			return re.RRN
		}
		return ""
	}

	first, err := write(m1, "TK000001", "000001", "FFFF9876543210E00001")
	if err != nil {
		t.Fatal(err)
	}
	// Node 2 has not necessarily applied node 1's record: the stream's order decides.
	r, err := write(m2, "TK000002", "000001", "FFFF9876543210E00001")
	if replayOf(err) != first.RRN {
		t.Fatalf("node 2's request with node 1's KSN: %v; want a KSN replay of %s", err, first.RRN)
	}
	for _, m := range []*member{m1, m2} {
		if err := m.j.CaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := m.j.Get(r.RRN); !errors.Is(err, journal.ErrNotFound) {
			t.Fatalf("node %d holds the replay %s: %v", m.num, r.RRN, err)
		}
	}
	// After the flush: from the store's index; the KSN in lower case is the same KSN.
	if _, err := write(m2, "TK000002", "000002", "ffff9876543210e00001"); replayOf(err) != first.RRN {
		t.Fatalf("the replay again in lower case, once applied everywhere: %v", err)
	}
	// An entry of a version before format 3 (no Sy-Format header) is decided by its
	// duplicate key alone, as that version decides it: taken.
	old := request("200000000099", "TK000003", "000001", at)
	old.KSN = "FFFF9876543210E00001"
	msg := &nats.Msg{Subject: "journal.2.g", Data: firstEntry(t, old), Header: nats.Header{}}
	msg.Header.Set(hdrNode, "2")
	msg.Header.Set(hdrKind, kindGroup)
	if _, err := m1.j.js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if err := m1.j.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m1.j.Get(old.RRN); err != nil {
		t.Fatalf("an entry of format 2 with a KSN used before: %v; want it taken", err)
	}
	// The first request written again (a retry: its own RRN) and a new KSN are taken.
	if err := m1.j.Write(ctx, first, true, true); err != nil {
		t.Fatalf("the first request written again: %v", err)
	}
	if _, err := write(m2, "TK000002", "000003", "FFFF9876543210E00002"); err != nil {
		t.Fatalf("a new KSN: %v", err)
	}
	// After a restart of node 2, from its store's index.
	m2.close(t)
	m2 = openMember(t, ctx, nc.nodes[0], 2, 1, m2.dir)
	if _, err := write(m2, "TK000002", "000004", "FFFF9876543210E00002"); replayOf(err) == "" {
		t.Fatalf("a KSN node 2 took before its restart, again: %v", err)
	}
	if _, err := write(m1, "TK000001", "000002", "FFFF9876543210E00002"); replayOf(err) == "" {
		t.Fatalf("node 2's KSN on node 1: %v", err)
	}
}
