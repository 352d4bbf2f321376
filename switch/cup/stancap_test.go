package cup

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
)

// growingJournal is a journal of records a test adds to as it goes.
type growingJournal struct {
	mu   sync.Mutex
	recs recordsJournal
}

func (j *growingJournal) add(rs ...*journal.Record) {
	j.mu.Lock()
	j.recs = append(j.recs, rs...)
	j.mu.Unlock()
}

func (j *growingJournal) Scan(ctx context.Context, q journal.Query, fn func(*journal.Record) bool) error {
	j.mu.Lock()
	recs := append(recordsJournal(nil), j.recs...)
	j.mu.Unlock()
	return recs.Scan(ctx, q, fn)
}

// capRig is an adapter with a versioned HSM whose MAK version v was made at
// made1 + (v-1) hours, a journal the test fills, and the refusals and key-renewal
// counts it gave, for terminal T0000001 signing in for scheme 003.
type capRig struct {
	t       *testing.T
	a       *Adapter
	p       *fakePipeline
	refs    *fakeRefusals
	jr      *growingJournal
	term    *Terminal
	conn    *frontend.Conn
	mu      sync.Mutex
	renewed map[string]int
	now     time.Time // the adapter's clock
}

func newCapRig(t *testing.T, now, made1 time.Time, maxSTANs int, ss *Sessions) *capRig {
	t.Helper()
	tmk, _ := hex.DecodeString("2315208C9110AD40F5B83C4A6E1D7F92")
	h := &versionedHSM{tmk: tmk}
	r := &capRig{t: t, p: &fakePipeline{}, refs: &fakeRefusals{}, jr: &growingJournal{}, renewed: map[string]int{},
		term: &Terminal{TID: "T0000001", MID: "000000000000001", TMK: tmk, batch: "000007",
			TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}},
		conn: &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}, now: now}
	// SingleLengthMAC: the terminal signs in with scheme 003 (an 8-byte MAK).
	r.a = NewAdapter(Config{HSM: h, Terminals: fakeTerminals{}, Journal: r.jr, Refusals: r.refs, Sessions: ss, SingleLengthMAC: true,
		Now: func() time.Time { return r.now }, KeyVersion: h.version, MaxSTANsPerKey: maxSTANs,
		KeyCreated: func(_ string, v int) (time.Time, error) { return made1.Add(time.Duration(v-1) * time.Hour), nil },
		KeyRefused: func(reason string) { r.mu.Lock(); r.renewed[reason]++; r.mu.Unlock() }}, r.p)
	return r
}

// record is the journal's record of a sale of 10.00 with STAN stan received at at.
func (r *capRig) record(stan int, at time.Time) *journal.Record {
	return &journal.Record{RRN: fmt.Sprintf("%012d", stan), TID: r.term.TID, MTI: "0200", ProcCode: "000000",
		STAN: fmt.Sprintf("%06d", stan), DE7: message.FormatDE7(at), Amount: 1000, RC: "00", Received: at}
}

// signIn signs the terminal in and returns the answer's F62 (its keys under the TMK).
func (r *capRig) signIn() []byte {
	r.t.Helper()
	f := NewFrame(r.term.TPDU, r.term.Header, "0800").Set(11, r.term.NextSTAN()).Set(41, r.term.TID).Set(42, r.term.MID).Set(60, "00"+r.term.batch+"003")
	ans := exchange(r.t, r.a, r.conn, f, nil)
	if ans.Str(39) != "00" {
		r.t.Fatalf("sign-in: %s", Summary(ans))
	}
	if err := r.term.installKeys("003", ans.Bytes(62)); err != nil {
		r.t.Fatal(err)
	}
	return ans.Bytes(62)
}

// sale sends a sale of 10.00 with STAN stan and returns the answer and the request
// the pipeline got of it (nil: nothing forwarded).
func (r *capRig) sale(stan int) (*Frame, *message.Request) {
	r.t.Helper()
	r.p.mu.Lock()
	before := len(r.p.reqs)
	r.p.mu.Unlock()
	f, err := r.term.Build(Txn{Kind: "sale", PAN: "6225880212345678", Expiry: "2912", Amount: 1000, STAN: fmt.Sprintf("%06d", stan)})
	if err != nil {
		r.t.Fatal(err)
	}
	ans := exchange(r.t, r.a, r.conn, f, r.term.MACOf)
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	if len(r.p.reqs) == before {
		return ans, nil
	}
	return ans, r.p.reqs[len(r.p.reqs)-1]
}

func (r *capRig) renewals(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.renewed[reason]
}

// TestSTANCapRenewKey: a terminal whose STANs under one MAC key fill its session's
// index (Config.MaxSTANsPerKey: its latest 2048 and an index of the older ones) is
// refused A0 (mac-key-too-many-stans): without F64, asked to sign in, nothing
// forwarded, journaled as a refusal and counted, and the index is freed. Every later
// request under that key is refused too, a resend of a STAN the session holds
// included; the terminal's next sign-in, although within the key lifetime, makes new
// keys, and under them it trades again. Before, the index took every STAN the
// terminal sent under its key (up to F11's 10^6, about 230 MB a session).
func TestSTANCapRenewKey(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	made1 := now.Add(-3 * time.Hour)
	r := newCapRig(t, now, made1, maxSTANs+10, nil)
	// The terminal sent maxSTANs+20 sales under its key before a restart: the
	// session keeps the last 2048, the 20 before them go to the index, 10 too many.
	for i := 1; i <= maxSTANs+20; i++ {
		r.jr.add(r.record(i, made1.Add(time.Duration(i)*time.Second)))
	}
	keys := r.signIn()
	ans, fwd := r.sale(900001)
	if ans.Str(39) != RCMACFailure || ans.Has(64) || ans.Header.ProcessingRequirement() != ReqSignIn || fwd != nil {
		t.Fatalf("a sale past the key's STAN cap: %s (F64 %v, requirement %d), forwarded %v; want A0 without F64, sign in again, nothing forwarded",
			Summary(ans), ans.Has(64), ans.Header.ProcessingRequirement(), fwd != nil)
	}
	if n := r.renewals(KeyTooManySTANs); n != 1 {
		t.Errorf("key renewals counted as %s: %d, want 1", KeyTooManySTANs, n)
	}
	r.refs.mu.Lock()
	if len(r.refs.got) != 1 || r.refs.got[0].Reason != KeyTooManySTANs || r.refs.got[0].RC != RCMACFailure {
		t.Errorf("journaled refusals %+v, want one A0 %s", r.refs.got, KeyTooManySTANs)
	}
	r.refs.mu.Unlock()
	s := r.a.sess.get(r.term.TID)
	s.older.mu.Lock()
	if s.older.stans != nil {
		t.Errorf("the full index still holds %d entries", len(s.older.stans))
	}
	s.older.mu.Unlock()

	// A resend of a STAN the session holds, under the same key: refused as well.
	if ans, fwd := r.sale(maxSTANs + 20); ans.Str(39) != RCMACFailure || fwd != nil {
		t.Errorf("a resend under the full key: %s, forwarded %v; want A0, nothing forwarded", Summary(ans), fwd != nil)
	}
	if n := r.renewals(KeyTooManySTANs); n != 2 {
		t.Errorf("key renewals counted: %d, want 2", n)
	}

	// The terminal signs in: new keys (not those of its last sign-in, though within
	// the key lifetime), and it trades again.
	if again := r.signIn(); bytes.Equal(again, keys) {
		t.Fatal("the sign-in after the key's STANs filled the index sent the same keys again")
	}
	if ans, fwd := r.sale(900002); ans.Str(39) != "00" || !ans.Has(64) || fwd == nil {
		t.Errorf("a sale under the new keys: %s (F64 %v), forwarded %v; want 00 with F64", Summary(ans), ans.Has(64), fwd != nil)
	}
}

// TestSTANCapCountsCurrentKey: the index entries of the terminal's earlier key do
// not count toward its new key's cap: they are dropped when the index would pass
// it, and the new key's requests are still told from replays (an older request of
// the new key, no longer in the session's own memory, sent again gets its first
// DE 7).
func TestSTANCapCountsCurrentKey(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	made1 := now.Add(-3 * time.Hour)
	ss := NewSessions()
	r := newCapRig(t, now, made1, maxSTANs+30, ss)
	// Under key 1: 20 sales in the index, within its cap.
	for i := 1; i <= maxSTANs+20; i++ {
		r.jr.add(r.record(i, made1.Add(time.Duration(i)*time.Second)))
	}
	r.signIn()
	if ans, fwd := r.sale(900001); ans.Str(39) != "00" || fwd == nil {
		t.Fatalf("a sale under key 1: %s", Summary(ans))
	}
	s := r.a.sess.get(r.term.TID)
	s.mu.Lock()
	s.issued = nil // the next sign-in makes key 2
	s.mu.Unlock()
	r.signIn()
	// Under key 2 (made an hour after key 1): maxSTANs+25 requests another node of a
	// cluster took, learnt by this session (Sessions.NoteRemote), 25 of them beyond
	// the session's own memory. With key 1's older requests the index would hold
	// more than 30.
	first := r.record(100001, now.Add(time.Second))
	r.jr.add(first)
	ss.NoteRemote(first)
	for i := 2; i <= maxSTANs+25; i++ {
		rec := r.record(100000+i, now.Add(time.Duration(i)*time.Second))
		r.jr.add(rec)
		ss.NoteRemote(rec)
	}
	r.now = now.Add(time.Hour)
	if ans, fwd := r.sale(900002); ans.Str(39) != "00" || fwd == nil {
		t.Fatalf("a sale under key 2, whose STANs are within the cap: %s, forwarded %v; want 00", Summary(ans), fwd != nil)
	}
	if ans, fwd := r.sale(100001); ans.Str(39) != "00" || fwd == nil || fwd.DE7 != first.DE7 {
		t.Errorf("key 2's first sale sent again: %s, DE 7 %v; want 00 with its first DE 7 %s", Summary(ans), fwd, first.DE7)
	}
	if n := r.renewals(KeyTooManySTANs); n != 0 {
		t.Errorf("key renewals counted: %d, want none", n)
	}
}

// TestKeyTooOldCounted: a request under a MAK made more than 7 days ago is refused A0
// and counted as a key renewal of reason mac-key-too-old (Config.KeyRefused).
func TestKeyTooOldCounted(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	r := newCapRig(t, now, now.Add(-8*24*time.Hour), 0, nil)
	r.signIn()
	if ans, fwd := r.sale(1); ans.Str(39) != RCMACFailure || fwd != nil {
		t.Fatalf("a sale under a MAK made 8 days ago: %s, forwarded %v; want A0, nothing forwarded", Summary(ans), fwd != nil)
	}
	if n, m := r.renewals(KeyTooOld), r.renewals(KeyTooManySTANs); n != 1 || m != 0 {
		t.Errorf("key renewals counted: %d %s, %d %s; want 1 and 0", n, KeyTooOld, m, KeyTooManySTANs)
	}
}
