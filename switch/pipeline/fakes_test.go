package pipeline

// In-memory fakes of the pipeline's interfaces, and a harness that runs encoded
// request frames through Pipeline.Process with them. They keep what the pipeline's
// decisions depend on (the journal's copies, duplicate index and delivery marks, the
// queue's items, the issuer's answers) and nothing else, so that a test reads as the
// transaction it describes.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/metrics"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/saf"
	"github.com/switchyard/switchyard/switch/termclient"
)

// Every role of the journal, the HSM subset and the other interfaces are met by the
// fakes (and the real stores by their types, checked where they are wired).
var (
	_ Journal   = (*fakeJournal)(nil)
	_ Queue     = (*fakeQueue)(nil)
	_ Routes    = (*fakeRoutes)(nil)
	_ Terminals = (*fakeTerminals)(nil)
	_ HSM       = (*fakeHSM)(nil)
	_ HSM       = hsm.HSM(nil) // every hsm.HSM is a pipeline HSM
	_ Journal   = (*journal.Store)(nil)
)

// fakeClock is the injected clock: it moves only when a test moves it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeJournal is a map-backed journal: records are stored and handed out as copies (as
// a store that encodes them would), the duplicate index is written with a record's
// first write, and delivery marks are kept apart and merged on reading.
type fakeJournal struct {
	mu       sync.Mutex
	seq      int
	recs     map[string]*journal.Record
	dup      map[string]string
	deliv    map[string]journal.Event
	batches  map[string]time.Time
	ckpt     string
	lookups  int // LookupDuplicate calls
	lastRecv time.Time

	failWrite  error // Write fails with it when set
	failLookup error // LookupDuplicate fails with it when set
	failClose  error // CloseBatch fails with it when set

	// The cluster's part, as a replicated journal would show it to one node.
	rrnPrefix string                                      // the node's RRN prefix ("" for none)
	ckpts     map[string]string                           // each node's checkpoint (nodeJournal)
	writeHook func(rec *journal.Record, first bool) error // when set, a Write fails with its error
	dupOf     map[string]string                           // duplicate key -> RRN journaled first on another node
	later     map[string]*laterRecord                     // records another node's applier brings later
}

// laterRecord is a version of a record that a Get of its RRN returns (and stores) once
// gets earlier Gets have not found it: another node's version, applied here later.
type laterRecord struct {
	gets int
	rec  *journal.Record
}

func newFakeJournal() *fakeJournal {
	return &fakeJournal{recs: map[string]*journal.Record{}, dup: map[string]string{},
		deliv: map[string]journal.Event{}, batches: map[string]time.Time{}, dupOf: map[string]string{}, later: map[string]*laterRecord{},
		ckpts: map[string]string{}}
}

func copyRecord(r *journal.Record) *journal.Record {
	c := *r
	c.Events = slices.Clone(r.Events)
	c.RuleHits = slices.Clone(r.RuleHits)
	c.RuleErrors = slices.Clone(r.RuleErrors)
	c.Facts = slices.Clone(r.Facts)
	return &c
}

func (j *fakeJournal) NextRRN() (string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seq++
	return fmt.Sprintf("%s%0*d", j.rrnPrefix, 12-len(j.rrnPrefix), j.seq), nil
}

func (j *fakeJournal) Write(_ context.Context, rec *journal.Record, first, _ bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failWrite != nil {
		return j.failWrite
	}
	if j.writeHook != nil {
		if err := j.writeHook(rec, first); err != nil {
			return err
		}
	}
	if key := rec.DuplicateKey(); first && key != "" {
		if rrn, ok := j.dupOf[key]; ok {
			// Another node journaled the key first: the record is not written.
			return &journal.DuplicateError{Key: key, RRN: rrn}
		}
		j.dup[key] = rec.RRN
	}
	j.recs[rec.RRN] = copyRecord(rec)
	return nil
}

// remote stores a version of a record written by another node, with its duplicate
// index entry, as the cluster journal's applier does.
func (j *fakeJournal) remote(rec *journal.Record) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.store(rec)
}

func (j *fakeJournal) store(rec *journal.Record) {
	if key := rec.DuplicateKey(); key != "" {
		j.dup[key] = rec.RRN
	}
	j.recs[rec.RRN] = copyRecord(rec)
}

// applyLater makes rec (another node's version) appear after gets more Gets of its
// RRN: until then the journal holds what it held (nothing, or an earlier version).
func (j *fakeJournal) applyLater(rec *journal.Record, gets int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.later[rec.RRN] = &laterRecord{gets: gets, rec: copyRecord(rec)}
}

func (j *fakeJournal) get(rrn string) (*journal.Record, error) {
	r, ok := j.recs[rrn]
	if !ok {
		return nil, fmt.Errorf("record %s: %w", rrn, journal.ErrNotFound)
	}
	c := copyRecord(r)
	if e, ok := j.deliv[rrn]; ok && !slices.ContainsFunc(c.Events, func(x journal.Event) bool { return x.State == e.State && x.At.Equal(e.At) }) {
		// As the store merges a mark: once (a version written after a read that had
		// merged it carries it already).
		i := len(c.Events)
		for i > 0 && c.Events[i-1].At.After(e.At) {
			i--
		}
		c.Events = slices.Insert(c.Events, i, e)
		c.State = c.Events[len(c.Events)-1].State
	}
	return c, nil
}

func (j *fakeJournal) Get(rrn string) (*journal.Record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if l, ok := j.later[rrn]; ok {
		if l.gets--; l.gets < 0 {
			delete(j.later, rrn)
			j.store(l.rec)
		}
	}
	return j.get(rrn)
}

func (j *fakeJournal) LookupDuplicate(tid, stan, de7 string) (string, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lookups++
	if j.failLookup != nil {
		return "", false, j.failLookup
	}
	rrn, ok := j.dup[journal.DupKey(tid, stan, de7)]
	return rrn, ok, nil
}

func (j *fakeJournal) LookupDuplicateKey(key string) (string, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lookups++
	if j.failLookup != nil {
		return "", false, j.failLookup
	}
	rrn, ok := j.dup[key]
	return rrn, ok, nil
}

// sorted returns copies of the records in the order less gives.
func (j *fakeJournal) sorted(less func(a, b *journal.Record) int) []*journal.Record {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []*journal.Record
	for rrn := range j.recs {
		r, _ := j.get(rrn)
		out = append(out, r)
	}
	slices.SortFunc(out, less)
	return out
}

func (j *fakeJournal) Scan(ctx context.Context, q journal.Query, fn func(*journal.Record) bool) error {
	n := 0
	for _, r := range j.sorted(func(a, b *journal.Record) int {
		if c := a.Received.Compare(b.Received); c != 0 {
			return c
		}
		return strings.Compare(a.RRN, b.RRN)
	}) {
		if (q.TID != "" && r.TID != q.TID) || (q.MID != "" && r.MID != q.MID) || (q.RRN != "" && r.RRN != q.RRN) ||
			(!q.From.IsZero() && r.Received.Before(q.From)) || (!q.To.IsZero() && !r.Received.Before(q.To)) {
			continue
		}
		if !fn(r) {
			return nil
		}
		if n++; q.Limit > 0 && n >= q.Limit {
			return nil
		}
	}
	return ctx.Err()
}

func (j *fakeJournal) LastReceived() (time.Time, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	last := j.lastRecv
	for _, r := range j.recs {
		if r.Received.After(last) {
			last = r.Received
		}
	}
	return last, nil
}

func (j *fakeJournal) LastBatch(tid string) (time.Time, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.batches[tid], nil
}

func (j *fakeJournal) CloseBatch(_ context.Context, tid string, at time.Time) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failClose != nil {
		return j.failClose
	}
	j.batches[tid] = at
	return nil
}

func (j *fakeJournal) MarkDelivery(rrn string, delivered bool, at time.Time) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := journal.StateUndeliver
	if delivered {
		st = journal.StateResponded
	}
	j.deliv[rrn] = journal.Event{State: st, At: at}
	return nil
}

func (j *fakeJournal) Checkpoint() (string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.ckpt, nil
}

func (j *fakeJournal) SetCheckpoint(_ context.Context, rrn string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.ckpt = rrn
	return nil
}

func (j *fakeJournal) ScanFrom(ctx context.Context, rrn string, fn func(*journal.Record) bool) error {
	for _, r := range j.sorted(func(a, b *journal.Record) int { return strings.Compare(a.RRN, b.RRN) }) {
		if r.RRN >= rrn && !fn(r) {
			return nil
		}
	}
	return ctx.Err()
}

// Node is the node's RRN prefix, as the journal of a cluster node names it.
func (j *fakeJournal) Node() string { return j.rrnPrefix }

// ScanOwed calls fn, in RRN order, for the records not reversed whose OwedBy is node.
func (j *fakeJournal) ScanOwed(ctx context.Context, node string, fn func(*journal.Record) bool) error {
	if node == "" {
		return nil
	}
	for _, r := range j.sorted(func(a, b *journal.Record) int { return strings.Compare(a.RRN, b.RRN) }) {
		if r.OwedBy == node && !r.Reversed() && !fn(r) {
			return nil
		}
	}
	return ctx.Err()
}

// nodeJournal is the fake journal as one node of a cluster sees it (withNode): the
// records are every node's (one map, as a replicated journal holds them), the RRNs,
// checkpoint and crash recovery's scan are the node's own (its prefix), as
// cjournal.Journal has them.
type nodeJournal struct {
	*fakeJournal
	node string
}

func (j nodeJournal) NextRRN() (string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seq++
	return fmt.Sprintf("%s%011d", j.node, j.seq), nil
}

func (j nodeJournal) Node() string { return j.node }

func (j nodeJournal) Checkpoint() (string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.ckpts[j.node], nil
}

func (j nodeJournal) SetCheckpoint(_ context.Context, rrn string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.ckpts[j.node] = rrn
	return nil
}

func (j nodeJournal) ScanFrom(ctx context.Context, rrn string, fn func(*journal.Record) bool) error {
	return j.scanNode(ctx, j.node, rrn, fn)
}

// scanNode calls fn for node's records (its prefix) from rrn on, as cjournal's
// ScanNode and ScanFrom do.
func (j *fakeJournal) scanNode(ctx context.Context, node, rrn string, fn func(*journal.Record) bool) error {
	for _, r := range j.sorted(func(a, b *journal.Record) int { return strings.Compare(a.RRN, b.RRN) }) {
		if strings.HasPrefix(r.RRN, node) && r.RRN >= rrn && !fn(r) {
			return nil
		}
	}
	return ctx.Err()
}

// count returns how many records there are.
func (j *fakeJournal) count() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.recs)
}

// fakeQueue records what is enqueued; fail makes Enqueue refuse.
type fakeQueue struct {
	mu    sync.Mutex
	items []*saf.Item
	fail  error
	// lost makes Enqueue store the item and return lost all the same: a cluster's
	// queue whose acknowledgement did not come in time although the stream took
	// the advice (its fate unknown to the caller, saf.Store's contract).
	lost error
	// refuseMTI makes Enqueue refuse (with refuse) the advices of that MTI only.
	refuseMTI string
	refuse    error
}

func (q *fakeQueue) Enqueue(it *saf.Item) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fail != nil {
		return q.fail
	}
	if q.refuseMTI != "" && it.MTI == q.refuseMTI {
		return q.refuse
	}
	q.items = append(q.items, it)
	return q.lost
}

func (q *fakeQueue) all() []*saf.Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.items)
}

// sent is one message an issuer link was asked to send.
type sent struct {
	MTI, STAN, RRN string
	Body           []byte
}

// fakeLink is an issuer link whose answers come from a script: answer is called for
// each send (default: approve with auth code 123456). up = false is a link without a
// signed-on connection.
type fakeLink struct {
	id     string
	mu     sync.Mutex
	up     bool
	stan   int
	sends  []sent
	answer func(s sent) (*iso8583.Message, error)
}

func newFakeLink(id string) *fakeLink {
	return &fakeLink{id: id, up: true, answer: func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil }}
}

// issuerAnswer is an issuer's 0210 with rc (and auth when not empty).
func issuerAnswer(rc, auth string) *iso8583.Message {
	m := iso8583.NewMessage(message.SpecASCII)
	m.MTI("0210")
	if rc != "" {
		_ = m.Field(39, rc)
	}
	if auth != "" {
		_ = m.Field(38, auth)
	}
	return m
}

func (l *fakeLink) ID() string         { return l.id }
func (l *fakeLink) AcquirerID() string { return "12345678" }

func (l *fakeLink) NextSTAN() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stan++
	return fmt.Sprintf("%06d", l.stan)
}

func (l *fakeLink) Up() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.up
}

func (l *fakeLink) setUp(up bool) {
	l.mu.Lock()
	l.up = up
	l.mu.Unlock()
}

// script replaces the answer function.
func (l *fakeLink) script(f func(s sent) (*iso8583.Message, error)) {
	l.mu.Lock()
	l.answer = f
	l.mu.Unlock()
}

func (l *fakeLink) Send(ctx context.Context, m *iso8583.Message, timeout time.Duration) (*iso8583.Message, error) {
	body, err := m.Pack()
	if err != nil {
		return nil, err
	}
	mti, _ := m.GetMTI()
	return l.exchange(mti, "", "", body)
}

func (l *fakeLink) SendPacked(_ context.Context, mti, stan, rrn string, body []byte, _ time.Duration) (message.Answer, error) {
	m, err := l.exchange(mti, stan, rrn, body)
	if err != nil {
		return message.Answer{}, err
	}
	return message.AnswerOf(m), nil
}

// exchange records a message sent and returns the link's answer to it.
func (l *fakeLink) exchange(mti, stan, rrn string, body []byte) (*iso8583.Message, error) {
	s := sent{MTI: mti, STAN: stan, RRN: rrn, Body: slices.Clone(body)}
	l.mu.Lock()
	l.sends = append(l.sends, s)
	answer := l.answer
	l.mu.Unlock()
	return answer(s)
}

func (l *fakeLink) sent() []sent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sends)
}

// fakeRoutes routes a PAN by its longest matching prefix.
type fakeRoutes struct {
	byPrefix map[string]*fakeLink
}

func (r *fakeRoutes) Route(pan string) (IssuerLink, bool) {
	best := ""
	for p := range r.byPrefix {
		if strings.HasPrefix(pan, p) && len(p) > len(best) {
			best = p
		}
	}
	if best == "" {
		return nil, false
	}
	return r.byPrefix[best], true
}

func (r *fakeRoutes) Issuer(id string) (IssuerLink, bool) {
	for _, l := range r.byPrefix {
		if l.id == id {
			return l, true
		}
	}
	return nil, false
}

// fakeTerminals is a registry of terminals: Check answers what decide says (default:
// pass, with the terminal's record) and records the requests.
type fakeTerminals struct {
	mu     sync.Mutex
	terms  map[string]*registry.Terminal
	decide func(registry.CheckRequest) registry.CheckResult
	checks []registry.CheckRequest
	seen   []string
}

func (f *fakeTerminals) Check(req registry.CheckRequest) registry.CheckResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks = append(f.checks, req)
	if f.decide != nil {
		return f.decide(req)
	}
	return registry.CheckResult{Terminal: f.terms[req.TerminalID]}
}

func (f *fakeTerminals) Terminal(id string) (*registry.Terminal, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.terms[id]
	return t, ok
}

// Standing is the standing of the terminal's record as the registry judges it (its
// merchant taken as active): unknown, or its status.
func (f *fakeTerminals) Standing(id string) registry.Reason {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.terms[id]
	switch {
	case !ok:
		return registry.ReasonTerminalUnknown
	case t.Status == registry.TerminalSuspended:
		return registry.ReasonTerminalSuspended
	case t.Status != registry.TerminalActive && t.Status != "":
		return registry.ReasonTerminalClosed
	}
	return registry.ReasonNone
}

// KeyUsers returns the terminals whose record names key id as its TMK, TPK or TAK,
// in ID order.
func (f *fakeTerminals) KeyUsers(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for tid, t := range f.terms {
		if k := t.Keys; k.TMK == id || k.TPK == id || k.TAK == id {
			out = append(out, tid)
		}
	}
	slices.Sort(out)
	return out
}

func (f *fakeTerminals) Seen(id string, _ netip.Addr, _ registry.GeoPoint, _ time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, id)
}

// fakeMAC is the MAC the fake HSM computes (and the test terminal sends): the first 8
// bytes of SHA-256 over the key ID and the data.
func fakeMAC(key string, data []byte) [8]byte {
	s := sha256.Sum256(append([]byte(key+"|"), data...))
	var out [8]byte
	copy(out[:], s[:8])
	return out
}

// fakeHSM verifies and generates fakeMAC, translates a PIN block by reversing it, and
// generates keys as "KEY(id)"; each operation fails with its err field when set.
type fakeHSM struct {
	mu           sync.Mutex
	verifyErr    error
	translateErr error
	// generateErr fails GenerateMAC (the answer's MAC).
	generateErr  error
	translations []hsm.TranslatePINRequest
	generated    []hsm.GenerateKeyRequest
	// macs are the MAC requests asked (verified and generated), without their data.
	macs []hsm.MACRequest
	// generateYield makes GenerateKey yield the processor a while before it
	// answers, as an HSM's round trip lets other requests run.
	generateYield bool
}

func (h *fakeHSM) VerifyMAC(_ context.Context, req hsm.MACRequest, mac []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.macs = append(h.macs, hsm.MACRequest{Key: req.Key, KSN: req.KSN, Response: req.Response, Scheme: req.Scheme})
	if h.verifyErr != nil {
		return h.verifyErr
	}
	want := fakeMAC(req.Key.ID, req.Data)
	if string(want[:]) != string(mac) {
		return fmt.Errorf("key %s: %w", req.Key, hsm.ErrMACMismatch)
	}
	return nil
}

func (h *fakeHSM) GenerateMAC(_ context.Context, req hsm.MACRequest) ([]byte, error) {
	h.mu.Lock()
	h.macs = append(h.macs, hsm.MACRequest{Key: req.Key, KSN: req.KSN, Response: req.Response, Scheme: req.Scheme})
	err := h.generateErr
	h.mu.Unlock()
	if err != nil {
		return nil, err
	}
	m := fakeMAC(req.Key.ID, req.Data)
	return m[:], nil
}

func (h *fakeHSM) TranslatePIN(_ context.Context, req hsm.TranslatePINRequest) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.translations = append(h.translations, req)
	if h.translateErr != nil {
		return nil, h.translateErr
	}
	out := slices.Clone(req.PINBlock)
	slices.Reverse(out)
	return out, nil
}

func (h *fakeHSM) GenerateKey(_ context.Context, req hsm.GenerateKeyRequest) (hsm.KeyResult, error) {
	h.mu.Lock()
	yield := h.generateYield
	h.mu.Unlock()
	for range 200 * btoi(yield) {
		runtime.Gosched()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.generated = append(h.generated, req)
	return hsm.KeyResult{Ref: hsm.KeyRef{ID: req.KeySpec.ID, Version: 2}, Exported: "KEY(" + req.KeySpec.ID + "):ABCDEF"}, nil
}

// fakeRisk decides what decide says (default allow) and records what it observes.
type fakeRisk struct {
	mu        sync.Mutex
	decide    func(in *risk.Input) risk.Decision
	observed  []risk.Outcome
	retracted []risk.Retraction
}

func (r *fakeRisk) Evaluate(in *risk.Input) risk.Decision {
	if r.decide != nil {
		return r.decide(in)
	}
	return risk.Decision{Action: risk.ActionAllow}
}

func (r *fakeRisk) Observe(_ *risk.Input, out risk.Outcome) {
	r.mu.Lock()
	r.observed = append(r.observed, out)
	r.mu.Unlock()
}

func (r *fakeRisk) Retract(_ *risk.Input, _ risk.Outcome, x risk.Retraction) {
	r.mu.Lock()
	r.retracted = append(r.retracted, x)
	r.mu.Unlock()
}

// fakeCases records the RRNs of the cases opened.
type fakeCases struct {
	mu     sync.Mutex
	opened []string
}

func (c *fakeCases) Open(_ context.Context, _ *risk.Input, _ *risk.Decision, rec *journal.Record) {
	c.mu.Lock()
	c.opened = append(c.opened, rec.RRN)
	c.mu.Unlock()
}

// Test data: the card of issuer "bank" and the demo terminal.
const (
	testPAN = "6212345678901234"
	testTID = "T0000001"
	testMID = "M00000000000001"
)

// harness is a Pipeline over the fakes.
type harness struct {
	t      testing.TB
	p      *Pipeline
	clock  *fakeClock
	j      *fakeJournal
	q      *fakeQueue
	bank   *fakeLink // issuer of PANs starting 62
	terms  *fakeTerminals
	hsm    *fakeHSM
	risk   *fakeRisk
	cases  *fakeCases
	conn   *frontend.Conn
	stan   int
	macKey string // when set, requests are MAC'd under it
	// lock, when set, makes the journal a cluster's, with record locks (withLocks).
	lock func(ctx context.Context, rrn string) (func(), error)
	// node, when set, makes the pipeline that node of a cluster (withNode).
	node string
	// store, when set, is the pipeline's journal instead of the fake j (a real
	// journal.Store, or a wrapper of one): h.record still reads j.
	store Journal
}

// lockingJournal is the fake journal with a cluster's record locks.
type lockingJournal struct {
	Journal
	lock func(ctx context.Context, rrn string) (func(), error)
}

func (j lockingJournal) LockRecord(ctx context.Context, rrn string) (func(), error) {
	return j.lock(ctx, rrn)
}

// newHarness builds a pipeline with no HSM, rules or registry unless opts set them (the
// fakes are there for them to use), at 2026-12-01 12:00 UTC after a long stop (the
// duplicate filter is trusted at once).
func newHarness(t testing.TB, opts ...func(h *harness, c *Config)) *harness {
	t.Helper()
	h := &harness{t: t, clock: &fakeClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}, j: newFakeJournal(), q: &fakeQueue{},
		bank: newFakeLink("bank"), terms: &fakeTerminals{terms: map[string]*registry.Terminal{}}, hsm: &fakeHSM{},
		risk: &fakeRisk{}, cases: &fakeCases{},
		conn: &frontend.Conn{ID: 1, Listener: "test", Dialect: message.DialectASCII, Remote: netip.MustParseAddrPort("192.0.2.10:40000")}}
	cfg := Config{CardHashKey: []byte("0123456789abcdef0123456789abcdef"), Now: h.clock.Now}
	var terms Terminals
	for _, o := range opts {
		o(h, &cfg)
	}
	if h.terms.decide != nil || len(h.terms.terms) > 0 {
		terms = h.terms
	}
	var j Journal = h.j
	if h.node != "" {
		j = nodeJournal{h.j, h.node}
	}
	if h.store != nil {
		j = h.store
	}
	if h.lock != nil {
		j = lockingJournal{j, h.lock}
	}
	p, err := New(cfg, j, h.q, &fakeRoutes{byPrefix: map[string]*fakeLink{"62": h.bank}}, terms, metrics.New())
	if err != nil {
		t.Fatal(err)
	}
	h.p = p
	return h
}

// withHSM gives the pipeline the fake HSM.
func withHSM(h *harness, c *Config) { c.HSM = h.hsm }

// withRisk gives the pipeline the fake rules and case queue.
func withRisk(h *harness, c *Config) { c.Risk, c.Cases = h.risk, h.cases }

// withTerminal registers term in the fake registry.
func withTerminal(term registry.Terminal) func(h *harness, c *Config) {
	return func(h *harness, _ *Config) { h.terms.terms[term.ID] = &term }
}

// purchase is a purchase of amount on the test card and terminal, with the next STAN,
// sent now.
func (h *harness) purchase(amount int64) termclient.Txn {
	h.stan++
	return termclient.Txn{PAN: testPAN, Expiry: "2812", Amount: amount, TID: testTID, MID: testMID,
		STAN: fmt.Sprintf("%06d", h.stan), Time: h.clock.Now()}
}

// answer is a decoded response with what the pipeline returned alongside.
type answer struct {
	termclient.Result
	resp frontend.Response
}

// frame encodes tx as the terminal sends it (MAC'd when the harness has a MAC key).
func (h *harness) frame(tx termclient.Txn) []byte {
	h.t.Helper()
	m, err := termclient.Build(tx, message.DialectASCII)
	if err != nil {
		h.t.Fatalf("build %+v: %v", tx, err)
	}
	var mac message.MACFunc
	if h.macKey != "" {
		key := h.macKey
		mac = func(data []byte) ([8]byte, error) { return fakeMAC(key, data), nil }
	}
	body, err := message.Pack(m, mac)
	if err != nil {
		h.t.Fatalf("pack %+v: %v", tx, err)
	}
	return body
}

// process runs a frame through the pipeline, reports delivery of the answer as
// delivered says, and decodes the answer.
func (h *harness) process(body []byte, delivered bool) answer {
	h.t.Helper()
	resp, err := h.p.Process(context.Background(), h.conn, body)
	if err != nil {
		h.t.Fatalf("Process: %v", err)
	}
	if resp.Body == nil {
		h.t.Fatal("Process: no answer")
	}
	return h.answered(resp, delivered)
}

// answered reports the delivery of resp as delivered says and decodes it.
func (h *harness) answered(resp frontend.Response, delivered bool) answer {
	h.t.Helper()
	if resp.Sent != nil {
		resp.Sent(delivered)
	}
	m := iso8583.NewMessage(message.SpecASCII)
	if err := m.Unpack(resp.Body); err != nil {
		h.t.Fatalf("answer does not decode: %v", err)
	}
	r, err := termclient.Decode(m)
	if err != nil {
		h.t.Fatal(err)
	}
	return answer{Result: r, resp: resp}
}

// do sends tx and reports its answer delivered.
func (h *harness) do(tx termclient.Txn) answer {
	h.t.Helper()
	return h.process(h.frame(tx), true)
}

// record returns the journal record of rrn.
func (h *harness) record(rrn string) *journal.Record {
	h.t.Helper()
	r, err := h.j.Get(rrn)
	if err != nil {
		h.t.Fatalf("journal: %v", err)
	}
	return r
}

// hasEvent reports whether r went through state s.
func hasEvent(r *journal.Record, s journal.State) bool {
	for _, e := range r.Events {
		if e.State == s {
			return true
		}
	}
	return false
}

// errScripted is an error the fakes return on demand.
var errScripted = errors.New("scripted failure")

// queueRefuses makes the store-and-forward queue refuse every item (a cluster's
// stream without a quorum), or take them again.
// restart stops h's pipeline as a process stopping would (its recovery checkpoint
// written first) and starts another on the same journal and queue, the queue taking
// everything again, which recovers from the checkpoint.
func (h *harness) restart(t *testing.T) *harness {
	t.Helper()
	h.p.checkpoint()
	h.p.Stop()
	h.q.mu.Lock()
	h.q.fail, h.q.refuseMTI = nil, ""
	h.q.mu.Unlock()
	h2 := newHarness(t, func(h2 *harness, _ *Config) { h2.j, h2.q, h2.node, h2.stan = h.j, h.q, h.node, h.stan })
	if _, err := h2.p.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	return h2
}

func (h *harness) queueRefuses(refuse bool) {
	h.q.mu.Lock()
	defer h.q.mu.Unlock()
	h.q.fail = nil
	if refuse {
		h.q.fail = errors.New("no JetStream acknowledgement: the stream has no quorum")
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
