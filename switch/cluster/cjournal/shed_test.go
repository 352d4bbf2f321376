package cjournal

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/switch/journal"
)

// TestShedWhileApplierBehind: while a message of node 1 that the stream
// acknowledged more than ShedAfter ago is not applied by node 1's applier (held on
// another node's record), node 1's Admit refuses new requests, and its Write the 91s
// kept for the journal's return, publishing nothing, with an error wrapping
// ErrBehind, journal.ErrUnavailable and journal.ErrOverloaded; it goes on refusing
// while the oldest such message is over a quarter of ShedAfter old, and after the
// writer waiting for it gave up, but for one request every shedProbe (whose
// message tells how far behind the applier is); once the applier has applied it,
// requests are taken again. The changes are logged once each.
func TestShedWhileApplierBehind(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc := startCluster(t, ctx, 1)
	var logs syncbuf.Buffer
	const after = 300 * time.Millisecond
	m1 := openMember(t, ctx, nc.nodes[0], 1, 1, t.TempDir(), func(o *Options) {
		o.ShedAfter = after
		o.AckTimeout = 30 * time.Second // the held write waits for its verdict, not for this
		o.Logger = zerolog.New(&logs).Level(zerolog.InfoLevel)
	})
	defer m1.close(t)
	m2 := openMember(t, ctx, nc.nodes[0], 2, 1, t.TempDir())
	defer m2.close(t)
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

	// Node 1's applier is held on node 2's first record.
	gate := make(chan struct{})
	var once sync.Once
	m1.mu.Lock()
	m1.hold = func() { once.Do(func() { <-gate }) }
	m1.mu.Unlock()
	release := sync.OnceFunc(func() { close(gate) })
	defer release()
	if _, err := journalTxn(ctx, m2, "T0000002", "000001", at); err != nil {
		t.Fatal(err)
	}

	// A request on node 1: acknowledged by the stream, then waiting for the applier.
	rrnA, err := m1.j.NextRRN()
	if err != nil {
		t.Fatal(err)
	}
	errA := make(chan error, 1)
	ctxA, giveUpA := context.WithCancel(ctx)
	defer giveUpA()
	go func() { errA <- m1.j.Write(ctxA, request(rrnA, "T0000001", "000001", at), true, true) }()
	var ackedAt time.Time
	acked := func() bool {
		m1.j.shed.pendMu.Lock()
		defer m1.j.shed.pendMu.Unlock()
		if len(m1.j.shed.pend) == 0 {
			return false
		}
		ackedAt = time.Unix(0, m1.j.shed.pend[0].at)
		return true
	}
	for tick := time.NewTicker(5 * time.Millisecond); !acked(); {
		select {
		case err := <-errA:
			t.Fatalf("the request written while the applier is held returned %v; want it to wait for the verdict", err)
		case <-ctx.Done():
			t.Fatal("the request's group was never acknowledged")
		case <-tick.C:
		}
	}

	// Within ShedAfter of the acknowledgement nothing is refused (a look at the
	// time just past the acknowledgement).
	if err := m1.j.shedding(time.Now(), true); err != nil {
		t.Fatalf("refused right after the acknowledgement: %v", err)
	}
	// Past it (a look as if ShedAfter and a look's interval had passed), a new
	// request is refused at once and publishes nothing.
	later := time.Now().Add(after + shedLook + 10*time.Millisecond)
	if err := m1.j.shedding(later, true); !errors.Is(err, ErrBehind) {
		t.Fatalf("a look past ShedAfter: %v; want ErrBehind", err)
	}
	err = m1.j.Admit()
	if !errors.Is(err, ErrBehind) || !errors.Is(err, journal.ErrUnavailable) || !errors.Is(err, journal.ErrOverloaded) {
		t.Fatalf("a request while the applier is behind: %v; want ErrBehind, journal.ErrUnavailable and journal.ErrOverloaded", err)
	}
	if !strings.Contains(err.Error(), "request refused") || !strings.Contains(err.Error(), "shed after 300ms") {
		t.Errorf("the refusal says %q; want that a request is refused, and the threshold", err)
	}
	if st := m1.j.Stats(); st.Shed != 2 {
		t.Errorf("after the refusal: shed %d; want 2 (the look's and Admit's)", st.Shed)
	}
	// Shedding, once begun, goes on while the oldest wait is over a quarter of
	// ShedAfter (a look forced at the time it is half of it).
	m1.j.shed.next.Store(0)
	if err := m1.j.shedding(ackedAt.Add(after/2), true); !errors.Is(err, ErrBehind) {
		t.Fatalf("a look at half ShedAfter's wait while shedding: %v; want ErrBehind", err)
	}
	// Its writer giving up does not end it: the applier has still not reached
	// the request's message.
	giveUpA()
	if err := <-errA; err == nil {
		t.Fatal("the request whose writer gave up returned no error")
	}
	m1.j.shed.next.Store(0)
	if err := m1.j.shedding(later.Add(shedLook), true); !errors.Is(err, ErrBehind) {
		t.Fatalf("a look once the waiting writer gave up, the applier still held: %v; want ErrBehind", err)
	}
	// One request every shedProbe goes through all the same, to see how far
	// behind the applier is now.
	if err := m1.j.shedding(later.Add(shedProbe), true); err != nil {
		t.Fatalf("the first look a probe's interval into shedding: %v; want a probe let through", err)
	}
	if err := m1.j.shedding(later.Add(shedProbe), true); !errors.Is(err, ErrBehind) {
		t.Fatalf("the next request at the same time: %v; want ErrBehind", err)
	}
	// A request's 91 kept for the journal's return (a first version, final) waits
	// too, publishing nothing, and is not counted as a request shed; nothing else
	// the journal writes waits.
	published := m1.j.Stats().Published
	rrnB, _ := m1.j.NextRRN()
	kept := request(rrnB, "T0000001", "000002", at)
	kept.RC, kept.DecidedBy = "91", "journal"
	if err := m1.j.Write(ctx, kept, true, true); !errors.Is(err, ErrBehind) || !strings.Contains(err.Error(), rrnB) {
		t.Fatalf("a kept 91 while the applier is behind: %v; want ErrBehind naming %s", err, rrnB)
	}
	if st := m1.j.Stats(); st.Published != published || st.Shed != 5 {
		t.Errorf("after the kept 91: published %d (before %d), shed %d; want nothing published and still 5 refused (the kept 91 is no request)", st.Published, published, st.Shed)
	}
	for _, r := range []*journal.Record{{MTI: "0200"}, {MTI: "0400", RC: "91", DecidedBy: "journal"}, {MTI: "0220"}, {MTI: "0320"},
		{MTI: "0200", RC: "59", DecidedBy: "rules"}, {MTI: "0200", RC: "00", DecidedBy: "issuer", QR: "wechat"}} {
		if keptAnswer(r) {
			t.Errorf("keptAnswer(MTI %s, RC %q by %q) = true; want false", r.MTI, r.RC, r.DecidedBy)
		}
	}

	// The applier goes on: once it has applied the request's message, requests
	// are taken again at the next look.
	release()
	if err := m1.j.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m1.j.shedding(later.Add(shedProbe+shedLook), true); err != nil {
		t.Fatalf("a look once the applier decided the waiting request: %v", err)
	}
	if _, err := journalTxn(ctx, m1, "T0000001", "000003", at); err != nil {
		t.Fatalf("a request after the applier caught up: %v", err)
	}
	for _, want := range []string{
		`"level":"warn","oldest_wait":`, "new requests are answered 91 at once",
		`"level":"info","oldest_wait":0`, `"refused":5`, "new requests are taken again",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the journal's log lacks %q:\n%s", want, logs.String())
		}
	}
	if n := strings.Count(logs.String(), "behind the stream;"); n != 1 {
		t.Errorf("%d lines say the applier is behind; want 1", n)
	}
}
