package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/kvjson"
)

// OpEntry is one entry of the append-only operation log: who did what, when, to
// which record, and the record before and after. Entries are chained by SHA-256
// (Hash covers the entry with Hash empty, including PrevHash), so that a removed or
// edited entry shows up in VerifyOplog.
type OpEntry struct {
	Seq        uint64    `json:"seq"`
	Time       time.Time `json:"time"`
	Actor      string    `json:"actor"`          // principal name, or "system"
	Role       string    `json:"role,omitempty"` // the actor's role
	Action     string    `json:"action"`         // e.g. "terminal.suspend", "change.request", "incident.ack"
	TargetType string    `json:"target_type"`    // merchant, terminal, change, incident, alert, alert-rule, case
	Target     string    `json:"target"`         // the record's ID
	ChangeID   string    `json:"change_id,omitempty"`
	// RequestedBy is the operator who requested the change an approver applied.
	RequestedBy string          `json:"requested_by,omitempty"`
	Reason      string          `json:"reason,omitempty"`
	Before      json.RawMessage `json:"before,omitempty"`
	After       json.RawMessage `json:"after,omitempty"`
	PrevHash    string          `json:"prev_hash"`
	Hash        string          `json:"hash"`
}

// opBatch collects oplog entries written in one transaction. r.mu must be held from
// ops() to done().
type opBatch struct {
	r       *store
	seq     uint64
	hash    string
	entries []OpEntry
}

func (r *store) ops() *opBatch { return &opBatch{r: r, seq: r.logSeq, hash: r.logHash} }

func rawJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) == "null" {
		return nil
	}
	return b
}

func entryHash(e OpEntry) (string, error) {
	e.Hash = ""
	b, err := json.Marshal(e)
	if err != nil {
		return "", fmt.Errorf("registry: encode oplog entry %d: %w", e.Seq, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func (b *opBatch) add(e OpEntry) {
	b.seq++
	e.Seq = b.seq
	e.Time = e.Time.UTC()
	e.PrevHash = b.hash
	h, err := entryHash(e)
	if err != nil { // cannot happen for the types we log; keep the chain anyway
		h = ""
	}
	e.Hash = h
	b.hash = h
	b.entries = append(b.entries, e)
}

func (b *opBatch) write(txn setter) error {
	for _, e := range b.entries {
		if err := putJSON(txn, seqKey(pfxLog, e.Seq), e); err != nil {
			return err
		}
	}
	return nil
}

// done makes the batch's sequence and hash the log's, after its transaction commits.
func (b *opBatch) done() {
	b.r.logSeq, b.r.logHash = b.seq, b.hash
}

// OplogFilter selects oplog entries; empty fields match everything.
type OplogFilter struct {
	Since  time.Time // entries at or after
	After  uint64    // entries with a larger sequence number
	Target string    // record ID
	Actor  string
	Action string // exact, or a prefix ending in "." such as "terminal."
	Limit  int    // at most this many (the newest); 0 means 1000, at most kvjson.MaxLimit
}

// Oplog returns the matching entries in log order.
func (r *store) Oplog(f OplogFilter) ([]OpEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	f.Limit = min(f.Limit, kvjson.MaxLimit)
	var out []OpEntry
	err := r.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte(pfxLog), PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Seek([]byte(pfxLog + "\xff")); it.Valid() && len(out) < f.Limit; it.Next() {
			var e OpEntry
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("registry: read oplog %s: %w", it.Item().Key(), err)
			}
			if e.Seq <= f.After || (!f.Since.IsZero() && e.Time.Before(f.Since)) {
				break // older entries only from here on
			}
			if f.Target != "" && e.Target != f.Target {
				continue
			}
			if f.Actor != "" && e.Actor != f.Actor {
				continue
			}
			if f.Action != "" && e.Action != f.Action && !(strings.HasSuffix(f.Action, ".") && strings.HasPrefix(e.Action, f.Action)) {
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

// VerifyOplog checks the hash chain of the whole log and returns the number of
// entries; an error names the first entry that does not fit.
func (r *store) VerifyOplog() (int, error) {
	n := 0
	prev := ""
	var want uint64 = 1
	err := r.db.View(func(txn *badger.Txn) error {
		// A MaskStoredText cut short leaves one link to the hash an entry had
		// before it was masked or re-chained (its progress says which): accepted.
		p, err := pendingLogMask(txn)
		if err != nil {
			return err
		}
		return iterate(txn, pfxLog, func(k, v []byte) error {
			var e OpEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("oplog entry %s: %w", k, err)
			}
			if e.Seq != want {
				return fmt.Errorf("oplog entry %d: expected sequence %d (an entry is missing)", e.Seq, want)
			}
			if p != nil && e.Seq == p.Through+1 && e.PrevHash == p.OldHash {
				prev = e.PrevHash
			}
			if e.PrevHash != prev {
				return fmt.Errorf("oplog entry %d: previous hash %q does not match entry %d's hash %q", e.Seq, e.PrevHash, e.Seq-1, prev)
			}
			h, err := entryHash(e)
			if err != nil {
				return err
			}
			if h != e.Hash {
				return fmt.Errorf("oplog entry %d: content does not match its hash (edited?)", e.Seq)
			}
			prev = e.Hash
			want++
			n++
			return nil
		})
	})
	return n, err
}

// LogOp appends e to the operation log for another part of the switch (the review
// cases), in one Badger transaction with write (nil: nothing else), so that a
// record and the entry that tells who changed it are stored together or not at
// all. Seq, PrevHash and Hash are set here; Time defaults to the registry's clock.
func (r *store) LogOp(e OpEntry, write func(txn *badger.Txn) error) (OpEntry, error) {
	return retry(r, func() (OpEntry, error) { return r.logOp(e, write) })
}

func (r *store) logOp(e OpEntry, write func(txn *badger.Txn) error) (OpEntry, error) {
	if e.Actor == "" || e.Action == "" || e.TargetType == "" || e.Target == "" {
		return e, invalidf("oplog entry needs an actor, an action, a target type and a target (got %q %q %q %q)", e.Actor, e.Action, e.TargetType, e.Target)
	}
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.ops()
	b.add(e)
	if err := r.commitLocked(func(txn *wtx) error {
		if write != nil {
			if err := write(txn.Txn); err != nil { // the caller's own records: not in the registry's commit
				return err
			}
		}
		return b.write(txn)
	}); err != nil {
		return e, fmt.Errorf("registry: store %s of %s %s: %w", e.Action, e.TargetType, e.Target, err)
	}
	b.done()
	return b.entries[0], nil
}
