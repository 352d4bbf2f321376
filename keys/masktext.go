package keys

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync"
)

// ActionAuditMask is the audit log entry MaskStoredText appends after masking
// entries and re-chaining the ones after them.
const ActionAuditMask = "audit.mask"

// MaskStoredText rewrites masked (carddata.MaskText) the card numbers in the audit
// log's free text (Detail: the reasons typed with a status change) that a version
// before masking (5 December 2026) stored in clear. The log is hash-chained: the
// first entry masked and every entry after it get a new hash, the head moves, and
// a last entry (action ActionAuditMask) says what was masked and what the head's
// hash was. The chain is checked first (VerifyLog): a broken chain is not
// re-chained, which would hide the break. It is one commit of the key store
// (shared like any, so safe on every node at once: a node that meets another's
// commit reads the log again and finds nothing left); a log without a card number
// is not written, so a second run writes nothing. The key audit log is short (key
// ceremonies, rotations, status changes): one commit holds the entries from the
// first masked on.
func (s *Store) MaskStoredText(ctx context.Context) (carddata.Tally, error) {
	var t carddata.Tally
	err := s.sync.Do(ctx, func() (statelog.Commit, func(), error) {
		t = carddata.Tally{}
		if _, err := s.VerifyLog(ctx); err != nil {
			return statelog.Commit{}, nil, fmt.Errorf("the audit log does not verify, so its card numbers are not masked: %w", err)
		}
		var c kvsync.Commit
		var head auditHead
		err := s.db.View(func(txn *badger.Txn) error {
			var err error
			if head, err = readHead(txn); err != nil {
				return err
			}
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(auditPrefix), PrefetchValues: true})
			defer it.Close()
			prevNew, first := genesis, uint64(0)
			for it.Rewind(); it.Valid(); it.Next() {
				var e AuditEntry
				if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
					return fmt.Errorf("audit entry %s: %w", it.Item().Key(), err)
				}
				m := e
				var n int
				m.Detail, n = carddata.MaskText(e.Detail)
				m.Prev = prevNew
				if n > 0 || m.Prev != e.Prev {
					m.Hash = hashEntry(m)
					if err := setJSON(&c, auditKey(m.Seq), m); err != nil {
						return err
					}
					if n > 0 {
						t.Records, t.CardNumbers = t.Records+1, t.CardNumbers+n
						if first == 0 {
							first = e.Seq
						}
					} else {
						t.Rechained++
					}
				}
				prevNew = m.Hash
			}
			if t.Records == 0 {
				return nil
			}
			last := AuditEntry{Seq: head.Seq + 1, Time: s.now().UTC(), Prev: prevNew, AuditEvent: hsm.AuditEvent{Actor: "system", Action: ActionAuditMask,
				Detail: fmt.Sprintf("card numbers typed into free text before they were masked as stored (PCI DSS): %d masked in %d entries from entry %d on; "+
					"the %d entries after the first masked re-chained; entry %d's hash was %s before", t.CardNumbers, t.Records, first, t.Records+t.Rechained-1, head.Seq, head.Hash)}}
			last.Hash = hashEntry(last)
			if err := setJSON(&c, auditKey(last.Seq), last); err != nil {
				return err
			}
			return setJSON(&c, []byte(auditHeadKey), auditHead{Seq: last.Seq, Hash: last.Hash})
		})
		return c.Commit, nil, err
	}, nil)
	if err != nil {
		return carddata.Tally{}, fmt.Errorf("keys: mask the card numbers in the audit log: %w", err)
	}
	return t, nil
}
