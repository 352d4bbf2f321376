package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync"
)

// A webhook secret's rotation. When a merchant's webhook secret changes and its
// URL stays (an approved change, or SetEndpoint), the merchant's receiver cannot
// switch to the new secret at the very moment the change is approved: for
// Options.SecretOverlap (default DefaultSecretOverlap) its notices carry, besides
// X-Switchyard-Signature under the new secret, HeaderSignaturePrevious under the
// secret it replaced, so that a receiver still verifying with the old one
// accepts them until it has switched. X-Switchyard-Signature keeps its form (one
// signature, under the secret in force): a receiver that verifies only it, with
// the new secret, is not affected.
//
// The previous secret is stored with the webhook (notify/ep/), sealed like the
// current one under its own additional data (adPrevious), and shared with the
// other nodes through the webhooks' commits, which also carry when the overlap
// ends. Once it has ended the notices are no longer signed with it, and the
// outbox's housekeeping (tend, every 30 s) drops it at rest in a commit of the
// webhooks (dropPrevious). A second change within the overlap replaces it with
// the secret in force before that change; a change of the URL, or a removal,
// ends it at once (a new receiver never had the old secret).

// DefaultSecretOverlap is how long a replaced webhook secret also signs the
// notices when Options.SecretOverlap gives none (notices.secret_overlap).
const DefaultSecretOverlap = 24 * time.Hour

// rotated returns ep, about to be put in force for merchant, with the previous
// secret it is to carry: the secret in force if ep changes it (and not the URL),
// for SecretOverlap from now; or, when ep keeps that secret and URL, the
// previous secret in force and its end. Called in a webhooks' commit (under its
// lock, the webhooks in memory as committed).
func (b *Outbox) rotated(merchant string, ep Endpoint) Endpoint {
	ep.prev, ep.prevUntil = "", time.Time{}
	old, ok := (*b.eps.Load())[merchant]
	if !ok || old.held != "" || old.Secret == "" || old.URL != ep.URL {
		return ep
	}
	now := b.o.Now()
	switch {
	case old.Secret != ep.Secret:
		ep.prev, ep.prevUntil = old.Secret, now.Add(b.o.SecretOverlap).UTC()
	case old.prev != "" && now.Before(old.prevUntil):
		ep.prev, ep.prevUntil = old.prev, old.prevUntil
	}
	return ep
}

// dropPrevious rewrites without their previous secret, in one commit of the
// webhooks (shared with the other nodes), the webhooks whose overlap has ended,
// and returns how many. It reads the database only when one in memory is due.
func (b *Outbox) dropPrevious() (int, error) {
	now := b.o.Now()
	due := false
	for _, ep := range *b.eps.Load() {
		due = due || !ep.prevUntil.IsZero() && !now.Before(ep.prevUntil)
	}
	if !due {
		return 0, nil
	}
	var n int
	err := b.sync.Do(context.Background(), func() (statelog.Commit, func(), error) {
		var kc kvsync.Commit
		changed := map[string]*Endpoint{}
		err := b.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxEndpoint), PrefetchValues: true})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				m := strings.TrimPrefix(string(it.Item().Key()), pfxEndpoint)
				var r endpointRecord
				if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
					return fmt.Errorf("%s: %w", it.Item().Key(), err)
				}
				if r.PrevUntil == nil || now.Before(*r.PrevUntil) {
					continue
				}
				r.PrevSealed, r.PrevUntil = nil, nil
				v, err := json.Marshal(r)
				if err != nil {
					return err
				}
				e, _, err := b.openEndpoint(m, v)
				if err != nil {
					return fmt.Errorf("%s: %w", it.Item().Key(), err)
				}
				kc.Set(it.Item().KeyCopy(nil), v)
				changed[m] = &e
			}
			return nil
		})
		n = len(changed)
		if err != nil || n == 0 {
			return statelog.Commit{}, nil, err
		}
		return kc.Commit, func() { b.putInMemory(changed) }, nil
	}, nil)
	if err != nil {
		return 0, fmt.Errorf("notify: drop the previous webhook secrets past their overlap: %w", err)
	}
	if n > 0 {
		b.log.Info().Int("webhooks", n).Msg("previous webhook secrets dropped: their overlap has ended")
	}
	return n, nil
}
