package registry

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/carddata"
)

// Free text stored before the registry masked the card numbers typed into it
// (5 December 2026): MaskStoredText rewrites it masked, through the same commits as
// any registry write (ordered by the Log in a cluster), so that it can run on every
// node, at once, without losing anyone's update. See docs/cluster.md and README.md,
// "Card numbers in free text".

// The free-text fields of each kind of record (carddata.MaskJSON paths): those the
// write path masks (carddata.go), and the records' copies of them (a merchant's
// name in a change, an incident's copy of its terminal and merchant).
var (
	merchantText = []string{"name", "name_latin", "status_reason"}
	terminalText = []string{"status_reason"}
	changeText   = []string{"reason", "review_note", "merchant.name", "merchant.name_latin", "merchant.status_reason", "merchant_patch.name",
		"merchant_patch.name_latin", "terminal.status_reason", "terminals[].status_reason", "merchants[].name",
		"merchants[].name_latin", "merchants[].status_reason",
		"alert_rule.description"}
	incidentText = []string{"acknowledge_note", "resolve_note", "terminal.status_reason", "merchant.name", "merchant.name_latin", "merchant.status_reason"}
	alertText    = []string{"acknowledge_note"}
	ruleText     = []string{"description"}
	// ratingText: the merchant ratings' entries (switch/merchantrisk) log a rating
	// state (its pin's reason, why) or a pin (its reason) as a merchant's.
	ratingText = []string{"reason", "why", "pin.reason"}
)

// opText returns the free-text fields of the records an oplog entry about a
// target of type tt holds before and after.
func opText(tt string) []string {
	switch tt {
	case "merchant":
		return append(append([]string(nil), merchantText...), ratingText...)
	case "terminal":
		return terminalText
	case "change":
		return changeText
	case "incident":
		return incidentText
	case "alert":
		return alertText
	case "alert-rule":
		return ruleText
	}
	return nil // case, user, oplog: no free text in their before and after
}

// maskChunk is how many records (or oplog entries) one commit of MaskStoredText
// reads and may rewrite: a commit stays well under a Badger transaction's and a
// NATS message's limits. (A variable: tests make it small.)
var maskChunk = 256

const (
	// maskAttempts bounds the tries of one chunk that met other nodes' commits
	// (each try already catches up and runs again once: retry).
	maskAttempts = 5
	// keyLogMask holds, while MaskStoredText is re-chaining the oplog, how far it
	// got (logMask): shared, so that any node finishes a pass another started.
	keyLogMask = "reg/logmask"
	// ActionOplogMask is the oplog entry MaskStoredText appends after masking
	// entries and re-chaining the ones after them.
	ActionOplogMask = "oplog.mask"
)

// logMask is the progress of an oplog re-chain (keyLogMask). The entries up to
// Through are masked and re-chained; the entry after it still names, as its
// prev_hash, the hash Through had before (OldHash).
type logMask struct {
	Through     uint64 `json:"through"`
	OldHash     string `json:"old_hash"`
	From        uint64 `json:"from"` // the first entry masked
	Masked      int    `json:"masked"`
	CardNumbers int    `json:"card_numbers"`
	Rechained   int    `json:"rechained"`
}

// recordText is one kind of record MaskStoredText goes through.
type recordText struct {
	prefix string
	paths  []string
	// local: keys of this node only (pfxIncSpill), written outside the shared commit.
	local bool
	// publish puts a rewritten record into memory (r.mu held); nil for records
	// read from Badger.
	publish func(key, val []byte) error
}

// MaskStoredText rewrites masked (carddata.MaskText) the card numbers in the free
// text of every stored record: merchants' names and status reasons, terminals'
// status reasons, changes (reasons, review notes, the merchants, terminals and
// alert rules they carry), incidents and alerts (notes, copies of records), alert
// rules' descriptions, this node's spilled incidents, and the oplog's reasons and
// records before and after. A record without a card number is not written. It
// commits in chunks, each like any registry write (in a cluster ordered by the Log
// after this node's revision, caught up and run again on a conflict), so it is safe
// on every node at once and run again changes nothing.
//
// The oplog is hash-chained: an entry masked gets a new hash, and so does every
// entry after it (each names the one before), and a last entry (action
// ActionOplogMask, by SystemActor) says what was masked and what the head's hash
// was. The chain is checked as it is read: an entry whose content does not match
// its hash, or that does not link to the one before, stops the pass with an error
// (re-chaining it would hide the tampering). While a pass is under way its
// progress is stored (keyLogMask), so that a pass cut short (a crash) is finished
// by the next, on any node, and VerifyOplog accepts the one link it leaves.
func (r *Registry) MaskStoredText() (carddata.Tally, error) {
	var total carddata.Tally
	kinds := []recordText{
		{prefix: pfxMerchant, paths: merchantText, publish: func(_, v []byte) error {
			m := new(Merchant)
			if err := json.Unmarshal(v, m); err != nil {
				return err
			}
			r.publishMerchant(m)
			return nil
		}},
		{prefix: pfxTerminal, paths: terminalText, publish: func(_, v []byte) error {
			t := new(Terminal)
			if err := json.Unmarshal(v, t); err != nil {
				return err
			}
			r.publishTerminals(t)
			return nil
		}},
		{prefix: pfxChange, paths: changeText},
		{prefix: pfxIncident, paths: incidentText},
		{prefix: pfxIncSpill, paths: incidentText, local: true},
		{prefix: pfxAlert, paths: alertText},
		{prefix: pfxRule, paths: ruleText, publish: func(_, v []byte) error {
			ar := new(AlertRule)
			if err := json.Unmarshal(v, ar); err != nil {
				return err
			}
			r.alerting.rules[ar.ID] = ar
			return nil
		}},
	}
	for _, k := range kinds {
		t, err := r.maskRecords(k)
		total.Add(t)
		if err != nil {
			return total, err
		}
	}
	t, err := r.maskOplog()
	total.Add(t)
	return total, err
}

// maskTry runs op (a chunk of MaskStoredText, which takes r.mu itself) through
// retry, and again while other nodes' commits keep beating it.
func maskTry[T any](r *Registry, op func() (T, error)) (T, error) {
	var v T
	var err error
	for range maskAttempts {
		v, err = retry(r.store, op)
		if r.opts.Log == nil || !errors.Is(err, ErrConflict) {
			break
		}
	}
	return v, err
}

// maskRecords masks the records of kind k, a chunk of keys at a time.
func (r *Registry) maskRecords(k recordText) (carddata.Tally, error) {
	var total carddata.Tally
	start := []byte(k.prefix)
	for start != nil {
		type chunk struct {
			t    carddata.Tally
			next []byte
		}
		c, err := maskTry(r, func() (chunk, error) {
			var c chunk
			t, next, err := r.maskRecordsChunk(k, start)
			c.t, c.next = t, next
			return c, err
		})
		total.Add(c.t)
		if err != nil {
			return total, fmt.Errorf("registry: mask the card numbers in the free text under %s: %w", k.prefix, err)
		}
		start = c.next
	}
	return total, nil
}

// maskRecordsChunk masks up to maskChunk records of kind k from key start on and
// returns the key to go on from (nil at the end).
func (r *Registry) maskRecordsChunk(k recordText, start []byte) (carddata.Tally, []byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var (
		t       carddata.Tally
		next    []byte
		changed [][2][]byte
	)
	err := r.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(k.prefix), PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		n := 0
		for it.Seek(start); it.Valid(); it.Next() {
			if n == maskChunk {
				next = it.Item().KeyCopy(nil)
				return nil
			}
			n++
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read %s: %w", it.Item().Key(), err)
			}
			m, c, err := carddata.MaskJSON(v, k.paths...)
			if err != nil {
				return fmt.Errorf("%s: %w", it.Item().Key(), err)
			}
			if c > 0 {
				changed = append(changed, [2][]byte{it.Item().KeyCopy(nil), m})
				t.Records++
				t.CardNumbers += c
			}
		}
		return nil
	})
	if err != nil || len(changed) == 0 {
		return t, next, err
	}
	if err := r.commitLocked(func(txn *wtx) error {
		for _, kv := range changed {
			var err error
			if k.local {
				err = txn.Txn.Set(kv[0], kv[1])
			} else {
				err = txn.Set(kv[0], kv[1])
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", kv[0], err)
			}
		}
		return nil
	}); err != nil {
		return carddata.Tally{}, nil, err
	}
	if k.publish != nil {
		for _, kv := range changed {
			if err := k.publish(kv[0], kv[1]); err != nil {
				return t, next, fmt.Errorf("decode %s: %w", kv[0], err)
			}
		}
	}
	return t, next, nil
}

// maskOplog masks the oplog's entries and re-chains those after the first it
// masks, a chunk at a time (see MaskStoredText).
func (r *Registry) maskOplog() (carddata.Tally, error) {
	var total carddata.Tally
	from := uint64(1)
	for {
		type chunk struct {
			t    carddata.Tally
			next uint64
			done bool
		}
		c, err := maskTry(r, func() (chunk, error) {
			t, next, done, err := r.maskOplogChunk(from)
			return chunk{t, next, done}, err
		})
		total.Add(c.t)
		if err != nil {
			return total, fmt.Errorf("registry: mask the card numbers in the oplog: %w", err)
		}
		if c.done {
			return total, nil
		}
		from = c.next
	}
}

// maskOplogChunk masks up to maskChunk oplog entries from entry from on (or from
// where a pass under way got to: keyLogMask), re-chaining them, and returns where
// to go on from, or done once it reached the last entry.
func (r *Registry) maskOplogChunk(from uint64) (t carddata.Tally, next uint64, done bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var (
		p       logMask
		pending bool
		prevNew string // the hash the entry before from has now
		prevOld string // the hash it had when the entry after it was written
		writes  []OpEntry
		last    = from - 1
	)
	err = r.db.View(func(txn *badger.Txn) error {
		switch err := getJSON(txn, []byte(keyLogMask), &p); {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("read %s: %w", keyLogMask, err)
		default:
			pending, from, last = true, p.Through+1, p.Through
		}
		if from > 1 {
			var e OpEntry
			if err := getJSON(txn, seqKey(pfxLog, from-1), &e); err != nil {
				return fmt.Errorf("read oplog entry %d: %w", from-1, err)
			}
			prevNew = e.Hash
		}
		prevOld = prevNew
		if pending {
			prevOld = p.OldHash
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxLog), PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		it.Seek(seqKey(pfxLog, from))
		if !it.Valid() && from <= r.logSeq {
			return fmt.Errorf("oplog entries %d to %d are missing: nothing from them on is masked; see oplog verify", from, r.logSeq)
		}
		for ; it.Valid() && last+1-from < uint64(maskChunk); it.Next() {
			var e OpEntry
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("decode oplog entry %s: %w", it.Item().Key(), err)
			}
			if e.Seq != last+1 {
				return fmt.Errorf("oplog entry %d: expected sequence %d (an entry is missing): nothing after it is masked; see oplog verify", e.Seq, last+1)
			}
			if h, err := entryHash(e); err != nil || h != e.Hash {
				return fmt.Errorf("oplog entry %d: content does not match its hash (edited?): nothing from it on is masked or re-chained; see oplog verify", e.Seq)
			}
			if e.PrevHash != prevOld {
				return fmt.Errorf("oplog entry %d: previous hash %q is not entry %d's %q: nothing from it on is masked or re-chained; see oplog verify", e.Seq, e.PrevHash, e.Seq-1, prevOld)
			}
			m, n, err := maskEntry(e)
			if err != nil {
				return fmt.Errorf("oplog entry %d: %w", e.Seq, err)
			}
			m.PrevHash = prevNew
			if n > 0 || m.PrevHash != e.PrevHash {
				if m.Hash, err = entryHash(m); err != nil {
					return err
				}
				writes = append(writes, m)
				if n > 0 {
					t.Records++
					t.CardNumbers += n
					if p.From == 0 {
						p.From = e.Seq
					}
				} else {
					t.Rechained++
				}
			}
			prevOld, prevNew, last = e.Hash, m.Hash, e.Seq
		}
		return nil
	})
	if err != nil {
		return carddata.Tally{}, 0, false, err
	}
	done = last >= r.logSeq
	inSync := prevOld == prevNew
	if len(writes) == 0 && !pending {
		return t, last + 1, done, nil
	}
	p.Masked += t.Records
	p.CardNumbers += t.CardNumbers
	p.Rechained += t.Rechained
	b := r.ops()
	b.hash = prevNew
	if done && p.Masked > 0 {
		b.add(OpEntry{Time: r.now(), Actor: SystemActor, Action: ActionOplogMask, TargetType: "oplog", Target: "oplog",
			Reason: fmt.Sprintf("card numbers typed into free text before they were masked as stored (PCI DSS): %d masked in %d entries "+
				"from entry %d on; the %d entries after the first masked re-chained; entry %d's hash was %s before",
				p.CardNumbers, p.Masked, p.From, p.Masked+p.Rechained-1, last, prevOld)})
	}
	if err := r.commitLocked(func(txn *wtx) error {
		for _, e := range writes {
			if err := putJSON(txn, seqKey(pfxLog, e.Seq), e); err != nil {
				return err
			}
		}
		if done || inSync {
			if pending {
				if err := txn.Delete([]byte(keyLogMask)); err != nil {
					return err
				}
			}
		} else {
			p.Through, p.OldHash = last, prevOld
			if err := putJSON(txn, []byte(keyLogMask), p); err != nil {
				return err
			}
		}
		return b.write(txn)
	}); err != nil {
		return carddata.Tally{}, 0, false, err
	}
	if done {
		b.done() // the head: the new hash of the last entry, or the mask entry after it
	}
	return t, last + 1, done, nil
}

// maskEntry returns e with the card numbers in its reason and its records before
// and after masked, and how many it masked.
func maskEntry(e OpEntry) (OpEntry, int, error) {
	var n, k int
	var err error
	e.Reason, n = carddata.MaskText(e.Reason)
	paths := opText(e.TargetType)
	if e.Before, k, err = carddata.MaskJSON(e.Before, paths...); err != nil {
		return e, 0, fmt.Errorf("before: %w", err)
	}
	n += k
	if e.After, k, err = carddata.MaskJSON(e.After, paths...); err != nil {
		return e, 0, fmt.Errorf("after: %w", err)
	}
	return e, n + k, nil
}

// pendingLogMask returns the progress of an oplog re-chain under way (nil for
// none), for VerifyOplog.
func pendingLogMask(txn *badger.Txn) (*logMask, error) {
	var p logMask
	switch err := getJSON(txn, []byte(keyLogMask), &p); {
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("registry: read %s: %w", keyLogMask, err)
	}
	return &p, nil
}

// MaskPending reports whether an oplog re-chain of MaskStoredText is under way
// (cut short on this node or another): the switch then runs MaskStoredText at its
// start even if this node ran it before.
func (r *Registry) MaskPending() (bool, error) {
	var p *logMask
	err := r.db.View(func(txn *badger.Txn) (err error) {
		p, err = pendingLogMask(txn)
		return err
	})
	return p != nil, err
}
