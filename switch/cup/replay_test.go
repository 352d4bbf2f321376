package cup

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
)

// TestReplayWhileKeyValid: a MAC'd sale sent again at any time while its MAC key is
// in force is given the DE 7 of its first try, so that the pipeline answers it as
// the duplicate it is (the first answer, nothing authorized again): after a restart
// with a MAK made three days ago (the journal is read back to the key's making, not
// only the last day); after the session dropped the STAN to bound its memory (the
// journal is asked for that STAN); and on a node whose session learnt the request
// from another node of a cluster (Sessions.NoteRemote). A request under a MAK made
// more than the journal's memory ago (7 days) is answered A0, nothing forwarded, and
// the terminal is asked to sign in again.
func TestReplayWhileKeyValid(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	const pan = "6225880212345678"
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	sale := func(a *Adapter, stan string, amount int64) *Frame {
		t.Helper()
		f, err := term.Build(Txn{Kind: "sale", PAN: pan, Expiry: "2912", Amount: amount, STAN: stan})
		if err != nil {
			t.Fatal(err)
		}
		return exchange(t, a, conn, f, term.MACOf)
	}
	first := func(stan, de7 string, at time.Time) *journal.Record {
		return &journal.Record{RRN: "0000000" + stan[1:], TID: term.TID, MTI: "0200", ProcCode: "000000", STAN: stan, DE7: de7,
			Amount: 1000, RC: "00", Received: at}
	}
	adapter := func(jr recordsJournal, made time.Time, ss *Sessions) (*Adapter, *fakePipeline) {
		p := &fakePipeline{}
		return NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Journal: jr, Refusals: &fakeRefusals{},
			Now: func() time.Time { return now }, Sessions: ss,
			KeyVersion: func(string) (int, error) { return 1, nil },
			KeyCreated: func(string, int) (time.Time, error) { return made, nil }}, p), p
	}
	last := func(p *fakePipeline) *message.Request {
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.reqs) == 0 {
			return nil
		}
		return p.reqs[len(p.reqs)-1]
	}

	// After a restart: the sale of two days ago, under a MAK made three days ago.
	old := first("000123", "1204100000", now.Add(-50*time.Hour))
	a, p := adapter(recordsJournal{old}, now.Add(-72*time.Hour), nil)
	if ans := sale(a, "000123", 1000); ans.Str(39) != "00" {
		t.Fatalf("replayed sale: %s", Summary(ans))
	}
	if r := last(p); r == nil {
		t.Fatal("the replayed sale did not reach the pipeline")
	} else if r.DE7 != old.DE7 {
		t.Errorf("a sale of two days ago replayed after a restart, its MAK made three days ago: DE 7 %s, want the first's %s (the pipeline's duplicate)", r.DE7, old.DE7)
	}
	// A new STAN is a new request.
	if ans := sale(a, "000124", 1000); ans.Str(39) != "00" || last(p).DE7 != message.FormatDE7(now) {
		t.Errorf("a new sale: %s, DE 7 %s", Summary(ans), last(p).DE7)
	}

	// A terminal of more requests than the session keeps: the dropped STAN is
	// looked up in the journal.
	early := first("000001", "1206110000", now.Add(-time.Hour))
	a, p = adapter(recordsJournal{early}, now.Add(-2*time.Hour), nil)
	for i := 2; i <= maxSTANs+2; i++ {
		if ans := sale(a, fmt.Sprintf("%06d", i), 1000); ans.Str(39) != "00" {
			t.Fatalf("sale %d: %s", i, Summary(ans))
		}
	}
	if s := a.sess.get(term.TID); s == nil || !s.dropped {
		t.Fatalf("the session dropped no STAN after %d sales", maxSTANs+1)
	}
	if ans := sale(a, "000001", 1000); ans.Str(39) != "00" || last(p).DE7 != early.DE7 {
		t.Errorf("the first sale replayed after %d others: %s, DE 7 %s, want the first's %s", maxSTANs+1, Summary(ans), last(p).DE7, early.DE7)
	}

	// Cluster: this node's session learns another node's request.
	ss := NewSessions()
	a, p = adapter(recordsJournal{}, now.Add(-time.Hour), ss)
	if ans := sale(a, "000500", 1000); ans.Str(39) != "00" {
		t.Fatalf("sale: %s", Summary(ans))
	}
	remote := first("000501", "1206115930", now.Add(-30*time.Second))
	ss.NoteRemote(remote)
	if ans := sale(a, "000501", 1000); ans.Str(39) != "00" || last(p).DE7 != remote.DE7 {
		t.Errorf("another node's sale replayed here: %s, DE 7 %s, want %s", Summary(ans), last(p).DE7, remote.DE7)
	}

	// A MAK older than the journal's memory: A0, asked to sign in, nothing forwarded.
	a, p = adapter(recordsJournal{}, now.Add(-8*24*time.Hour), nil)
	ans := sale(a, "000600", 1000)
	if ans.Str(39) != RCMACFailure || ans.Header.ProcessingRequirement() != ReqSignIn || ans.Has(64) || last(p) != nil {
		t.Errorf("a sale under a MAK made 8 days ago: %s (requirement %d), %v forwarded; want A0, sign in again, nothing forwarded",
			Summary(ans), ans.Header.ProcessingRequirement(), last(p) != nil)
	}
}

// countingJournal is a recordsJournal that counts its scans.
type countingJournal struct {
	recordsJournal
	mu    sync.Mutex
	scans int
}

func (j *countingJournal) Scan(ctx context.Context, q journal.Query, fn func(*journal.Record) bool) error {
	j.mu.Lock()
	j.scans++
	j.mu.Unlock()
	return j.recordsJournal.Scan(ctx, q, fn)
}

// TestVouchScansBounded: a terminal of more requests than its session keeps
// (maxSTANs) has the STANs it sends looked up in the journal's records since its MAK
// was made, and that costs one journal read for all of them, not one per request:
// 200 new sales after the session dropped STANs read the journal once, and a STAN
// of the older records sent again is still given its first DE 7. Before, each new
// request of such a terminal scanned up to 7 days of its journal.
func TestVouchScansBounded(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	early := &journal.Record{RRN: "000000000001", TID: term.TID, MTI: "0200", ProcCode: "000000", STAN: "000001", DE7: "1206100000",
		Amount: 1000, RC: "00", Received: now.Add(-2 * time.Hour)}
	jr := &countingJournal{recordsJournal: recordsJournal{early}}
	p := &fakePipeline{}
	a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Journal: jr, Refusals: &fakeRefusals{},
		Now:        func() time.Time { return now },
		KeyVersion: func(string) (int, error) { return 1, nil },
		KeyCreated: func(string, int) (time.Time, error) { return now.Add(-3 * time.Hour), nil }}, p)
	sale := func(stan string) *Frame {
		t.Helper()
		f, err := term.Build(Txn{Kind: "sale", PAN: "6225880212345678", Expiry: "2912", Amount: 1000, STAN: stan})
		if err != nil {
			t.Fatal(err)
		}
		return exchange(t, a, conn, f, term.MACOf)
	}
	for i := 2; i <= maxSTANs+2; i++ {
		if ans := sale(fmt.Sprintf("%06d", i)); ans.Str(39) != "00" {
			t.Fatalf("sale %d: %s", i, Summary(ans))
		}
	}
	if s := a.sess.get(term.TID); s == nil || !s.dropped {
		t.Fatalf("the session dropped no STAN after %d sales", maxSTANs+1)
	}
	jr.mu.Lock()
	before := jr.scans
	jr.mu.Unlock()
	for i := 0; i < 200; i++ {
		if ans := sale(fmt.Sprintf("%06d", 10_000+i)); ans.Str(39) != "00" {
			t.Fatalf("sale %d: %s", i, Summary(ans))
		}
	}
	jr.mu.Lock()
	scans := jr.scans - before
	jr.mu.Unlock()
	if scans > 1 {
		t.Errorf("200 new sales of a terminal that dropped STANs read the journal %d times; want at most once", scans)
	}
	if ans := sale("000001"); ans.Str(39) != "00" {
		t.Fatalf("replay: %s", Summary(ans))
	}
	p.mu.Lock()
	de7 := p.reqs[len(p.reqs)-1].DE7
	p.mu.Unlock()
	if de7 != early.DE7 {
		t.Errorf("the first sale replayed: DE 7 %s, want the first's %s", de7, early.DE7)
	}
}

// TestNoteRemoteNewerRequest: a cluster node's session that holds an older request
// of a STAN (the terminal's counter started again) learns another node's newer
// request of that STAN (Sessions.NoteRemote), so that the newer request replayed
// here gets its DE 7 (the pipeline's duplicate). Before, the older entry was kept:
// the replay, of another amount, was a new request, authorized again.
func TestNoteRemoteNewerRequest(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	ss := NewSessions()
	p := &fakePipeline{}
	clock := now.Add(-time.Hour)
	a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Journal: recordsJournal{}, Refusals: &fakeRefusals{},
		Now: func() time.Time { return clock }, Sessions: ss,
		KeyVersion: func(string) (int, error) { return 1, nil },
		KeyCreated: func(string, int) (time.Time, error) { return now.Add(-2 * time.Hour), nil }}, p)
	sale := func(amount int64) string {
		t.Helper()
		f, err := term.Build(Txn{Kind: "sale", PAN: "6225880212345678", Expiry: "2912", Amount: amount, STAN: "000777"})
		if err != nil {
			t.Fatal(err)
		}
		if ans := exchange(t, a, conn, f, term.MACOf); ans.Str(39) != "00" {
			t.Fatalf("sale of %d: %s", amount, Summary(ans))
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.reqs[len(p.reqs)-1].DE7
	}
	sale(1000) // an hour ago, here
	clock = now
	remote := &journal.Record{RRN: "000000000778", TID: term.TID, MTI: "0200", ProcCode: "000000", STAN: "000777", DE7: "1206115930",
		Amount: 2000, RC: "00", Received: now.Add(-30 * time.Second)}
	ss.NoteRemote(remote)
	if de7 := sale(2000); de7 != remote.DE7 {
		t.Errorf("another node's newer sale of STAN 000777 replayed here: DE 7 %s, want its %s (the pipeline's duplicate)", de7, remote.DE7)
	}
	// An older remote record does not replace the newer entry.
	ss.NoteRemote(&journal.Record{RRN: "000000000700", TID: term.TID, MTI: "0200", ProcCode: "000000", STAN: "000777", DE7: "1206090000",
		Amount: 2000, RC: "00", Received: now.Add(-3 * time.Hour)})
	if de7 := sale(2000); de7 != remote.DE7 {
		t.Errorf("after an older remote record of STAN 000777: DE 7 %s, want the newer %s", de7, remote.DE7)
	}
}
