package registry

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/internal/statelog"
)

// A PAN (Luhn-valid) typed into free text before the registry masked it, bare and
// as people write it.
const (
	clearPAN  = "4761739001010119"
	spacedPAN = "4761 7390 0101 0119"
	maskedPAN = "476173******0119"
	demoM1    = "000000000000001"
	demoM2    = "000000000000002"
)

// oldWrite writes as a version before masking did: fn's records and oplog entries
// go through the registry's own commit (ordered by the Log in a cluster) with
// nothing masked.
func oldWrite(t *testing.T, r *Registry, fn func(txn *wtx, b *opBatch) error) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.ops()
	if err := r.commitLocked(func(txn *wtx) error {
		if err := fn(txn, b); err != nil {
			return err
		}
		return b.write(txn)
	}); err != nil {
		t.Fatalf("write as an older version: %v", err)
	}
	b.done()
}

// plantClearText stores eight card numbers in clear the way a version before
// masking stored them: a merchant's name and status reason (with the change's
// oplog entry, reason and before/after), a change's reason and review note, and
// an alert rule's description; ordinary writes follow, so the oplog's entries
// after the ones that hold card numbers must be re-chained.
func plantClearText(t *testing.T, r *Registry) {
	t.Helper()
	req, err := r.RequestChange(alice, Change{Op: OpMerchantFreeze, Target: demoM2, Reason: "chargebacks"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.PutAlertRule(alice, AlertRule{ID: "quiet", Threshold: Duration(time.Hour), Filter: AlertFilter{Kinds: []TerminalKind{KindPOS}}}); err != nil {
		t.Fatal(err)
	}
	oldWrite(t, r, func(txn *wtx, b *opBatch) error {
		before, _ := r.Merchant(demoM1)
		m := *before
		m.Name, m.Note = "Shop of card "+clearPAN, "customer called about "+spacedPAN
		if err := putJSON(txn, []byte(pfxMerchant+m.ID), &m); err != nil {
			return err
		}
		b.add(OpEntry{Time: r.now(), Actor: "alice", Role: RoleOperator, Action: "merchant.change", TargetType: "merchant", Target: m.ID,
			Reason: "card " + clearPAN + " again", Before: rawJSON(before), After: rawJSON(&m)})
		c, err := r.loadChange(req.ID)
		if err != nil {
			return err
		}
		c.Reason, c.ReviewNote = "disputes on "+clearPAN, "see "+spacedPAN
		if err := putJSON(txn, seqKey(pfxChange, c.Seq), c); err != nil {
			return err
		}
		ar := *r.alerting.rules["quiet"]
		ar.Description = "for the terminal that read " + clearPAN
		return putJSON(txn, []byte(pfxRule+ar.ID), &ar)
	})
	for range 3 {
		if err := r.RecordEvent(bob, "console.login", "user", "bob", "from the office"); err != nil {
			t.Fatal(err)
		}
	}
}

// clearInDB returns the keys whose values hold the PAN in clear (bare or spaced).
func clearInDB(t *testing.T, db *badger.DB) []string {
	t.Helper()
	var keys []string
	if err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if bytes.Contains(v, []byte(clearPAN)) || bytes.Contains(v, []byte(spacedPAN)) {
				keys = append(keys, string(it.Item().Key()))
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

func lastEntry(t *testing.T, r *Registry) OpEntry {
	t.Helper()
	es, err := r.Oplog(OplogFilter{Limit: 1})
	if err != nil || len(es) != 1 {
		t.Fatalf("oplog: %v, %d entries", err, len(es))
	}
	return es[0]
}

// TestMaskStoredText: the card numbers an older version stored in clear in a
// merchant, a change, an alert rule and the oplog are masked, in Badger and in
// memory; the oplog still verifies and says what was done; a second run changes
// nothing; a restart reads the masked records.
func TestMaskStoredText(t *testing.T) {
	f := newFixture(t)
	plantClearText(t, f.reg)
	if len(clearInDB(t, f.db)) == 0 {
		t.Fatal("the test stored no clear PAN")
	}
	entries, err := f.reg.VerifyOplog()
	if err != nil {
		t.Fatalf("the older version's oplog: %v", err)
	}

	got, err := f.reg.MaskStoredText()
	if err != nil {
		t.Fatalf("MaskStoredText: %v", err)
	}
	// merchant (2), its oplog entry (reason 1, before 0, after 2), change (2), rule (1)
	if got.CardNumbers != 8 || got.Records != 4 || got.Rechained != 3 {
		t.Errorf("tally %+v, want 8 card numbers in 4 records (merchant, change, rule, one oplog entry), 3 entries re-chained", got)
	}
	if keys := clearInDB(t, f.db); len(keys) > 0 {
		t.Errorf("clear PAN left under %v", keys)
	}
	n, err := f.reg.VerifyOplog()
	if err != nil || n != entries+1 {
		t.Errorf("oplog after masking: %d entries (want %d), %v", n, entries+1, err)
	}
	last := lastEntry(t, f.reg)
	if last.Action != ActionOplogMask || last.Actor != SystemActor || !strings.Contains(last.Reason, "3 masked in 1 entries") {
		t.Errorf("last oplog entry %s by %s: %q", last.Action, last.Actor, last.Reason)
	}
	if m, _ := f.reg.Merchant(demoM1); m.Name != "Shop of card "+maskedPAN || m.Note != "customer called about "+maskedPAN {
		t.Errorf("merchant in memory: %q / %q", m.Name, m.Note)
	}
	for _, ar := range f.reg.AlertRules() {
		if ar.ID == "quiet" && ar.Description != "for the terminal that read "+maskedPAN {
			t.Errorf("alert rule in memory: %q", ar.Description)
		}
	}

	again, err := f.reg.MaskStoredText()
	if err != nil || again != (carddata.Tally{}) {
		t.Errorf("second run: %+v, %v (want nothing)", again, err)
	}
	if l := lastEntry(t, f.reg); l.Seq != last.Seq || l.Hash != last.Hash {
		t.Errorf("the second run moved the oplog's head: %d %s", l.Seq, l.Hash)
	}

	f.reopen(t)
	if m, _ := f.reg.Merchant(demoM1); m.Name != "Shop of card "+maskedPAN {
		t.Errorf("merchant after a restart: %q", m.Name)
	}
	if err := f.reg.RecordEvent(bob, "console.logout", "user", "bob", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.VerifyOplog(); err != nil {
		t.Errorf("an entry after masking and a restart: %v", err)
	}
}

// TestMaskStoredTextCutShort: a pass that stopped after its first chunk of the
// oplog (a crash) leaves a chain that verifies, says a pass is pending, and the
// next pass finishes it.
func TestMaskStoredTextCutShort(t *testing.T) {
	f := newFixture(t)
	plantClearText(t, f.reg)
	defer func(n int) { maskChunk = n }(maskChunk)
	maskChunk = 3
	first := lastEntry(t, f.reg).Seq
	if first < 2*uint64(maskChunk) {
		t.Fatalf("only %d oplog entries: the pass would not be cut short", first)
	}
	// The entry with the card numbers is among the first chunks: run chunks
	// until one is re-chained, then stop as a crash would.
	from := uint64(1)
	for {
		tl, next, done, err := f.reg.maskOplogChunk(from)
		if err != nil || done {
			t.Fatalf("chunk from %d: done %v, %v", from, done, err)
		}
		from = next
		if tl.Records > 0 {
			break
		}
	}
	if pending, err := f.reg.MaskPending(); err != nil || !pending {
		t.Fatalf("MaskPending after a cut-short pass: %v %v", pending, err)
	}
	if _, err := f.reg.VerifyOplog(); err != nil {
		t.Errorf("the chain a cut-short pass leaves: %v", err)
	}
	if err := f.reg.RecordEvent(bob, "console.login", "user", "bob", "meanwhile"); err != nil {
		t.Fatal(err)
	}
	f.reopen(t)
	if _, err := f.reg.MaskStoredText(); err != nil {
		t.Fatalf("the next pass: %v", err)
	}
	if pending, _ := f.reg.MaskPending(); pending {
		t.Error("still pending after the next pass")
	}
	if _, err := f.reg.VerifyOplog(); err != nil {
		t.Errorf("oplog: %v", err)
	}
	if keys := clearInDB(t, f.db); len(keys) > 0 {
		t.Errorf("clear PAN left under %v", keys)
	}
	if l := lastEntry(t, f.reg); l.Action != ActionOplogMask || !strings.Contains(l.Reason, "masked in 1 entries") {
		t.Errorf("last entry %s: %q", l.Action, l.Reason)
	}
}

// TestMaskStoredTextRefusesEdited: an oplog entry whose content no longer matches
// its hash stops the pass before it: re-chaining it would hide the edit.
func TestMaskStoredTextRefusesEdited(t *testing.T) {
	f := newFixture(t)
	plantClearText(t, f.reg)
	var key []byte
	if err := f.db.Update(func(txn *badger.Txn) error {
		seq := lastEntry(t, f.reg).Seq - 1
		key = seqKey(pfxLog, seq)
		var e OpEntry
		if err := getJSON(txn, key, &e); err != nil {
			return err
		}
		e.Reason = "edited"
		b, _ := json.Marshal(e)
		return txn.Set(key, b)
	}); err != nil {
		t.Fatal(err)
	}
	_, err := f.reg.MaskStoredText()
	if err == nil || !strings.Contains(err.Error(), "does not match its hash") {
		t.Fatalf("MaskStoredText over an edited entry: %v", err)
	}
	if _, err := f.reg.VerifyOplog(); err == nil || !strings.Contains(err.Error(), "edited?") {
		t.Errorf("VerifyOplog no longer sees the edit: %v", err)
	}
}

// TestMaskStoredTextShared: two nodes of a cluster run the pass at once over what
// an older version stored through the Log: every commit goes through the Log's
// compare-and-set, no update is lost (one node's ordinary change made meanwhile
// survives), the oplog is masked once (one mask entry), both nodes end with the
// same state and no clear PAN, and a second run on either writes nothing.
func TestMaskStoredTextShared(t *testing.T) {
	defer func(n int) { maskChunk = n }(maskChunk)
	maskChunk = 4 // many commits, so the two passes interleave
	mem := &statelog.Memory{}
	a := newNode(t, mem, mem)
	deliver(t, mem)
	b := newNode(t, mem, mem)
	deliver(t, mem)
	plantClearText(t, a.reg)
	deliver(t, mem)

	var wg sync.WaitGroup
	tallies := make([]int, 3)
	errs := make([]error, 3)
	for i, n := range []*node{a, b} {
		wg.Go(func() {
			tl, err := n.reg.MaskStoredText()
			tallies[i], errs[i] = tl.CardNumbers, err
		})
	}
	wg.Go(func() { // an ordinary change on B meanwhile
		_, errs[2] = b.reg.RequestChange(carol, Change{Op: OpMerchantFreeze, Target: demoM1, Reason: "meanwhile"})
	})
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	deliver(t, mem)
	if tallies[0]+tallies[1] != 8 {
		t.Errorf("the nodes masked %d and %d card numbers: want 8 in all", tallies[0], tallies[1])
	}
	sameState(t, a, b)
	for _, n := range []*node{a, b} {
		if keys := clearInDB(t, n.db); len(keys) > 0 {
			t.Errorf("clear PAN left under %v", keys)
		}
		es, _ := n.reg.Oplog(OplogFilter{Action: ActionOplogMask})
		if len(es) != 1 {
			t.Errorf("%d mask entries, want 1", len(es))
		}
		cs, _ := n.reg.Changes(ChangeFilter{})
		found := false
		for _, c := range cs {
			found = found || c.Reason == "meanwhile"
		}
		if !found {
			t.Error("the change made meanwhile was lost")
		}
		if m, _ := n.reg.Merchant(demoM1); m.Name != "Shop of card "+maskedPAN {
			t.Errorf("merchant in memory: %q", m.Name)
		}
	}
	rev := a.reg.Revision()
	for _, n := range []*node{a, b} {
		if tl, err := n.reg.MaskStoredText(); err != nil || tl.Records+tl.Rechained != 0 {
			t.Errorf("second run: %+v %v", tl, err)
		}
	}
	if a.reg.Revision() != rev {
		t.Errorf("a second run committed: revision %d -> %d", rev, a.reg.Revision())
	}
}
