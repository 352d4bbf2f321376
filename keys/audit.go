package keys

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync"
)

// AuditEntry is one link of the key audit log. Hash is the SHA-256 of the entry's
// JSON encoding with an empty Hash; Prev is the Hash of the entry before (64 zeros
// for the first), so that any change, insertion or removal breaks the chain.
type AuditEntry struct {
	Seq  uint64    `json:"seq"`  // 1, 2, 3, ...
	Time time.Time `json:"time"` // when
	hsm.AuditEvent
	Prev string `json:"prev"` // hash of the entry before
	Hash string `json:"hash"` // hash of this entry
}

type auditHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

var genesis = hex.EncodeToString(make([]byte, sha256.Size))

func auditKey(seq uint64) []byte { return fmt.Appendf(nil, "%s%016d", auditPrefix, seq) }

// hashEntry returns the hash of e (computed with e.Hash empty).
func hashEntry(e AuditEntry) string {
	e.Hash = ""
	b, _ := json.Marshal(e)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func readHead(txn *badger.Txn) (auditHead, error) {
	h := auditHead{Hash: genesis}
	item, err := txn.Get([]byte(auditHeadKey))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return h, nil
	}
	if err != nil {
		return h, err
	}
	err = item.Value(func(v []byte) error { return json.Unmarshal(v, &h) })
	return h, err
}

// appendAudit adds to c the entries of evs, in order, and the new head, after the
// head in Badger. Callers hold the writer lock (inside s.sync.Do), so the head cannot
// move.
func (s *Store) appendAudit(c *kvsync.Commit, evs ...hsm.AuditEvent) error {
	var head auditHead
	err := s.db.View(func(txn *badger.Txn) (err error) {
		head, err = readHead(txn)
		return err
	})
	if err != nil {
		return fmt.Errorf("audit log head: %w", err)
	}
	for _, ev := range evs {
		if ev.Actor == "" {
			ev.Actor = "system"
		}
		e := AuditEntry{Seq: head.Seq + 1, Time: s.now().UTC(), AuditEvent: ev, Prev: head.Hash}
		e.Hash = hashEntry(e)
		if err := setJSON(c, auditKey(e.Seq), e); err != nil {
			return err
		}
		head = auditHead{Seq: e.Seq, Hash: e.Hash}
	}
	return setJSON(c, []byte(auditHeadKey), head)
}

// Audit implements hsm.KeyStore: it durably appends an event to the audit log.
func (s *Store) Audit(ctx context.Context, ev hsm.AuditEvent) error {
	err := s.sync.Do(ctx, func() (statelog.Commit, func(), error) {
		var c kvsync.Commit
		err := s.appendAudit(&c, ev)
		return c.Commit, nil, err
	}, nil)
	if err != nil {
		return fmt.Errorf("audit %s of %s: %w", ev.Action, ev.KeyID, err)
	}
	return nil
}

// AuditLog returns up to limit entries starting at sequence number from (1 is the
// first); limit <= 0 means all.
func (s *Store) AuditLog(from uint64, limit int) ([]AuditEntry, error) {
	if from < 1 {
		from = 1
	}
	var out []AuditEntry
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(auditPrefix), PrefetchValues: true})
		defer it.Close()
		for it.Seek(auditKey(from)); it.Valid(); it.Next() {
			if limit > 0 && len(out) >= limit {
				break
			}
			var e AuditEntry
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("audit entry %s: %w", it.Item().Key(), err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// LogError says where the audit log chain is broken.
type LogError struct {
	Seq    uint64 // the first entry that does not verify (or the head's sequence number)
	Reason string // what is wrong
}

// Error says which entry breaks the chain and why.
func (e *LogError) Error() string {
	return fmt.Sprintf("audit log broken at entry %d: %s", e.Seq, e.Reason)
}

// VerifyLog walks the audit log from the first entry and checks every link: the
// sequence numbers run 1, 2, 3, ...; each entry's hash matches its contents; each
// Prev is the hash of the entry before; and the head matches the last entry (so the
// tail was not cut off). It returns the number of entries checked and, if the chain
// is broken, a *LogError naming the first broken link.
func (s *Store) VerifyLog(_ context.Context) (int, error) {
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		head, err := readHead(txn)
		if err != nil {
			return fmt.Errorf("audit log head: %w", err)
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(auditPrefix), PrefetchValues: true})
		defer it.Close()
		prev := genesis
		want := uint64(1)
		for it.Rewind(); it.Valid(); it.Next() {
			var e AuditEntry
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return &LogError{Seq: want, Reason: fmt.Sprintf("entry %s cannot be decoded: %v", it.Item().Key(), err)}
			}
			if string(it.Item().Key()) != string(auditKey(e.Seq)) {
				return &LogError{Seq: want, Reason: fmt.Sprintf("entry stored at %s claims sequence number %d", it.Item().Key(), e.Seq)}
			}
			if e.Seq != want {
				return &LogError{Seq: want, Reason: fmt.Sprintf("entry missing (next entry found is %d)", e.Seq)}
			}
			if e.Prev != prev {
				return &LogError{Seq: e.Seq, Reason: "its prev hash does not match the hash of the entry before (an entry was removed or replaced)"}
			}
			if hashEntry(e) != e.Hash {
				return &LogError{Seq: e.Seq, Reason: "its contents do not match its hash (the entry was altered)"}
			}
			prev = e.Hash
			want++
			n++
		}
		if head.Seq != want-1 || head.Hash != prev {
			return &LogError{Seq: head.Seq, Reason: fmt.Sprintf("the head says the last entry is %d, the log ends at %d (entries were cut off or the head was altered)", head.Seq, want-1)}
		}
		return nil
	})
	return n, err
}
