package notify

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync"
	"github.com/switchyard/switchyard/switch/registry"
)

// OpWebhookPut registers, replaces or (with an empty URL) removes a merchant's
// notice webhook through the admin API: a registry change under two-person
// review. One operator alone could otherwise send a merchant's notices (its
// approvals, refunds and voids, with masked PANs and amounts) to a receiver of
// his choosing, or stop them.
const OpWebhookPut registry.Op = "merchant.webhook"

// pfxStaged holds the secrets of requested webhooks until their changes are
// decided: + ref -> stagedSecret. The change itself carries only the reference
// and a fingerprint, so the secret is in no change list, preview or oplog entry.
const pfxStaged = "notify/staged/"

// stagedSweepAge is how old a staged secret must be before a start deletes it
// when no pending change refers to it (its change was rejected or cancelled, or
// its request failed after the secret was staged).
const stagedSweepAge = 24 * time.Hour

// WebhookChange is the payload (registry.Change.Ext) of a merchant.webhook change.
type WebhookChange struct {
	Merchant string `json:"merchant"`
	URL      string `json:"url"` // empty: remove the webhook
	// SecretRef names the staged secret (and, for a removal, its marker).
	SecretRef string `json:"secret_ref"`
	// SecretSHA256 is the first 8 bytes of the secret's SHA-256, in hex, for the
	// reviewer to compare with the merchant's; empty for a removal.
	SecretSHA256 string `json:"secret_sha256,omitempty"`
}

type stagedSecret struct {
	Secret string    `json:"secret,omitempty"`
	At     time.Time `json:"at"`
}

// ReviewRegistry is what the outbox needs of the registry for reviewed webhooks.
type ReviewRegistry interface {
	RegisterOp(op registry.Op, h registry.ExtOp)
	RequestChange(p registry.Actor, c registry.Change) (*registry.Change, error)
	ApprovedChanges(ops ...registry.Op) ([]*registry.Change, error)
	PendingChanges(ops ...registry.Op) ([]*registry.Change, error)
}

// UseReview registers merchant.webhook with reg, then puts in force each
// merchant's last approved change whose staged secret is still there (an
// approval whose application a stop or an error cut off), and deletes staged
// secrets that no pending or approved change refers to and are older than a day.
func (b *Outbox) UseReview(reg ReviewRegistry) error {
	b.reg = reg
	reg.RegisterOp(OpWebhookPut, registry.ExtOp{Check: b.checkChange, Apply: b.applyChange})
	// Pending first: a change approved between the two reads is in the second.
	pending, err := reg.PendingChanges(OpWebhookPut)
	if err != nil {
		return fmt.Errorf("notify: read the pending changes: %w", err)
	}
	approved, err := reg.ApprovedChanges(OpWebhookPut)
	if err != nil {
		return fmt.Errorf("notify: read the approved webhook changes: %w", err)
	}
	keep := map[string]bool{}
	for _, c := range append(pending, approved...) {
		var w WebhookChange
		if json.Unmarshal(c.Ext, &w) == nil {
			keep[w.SecretRef] = true
		}
	}
	// Only the merchants with an approved change still staged (almost never
	// any): each reconcile reads the change list again.
	staged, err := b.stagedRefs()
	if err != nil {
		return err
	}
	if err := b.reconcileStaged(stagedMerchants(approved, staged)); err != nil {
		// Not fatal: retryStaged tries again every 30 s.
		b.log.Warn().Err(err).Msg("approved webhook changes not put in force at the start; trying again in 30 s")
	}
	var stale [][]byte
	err = b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxStaged), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			ref := strings.TrimPrefix(string(it.Item().Key()), pfxStaged)
			var st stagedSecret
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &st) }); err != nil || keep[ref] {
				continue
			}
			if b.o.Now().Sub(st.At) > stagedSweepAge {
				stale = append(stale, it.Item().KeyCopy(nil))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("notify: read the staged webhook secrets: %w", err)
	}
	if len(stale) > 0 {
		var kc kvsync.Commit
		for _, k := range stale {
			kc.Delete(k)
		}
		if err := b.sync.Do(context.Background(), func() (statelog.Commit, func(), error) { return kc.Commit, nil, nil }, nil); err != nil {
			return fmt.Errorf("notify: delete %d staged webhook secrets of decided changes: %w", len(stale), err)
		}
		b.log.Info().Int("secrets", len(stale)).Msg("staged webhook secrets of rejected or cancelled changes deleted")
	}
	return nil
}

// reconcileStaged reconciles the merchants' webhooks with their approved changes
// (see reconcile); the first error stops it.
func (b *Outbox) reconcileStaged(merchants map[string]bool) error {
	for m := range merchants {
		if err := b.reconcile(m); err != nil {
			return err
		}
	}
	return nil
}

// retryStaged reconciles, every retryStagedEvery, the merchants that have a
// staged secret of an approved change: an approval whose Apply failed (the state
// log unavailable, say) is put in force without waiting for a restart.
func (b *Outbox) retryStaged(ctx context.Context) {
	if b.reg == nil {
		return
	}
	tick := time.NewTicker(retryStagedEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		refs, err := b.stagedRefs()
		if err != nil || len(refs) == 0 {
			continue
		}
		approved, err := b.reg.ApprovedChanges(OpWebhookPut)
		if err != nil {
			continue
		}
		if err := b.reconcileStaged(stagedMerchants(approved, refs)); err != nil {
			b.log.Warn().Err(err).Msg("approved webhook changes not put in force yet; trying again")
		}
	}
}

// stagedRefs returns the references of the staged secrets.
func (b *Outbox) stagedRefs() (map[string]bool, error) {
	refs := map[string]bool{}
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxStaged)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			refs[strings.TrimPrefix(string(it.Item().Key()), pfxStaged)] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("notify: read the staged webhook secrets: %w", err)
	}
	return refs, nil
}

// stagedMerchants returns the merchants of the approved changes whose secret is
// still staged: those not put in force yet, or superseded.
func stagedMerchants(approved []*registry.Change, refs map[string]bool) map[string]bool {
	merchants := map[string]bool{}
	for _, c := range approved {
		var w WebhookChange
		if json.Unmarshal(c.Ext, &w) == nil && refs[w.SecretRef] {
			merchants[w.Merchant] = true
		}
	}
	return merchants
}

// retryStagedEvery is how often retryStaged looks for approvals not applied.
var retryStagedEvery = 30 * time.Second

// RequestEndpoint requests a merchant's webhook (rawURL non-empty) or its removal
// for review: the URL and secret are checked now, the secret is staged apart from
// the change, and the change names it.
func (b *Outbox) RequestEndpoint(p registry.Actor, merchant, rawURL, secret, reason string) (*registry.Change, error) {
	if b.reg == nil {
		return nil, errors.New("notify: webhooks are not under review on this outbox (UseReview)")
	}
	if err := b.checkEndpoint(merchant, rawURL, secret); err != nil {
		return nil, err
	}
	if id, err := b.pendingFor(merchant, nil); err != nil {
		return nil, err
	} else if id != "" {
		return nil, fmt.Errorf("%w: %s: change %s of merchant %s's webhook is pending; approve, reject or cancel it first", registry.ErrConflict, OpWebhookPut, id, merchant)
	}
	if rawURL == "" {
		secret = ""
	}
	var r [16]byte
	_, _ = rand.Read(r[:])
	w := WebhookChange{Merchant: merchant, URL: rawURL, SecretRef: hex.EncodeToString(r[:])}
	if secret != "" {
		sum := sha256.Sum256([]byte(secret))
		w.SecretSHA256 = hex.EncodeToString(sum[:8])
	}
	v, _ := json.Marshal(stagedSecret{Secret: secret, At: b.o.Now().UTC()})
	var kc kvsync.Commit
	kc.Set([]byte(pfxStaged+w.SecretRef), v)
	if err := b.sync.Do(context.Background(), func() (statelog.Commit, func(), error) { return kc.Commit, nil, nil }, nil); err != nil {
		return nil, fmt.Errorf("notify: stage the webhook secret of %s: %w", merchant, err)
	}
	ext, _ := json.Marshal(w)
	return b.reg.RequestChange(p, registry.Change{Op: OpWebhookPut, Target: merchant, Reason: reason, Ext: ext})
}

// staged reads the staged secret ref.
func (b *Outbox) staged(ref string) (string, bool, error) {
	if ref == "" {
		return "", false, nil
	}
	var st stagedSecret
	err := b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(pfxStaged + ref))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &st) })
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("notify: read the staged webhook secret %s: %w", ref, err)
	}
	return st.Secret, true, nil
}

// checkChange is the ExtOp's Check: the payload makes a webhook, its secret is
// staged, and the effect shown to the reviewer is the URL before and after and
// the secret's fingerprint.
func (b *Outbox) checkChange(c *registry.Change) (registry.ChangeEffect, error) {
	var w WebhookChange
	if err := json.Unmarshal(c.Ext, &w); err != nil {
		return registry.ChangeEffect{}, fmt.Errorf("%w: %s: payload: %v", registry.ErrInvalid, c.Op, err)
	}
	if w.Merchant != c.Target {
		return registry.ChangeEffect{}, fmt.Errorf("%w: %s: target %q is not the merchant %q", registry.ErrInvalid, c.Op, c.Target, w.Merchant)
	}
	if c.Status == registry.ChangePending {
		// A merchant's webhook changes are approved in the order requested, so
		// that the last approved is the last requested (reconcile relies on it).
		if id, err := b.pendingFor(w.Merchant, c); err != nil {
			return registry.ChangeEffect{}, err
		} else if id != "" {
			return registry.ChangeEffect{}, fmt.Errorf("%w: %s: change %s of merchant %s's webhook was requested earlier and is pending: approve, reject or cancel it first",
				registry.ErrConflict, c.Op, id, w.Merchant)
		}
	}
	secret, ok, err := b.staged(w.SecretRef)
	if err != nil {
		return registry.ChangeEffect{}, err
	}
	if !ok {
		return registry.ChangeEffect{}, fmt.Errorf("%w: %s of %s: its secret is not staged on this node (not replicated here yet: approve it again in a second; or swept a day after the change was decided)",
			registry.ErrConflict, c.Op, w.Merchant)
	}
	if err := b.checkEndpoint(w.Merchant, w.URL, secret); err != nil {
		return registry.ChangeEffect{}, fmt.Errorf("%w: %v", registry.ErrInvalid, err)
	}
	ce := registry.ChangeEffect{Type: "webhook", ID: w.Merchant}
	if old, ok := (*b.eps.Load())[w.Merchant]; ok {
		ce.Before, _ = json.Marshal(map[string]string{"url": old.URL})
	}
	if w.URL == "" {
		ce.After = json.RawMessage("null")
	} else {
		ce.After, _ = json.Marshal(map[string]string{"url": w.URL, "secret_sha256": w.SecretSHA256})
	}
	return ce, nil
}

// applyChange is the ExtOp's Apply, after the approval is committed (on every
// node of a cluster, as the approval reaches it).
func (b *Outbox) applyChange(c *registry.Change) {
	var w WebhookChange
	if err := json.Unmarshal(c.Ext, &w); err != nil {
		b.log.Error().Err(err).Str("change", c.ID).Msg("approved webhook change: bad payload")
		return
	}
	if err := b.reconcile(w.Merchant); err != nil {
		// The staged secret stays: retryStaged, or the next start, applies it.
		b.log.Error().Err(err).Str("change", c.ID).Str("merchant", w.Merchant).Msg("approved webhook change not applied yet; trying again in 30 s")
	}
}

// reconcile puts in force merchant's last approved webhook change if its secret
// is still staged (not applied yet), deleting it in the same commit, and deletes
// the staged secrets of the merchant's earlier approved changes (superseded). It
// decides afresh on each attempt of the commit, after any other node's commit it
// conflicted with, so that approvals applied in any order, by any number of nodes,
// leave the last one in force. Changes are approved in the order requested
// (checkChange), so the last approved is the last in the registry's order.
func (b *Outbox) reconcile(merchant string) error {
	return b.writeEndpoint(func() (*endpointWrite, error) {
		approved, err := b.reg.ApprovedChanges(OpWebhookPut)
		if err != nil {
			return nil, fmt.Errorf("notify: read the approved webhook changes: %w", err)
		}
		var mine []*registry.Change
		var refs []WebhookChange
		for _, c := range approved {
			var w WebhookChange
			if json.Unmarshal(c.Ext, &w) == nil && w.Merchant == merchant {
				mine, refs = append(mine, c), append(refs, w)
			}
		}
		if len(mine) == 0 {
			return nil, nil
		}
		out := &endpointWrite{merchant: merchant}
		for _, w := range refs[:len(refs)-1] {
			if _, ok, err := b.staged(w.SecretRef); err != nil {
				return nil, err
			} else if ok {
				out.del = append(out.del, []byte(pfxStaged+w.SecretRef))
			}
		}
		last, w := mine[len(mine)-1], refs[len(refs)-1]
		secret, ok, err := b.staged(w.SecretRef)
		if err != nil {
			return nil, err
		}
		if ok {
			out.set = true
			out.del = append(out.del, []byte(pfxStaged+w.SecretRef))
			if w.URL != "" {
				by := last.RequestedBy
				if last.ReviewedBy != "" {
					by += ", approved by " + last.ReviewedBy
				}
				out.ep = &Endpoint{URL: w.URL, Secret: secret, By: by, Change: last.ID, At: b.o.Now().UTC()}
			}
		}
		if !out.set && len(out.del) == 0 {
			return nil, nil // in force already
		}
		return out, nil
	}, nil)
}

// pendingFor returns the ID of a pending merchant.webhook change of merchant ("" if
// none); with before, only of one requested before it.
func (b *Outbox) pendingFor(merchant string, before *registry.Change) (string, error) {
	cs, err := b.reg.PendingChanges(OpWebhookPut)
	if err != nil {
		return "", fmt.Errorf("notify: read the pending changes of %s: %w", merchant, err)
	}
	for _, c := range cs {
		if c.Target != merchant || before != nil && (c.ID == before.ID || c.Seq >= before.Seq) {
			continue
		}
		return c.ID, nil
	}
	return "", nil
}
