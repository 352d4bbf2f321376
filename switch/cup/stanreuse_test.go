package cup

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
)

// TestSTANReusedByAnotherTransaction: a cup request whose STAN, type and amount are
// those of an earlier request of the terminal, but whose card, entry mode, chip data
// or payment code differ, is another transaction reusing the STAN (a terminal whose
// counter restarted), not a resend: it is answered 94 `duplicate-stan-other-content`,
// journaled as a refusal, nothing forwarded, instead of being given the DE 7 of the
// first (whose answer the pipeline would repeat). The first request sent again still
// gets its DE 7 (the pipeline's duplicate), before and after such refusals. For a
// STAN read back from the journal (after a restart), which keeps no fingerprint of
// the request, the entry mode is compared (the pipeline compares the card). A
// reused STAN of another amount is a new request, as before.
func TestSTANReusedByAnotherTransaction(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	clock := now
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	restored := &journal.Record{RRN: "000000000900", TID: term.TID, MTI: "0200", ProcCode: "000000", STAN: "000900",
		DE7: "1206113000", Amount: 4200, EntryMode: "022", RC: "00", Received: now.Add(-30 * time.Minute)}
	p := &fakePipeline{}
	refusals := &fakeRefusals{}
	a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Journal: recordsJournal{restored}, Refusals: refusals,
		Now: func() time.Time { return clock }}, p)
	build := func(tx Txn, edit func(*Frame)) *Frame {
		t.Helper()
		f, err := term.Build(tx)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(f)
		}
		return f
	}
	forwarded := func() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.reqs) }
	icc := func(arqc string) func(*Frame) {
		return func(f *Frame) {
			b, _ := hex.DecodeString("9F2608" + arqc + "9F3602000C" + "9F0206000000001000")
			f.SetBytes(55, b)
		}
	}
	const cardA, cardB = "6225880212345678", "6225880287654321"

	first := build(Txn{Kind: "sale", PAN: cardA, Expiry: "2912", Amount: 1000, STAN: "000321"}, icc("1111111111111111"))
	if ans := exchange(t, a, conn, first, term.MACOf); ans.Str(39) != "00" {
		t.Fatalf("first sale: %s", Summary(ans))
	}
	de7 := p.last().DE7
	resend := func(when string) {
		t.Helper()
		clock = clock.Add(3 * time.Second)
		if ans := exchange(t, a, conn, first, term.MACOf); ans.Str(39) != "00" || p.last().DE7 != de7 {
			t.Errorf("%s: the first sale sent again: %s, DE 7 %s; want the first's %s (the pipeline's duplicate)", when, Summary(ans), p.last().DE7, de7)
		}
	}
	resend("before any reuse")

	for _, c := range []struct {
		name string
		f    *Frame
	}{
		{"another card", build(Txn{Kind: "sale", PAN: cardB, Expiry: "2912", Amount: 1000, STAN: "000321"}, icc("1111111111111111"))},
		{"the same card read again (another cryptogram)", build(Txn{Kind: "sale", PAN: cardA, Expiry: "2912", Amount: 1000, STAN: "000321"}, icc("2222222222222222"))},
		{"the same card swiped (no chip data, entry mode 022)", build(Txn{Kind: "sale", Track2: cardA + "=2912101", Amount: 1000, STAN: "000321"}, nil)},
		{"a QR payment", build(Txn{Kind: "sale", QRCode: "6220123456789012345", Amount: 1000, STAN: "000321"}, nil)},
	} {
		clock = clock.Add(7 * time.Second)
		before := forwarded()
		ans := exchange(t, a, conn, c.f, term.MACOf)
		if ans.Str(39) != message.RCDuplicate || forwarded() != before || !ans.Has(64) {
			t.Errorf("%s reusing STAN 000321 with the same amount: %s, forwarded %v, F64 %v; want 94, nothing forwarded, MAC'd",
				c.name, Summary(ans), forwarded() != before, ans.Has(64))
			continue
		}
		refusals.mu.Lock()
		got := refusals.got[len(refusals.got)-1]
		refusals.mu.Unlock()
		if got.RC != "94" || got.Reason != "duplicate-stan-other-content" || got.STAN != "000321" || got.MTI != "0200" {
			t.Errorf("%s: journaled refusal %+v; want 94 duplicate-stan-other-content for STAN 000321", c.name, got)
		}
	}
	resend("after the refusals")

	// The QR payment of another payer reusing a QR payment's STAN.
	qr := build(Txn{Kind: "sale", QRCode: "6220123456789012345", Amount: 2500, STAN: "000400"}, nil)
	if ans := exchange(t, a, conn, qr, term.MACOf); ans.Str(39) != "00" {
		t.Fatalf("QR sale: %s", Summary(ans))
	}
	clock = clock.Add(time.Second)
	if ans := exchange(t, a, conn, build(Txn{Kind: "sale", QRCode: "6220999999999999999", Amount: 2500, STAN: "000400"}, nil), term.MACOf); ans.Str(39) != "94" {
		t.Errorf("another payer's QR payment reusing STAN 000400 with the same amount: %s, want 94", Summary(ans))
	}

	// Another amount is a new request (new DE 7), as before.
	clock = clock.Add(time.Second)
	other := build(Txn{Kind: "sale", PAN: cardB, Expiry: "2912", Amount: 1001, STAN: "000321"}, nil)
	if ans := exchange(t, a, conn, other, term.MACOf); ans.Str(39) != "00" || p.last().DE7 == de7 {
		t.Errorf("STAN 000321 reused with another amount: %s, DE 7 %s; want a new request", Summary(ans), p.last().DE7)
	}

	// A STAN read back from the journal: the entry mode is compared.
	clock = clock.Add(time.Second)
	if ans := exchange(t, a, conn, build(Txn{Kind: "sale", PAN: cardA, Expiry: "2912", Amount: 4200, STAN: "000900"}, icc("3333333333333333")), term.MACOf); ans.Str(39) != "94" {
		t.Errorf("a keyed sale (entry mode 012) reusing the STAN of a swiped sale read from the journal: %s, want 94", Summary(ans))
	}
	if ans := exchange(t, a, conn, build(Txn{Kind: "sale", Track2: cardA + "=2912101", Amount: 4200, STAN: "000900"}, nil), term.MACOf); ans.Str(39) != "00" || p.last().DE7 != restored.DE7 {
		t.Errorf("the swiped sale read from the journal sent again: %s, DE 7 %s; want the journal's %s", Summary(ans), p.last().DE7, restored.DE7)
	}
}

// TestSTANReusedAfterRestart: with Config.ContentKey (the switch derives it from its
// card hash key) the fingerprint of a request's content goes to the pipeline with
// the request (frontend.Conn.ContentSum, which it journals), the same from any
// adapter under that key (another node, a restarted switch). A session that reads
// the request back from the journal (a new adapter and session store: a restart)
// compares it: the same card's second chip transaction of the STAN and amount (another
// cryptogram, same entry mode) is answered 94, nothing forwarded, where it was given
// the first's DE 7 (and so its approval); the first sent again still gets its DE 7.
// A record the pipeline answered 94 under that DE 7 (journal.Record.OwnsDupKey) is not
// taken for the STAN's request. A record without a fingerprint (an earlier version's)
// is compared as before, by entry mode; so is one read by an adapter without the key.
// The fingerprint allocates nothing.
func TestSTANReusedAfterRestart(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	key := []byte("a key derived from the card hash key")
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	clock := now
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	const card = "6225880212345678"
	sale := func(stan, arqc string) *Frame {
		t.Helper()
		f, err := term.Build(Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 1000, STAN: stan})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := hex.DecodeString("9F2608" + arqc + "9F3602000C" + "9F0206000000001000")
		f.SetBytes(55, b)
		return f
	}
	adapter := func(key []byte, j Journal) (*Adapter, *fakePipeline) {
		p := &fakePipeline{}
		return NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Journal: j, Refusals: &fakeRefusals{},
			ContentKey: key, Now: func() time.Time { return clock }}, p), p
	}
	lastSum := func(p *fakePipeline) uint64 { p.mu.Lock(); defer p.mu.Unlock(); return p.sums[len(p.sums)-1] }
	forwarded := func(p *fakePipeline) int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.reqs) }

	// Before the restart: the first sale, its fingerprint given to the pipeline.
	first := sale("000321", "1111111111111111")
	a1, p1 := adapter(key, nil)
	if ans := exchange(t, a1, conn, first, term.MACOf); ans.Str(39) != "00" {
		t.Fatalf("first sale: %s", Summary(ans))
	}
	de7, sum := p1.last().DE7, lastSum(p1)
	if sum == 0 {
		t.Fatal("no content fingerprint given to the pipeline with a ContentKey")
	}
	// Another node (its own sessions, the same key) fingerprints it alike.
	if other, p := adapter(key, nil); exchange(t, other, conn, first, term.MACOf).Str(39) != "00" || lastSum(p) != sum {
		t.Errorf("the same request on another adapter under the key: fingerprint %x, want %x", lastSum(p), sum)
	}
	// Without the key nothing is journaled.
	if nokey, p := adapter(nil, nil); exchange(t, nokey, conn, first, term.MACOf).Str(39) != "00" || lastSum(p) != 0 {
		t.Errorf("an adapter without ContentKey gave the pipeline fingerprint %x, want none", lastSum(p))
	}

	rec := &journal.Record{RRN: "000000000321", TID: term.TID, MTI: "0200", ProcCode: "000000", STAN: "000321",
		DE7: de7, Amount: 1000, EntryMode: first.Str(22)[:3], RC: "00", Received: clock, ContentSum: sum}
	// A later request the pipeline answered 94 under the same DE 7 (another card,
	// which the adapter let through): not the STAN's request.
	other94 := &journal.Record{RRN: "000000000322", TID: term.TID, MTI: "0200", ProcCode: "000000", STAN: "000321",
		DE7: de7, Amount: 1000, EntryMode: rec.EntryMode, RC: "94", Received: clock.Add(time.Second), ContentSum: sum + 1}
	// A request of an earlier version: no fingerprint.
	old := &journal.Record{RRN: "000000000500", TID: term.TID, MTI: "0200", ProcCode: "000000", STAN: "000500",
		DE7: "1206114000", Amount: 1000, EntryMode: rec.EntryMode, RC: "00", Received: clock}
	clock = clock.Add(10 * time.Minute) // the restart

	a2, p2 := adapter(key, recordsJournal{rec, other94, old})
	before := forwarded(p2)
	if ans := exchange(t, a2, conn, sale("000321", "2222222222222222"), term.MACOf); ans.Str(39) != "94" || forwarded(p2) != before {
		t.Errorf("after the restart, the same card's next chip sale reusing STAN 000321 and the amount: %s, forwarded %v; want 94, nothing forwarded",
			Summary(ans), forwarded(p2) != before)
	}
	if ans := exchange(t, a2, conn, first, term.MACOf); ans.Str(39) != "00" || p2.last().DE7 != de7 {
		t.Errorf("after the restart, the first sale sent again: %s, DE 7 %s; want the first's %s (the pipeline's duplicate)", Summary(ans), p2.last().DE7, de7)
	}
	if ans := exchange(t, a2, conn, sale("000500", "3333333333333333"), term.MACOf); ans.Str(39) != "00" || p2.last().DE7 != old.DE7 {
		t.Errorf("a STAN of a record without fingerprint, same entry mode: %s, DE 7 %s; want the record's %s, as before (the pipeline compares the card)",
			Summary(ans), p2.last().DE7, old.DE7)
	}
	// An adapter without the key cannot compare the journal's fingerprint: by
	// entry mode, as before.
	a3, p3 := adapter(nil, recordsJournal{rec})
	if ans := exchange(t, a3, conn, sale("000321", "2222222222222222"), term.MACOf); ans.Str(39) != "00" || p3.last().DE7 != de7 {
		t.Errorf("without the key, a STAN read from the journal: %s, DE 7 %s; want %s (entry mode compared)", Summary(ans), p3.last().DE7, de7)
	}

	ck := newContentKey(key)
	if n := testing.AllocsPerRun(100, func() { ck.sum(first, card+"=2912101", "") }); n != 0 {
		t.Errorf("a request's fingerprint took %v allocations, want 0", n)
	}
}

// TestIssuer94ResentAfterRestart: a request its issuer answered 94 (DecidedBy
// "issuer") is the STAN's request, unlike one the switch refused 94 for reusing
// another's DE 41 + 11 + 7 (journal.Record.OwnsDupKey): read back from the journal
// after a restart, its resend is given its DE 7 (the pipeline answers it from the
// journal, the issuer's 94 again, nothing sent) instead of being taken as a new
// transaction and sent to the issuer again. Before, every record answered 94 was
// skipped, the issuer's too. The same holds for the record as another node's
// applier notes it (Sessions.NoteRemote).
func TestIssuer94ResentAfterRestart(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	clock := now
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	sale, err := term.Build(Txn{Kind: "sale", PAN: "6225880212345678", Expiry: "2912", Amount: 1000, STAN: "000321"})
	if err != nil {
		t.Fatal(err)
	}
	// Sent once before the restart (its entry mode is the record's).
	before := &fakePipeline{}
	exchange(t, NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Refusals: &fakeRefusals{},
		Now: func() time.Time { return clock }}, before), conn, sale, term.MACOf)
	issuer94 := &journal.Record{RRN: "000000000321", TID: term.TID, MTI: "0200", ProcCode: "000000", STAN: "000321",
		DE7: before.last().DE7, Amount: 1000, EntryMode: before.last().EntryMode, RC: "94", DecidedBy: "issuer", Received: clock}
	clock = clock.Add(10 * time.Minute) // the restart

	p := &fakePipeline{}
	a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Journal: recordsJournal{issuer94},
		Refusals: &fakeRefusals{}, Now: func() time.Time { return clock }}, p)
	exchange(t, a, conn, sale, term.MACOf)
	if got := p.last().DE7; got != issuer94.DE7 {
		t.Errorf("after a restart, the resend of a request its issuer answered 94: DE 7 %s, want the record's %s (the pipeline's duplicate, not a new transaction)",
			got, issuer94.DE7)
	}

	// Noted from another node's journal: the same.
	ss := NewSessions()
	p = &fakePipeline{}
	a = NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Journal: recordsJournal{}, Sessions: ss,
		Refusals: &fakeRefusals{}, Now: func() time.Time { return clock }}, p)
	exchange(t, a, conn, sale, term.MACOf) // opens the terminal's session here
	fresh := p.last().DE7
	noted := *issuer94
	noted.STAN, noted.Received = "000322", clock
	ss.NoteRemote(&noted)
	resend, err := term.Build(Txn{Kind: "sale", PAN: "6225880212345678", Expiry: "2912", Amount: 1000, STAN: "000322"})
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, a, conn, resend, term.MACOf)
	if got := p.last().DE7; got != noted.DE7 {
		t.Errorf("a request another node's issuer answered 94, noted here and resent: DE 7 %s, want the record's %s (first here: %s)", got, noted.DE7, fresh)
	}
}
