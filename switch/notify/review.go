package notify

import (
	"context"
	"crypto/rand"
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
// decided: + ref -> stagedSecret, the secret sealed (secrets.go). The change
// itself carries only the reference and a fingerprint, so the secret is in no
// change list, preview or oplog entry.
const pfxStaged = "notify/staged/"

// stagedSweepAge is how old a staged secret that no change refers to must be
// before it is deleted (its request failed after the secret was staged; or its
// change has not reached this node yet, which a day leaves time for). The secret
// of a rejected or cancelled change is deleted within retryStagedEvery.
const stagedSweepAge = 24 * time.Hour

// WebhookChange is the payload (registry.Change.Ext) of a merchant.webhook change.
type WebhookChange struct {
	Merchant string `json:"merchant"`
	URL      string `json:"url"` // empty: remove the webhook
	// SecretRef names the staged secret (and, for a removal, its marker).
	SecretRef string `json:"secret_ref"`
	// SecretFingerprint is the secret's keyed fingerprint (Outbox.fingerprint),
	// for the reviewer to compare with another request's or the webhook in
	// force; empty for a removal.
	SecretFingerprint string `json:"secret_fingerprint,omitempty"`
	// SecretSHA256 is what changes requested before the keyed fingerprint
	// carried: the first 8 bytes of the secret's SHA-256, in hex. Read, and shown
	// for such a change still pending; never written.
	SecretSHA256 string `json:"secret_sha256,omitempty"`
}

// stagedSecret is a staged secret as stored.
type stagedSecret struct {
	// Secret is the clear secret that versions before sealing wrote: read (and
	// rewritten sealed by tidyStaged), never written.
	Secret string `json:"secret,omitempty"`
	// Sealed is the secret sealed for the merchant's change and its reference;
	// empty with Secret for a removal's marker.
	Sealed []byte    `json:"secret_sealed,omitempty"`
	At     time.Time `json:"at"`
}

// ReviewRegistry is what the outbox needs of the registry for reviewed webhooks.
type ReviewRegistry interface {
	RegisterOp(op registry.Op, h registry.ExtOp)
	RequestChange(p registry.Actor, c registry.Change) (*registry.Change, error)
	ApprovedChanges(ops ...registry.Op) ([]*registry.Change, error)
	PendingChanges(ops ...registry.Op) ([]*registry.Change, error)
	ClosedChanges(ops ...registry.Op) ([]*registry.Change, error)
}

// UseReview registers merchant.webhook with reg, then puts in force each
// merchant's last approved change whose staged secret is still there (an
// approval whose application a stop or an error cut off), deletes the staged
// secrets no change will use (tidyStaged), and rewrites sealed the webhooks and
// staged secrets that a version before sealing stored in the clear. Call it
// once the outbox follows the other nodes' commits (in a cluster).
func (b *Outbox) UseReview(reg ReviewRegistry) error {
	b.reg = reg
	reg.RegisterOp(OpWebhookPut, registry.ExtOp{Check: b.checkChange, Apply: b.applyChange})
	approved, err := reg.ApprovedChanges(OpWebhookPut)
	if err != nil {
		return fmt.Errorf("notify: read the approved webhook changes: %w", err)
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
	// Neither is fatal: a start with the state log unavailable would otherwise
	// fail; Run tries again every 30 s.
	if _, err := b.resealEndpoints(); err != nil {
		b.log.Error().Err(err).Msg("webhook secrets stored in the clear not resealed at the start; trying again in 30 s")
	}
	if err := b.tidyStaged(); err != nil {
		b.log.Error().Err(err).Msg("staged webhook secrets not tidied at the start; trying again in 30 s")
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

// retryStaged runs tend every retryStagedEvery until ctx ends.
func (b *Outbox) retryStaged(ctx context.Context) {
	tick := time.NewTicker(retryStagedEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			b.tend()
		}
	}
}

// tend rewrites sealed the webhooks stored in the clear if some are left (their
// commit failed at the start, or a node not upgraded yet wrote one), drops the
// previous secrets past their overlap (dropPrevious), and, under
// review, when secrets are staged: reconciles the merchants that have one of an
// approved change (an approval whose Apply failed, the state log unavailable
// say, is put in force without waiting for a restart), and deletes those no
// change will use (tidyStaged), among them those of rejected or cancelled
// changes. The registry calls an operation's owner on an approval only, not on a
// rejection or a cancellation, hence the sweep.
func (b *Outbox) tend() {
	if b.resealDue.Load() {
		if _, err := b.resealEndpoints(); err != nil {
			b.log.Error().Err(err).Msg("webhook secrets stored in the clear not resealed yet; trying again")
		}
	}
	if _, err := b.dropPrevious(); err != nil {
		b.log.Error().Err(err).Msg("previous webhook secrets past their overlap not dropped yet; trying again")
	}
	if b.reg == nil {
		return
	}
	refs, err := b.stagedRefs()
	if err != nil || len(refs) == 0 {
		return
	}
	if approved, err := b.reg.ApprovedChanges(OpWebhookPut); err == nil {
		if err := b.reconcileStaged(stagedMerchants(approved, refs)); err != nil {
			b.log.Warn().Err(err).Msg("approved webhook changes not put in force yet; trying again")
		}
	}
	if err := b.tidyStaged(); err != nil {
		b.log.Warn().Err(err).Msg("staged webhook secrets not tidied yet; trying again")
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

// tidyStaged deletes the staged secrets that no change will use and rewrites
// sealed those stored in the clear, in one commit of the webhooks decided afresh
// on each attempt (after another node's commit it conflicted with): the secret of
// a rejected or cancelled change is deleted (a decided change stays decided); one
// that no change refers to is deleted once older than stagedSweepAge; one of a
// pending or approved change that a version before sealing staged in the clear
// is rewritten sealed (one that no change refers to yet stays in the clear until
// its change arrives or the day is past).
func (b *Outbox) tidyStaged() error {
	var deleted, resealed int
	err := b.sync.Do(context.Background(), func() (statelog.Commit, func(), error) {
		deleted, resealed = 0, 0
		staged := map[string]stagedSecret{}
		err := b.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxStaged), PrefetchValues: true})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				var st stagedSecret
				if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &st) }); err != nil {
					return fmt.Errorf("%s: %w", it.Item().Key(), err)
				}
				staged[strings.TrimPrefix(string(it.Item().Key()), pfxStaged)] = st
			}
			return nil
		})
		if err != nil || len(staged) == 0 {
			return statelog.Commit{}, nil, err
		}
		open := map[string]WebhookChange{} // by reference: pending or approved
		closed := map[string]bool{}
		for i, read := range []func(...registry.Op) ([]*registry.Change, error){b.reg.PendingChanges, b.reg.ApprovedChanges, b.reg.ClosedChanges} {
			cs, err := read(OpWebhookPut)
			if err != nil {
				return statelog.Commit{}, nil, fmt.Errorf("read the webhook changes: %w", err)
			}
			for _, c := range cs {
				var w WebhookChange
				if json.Unmarshal(c.Ext, &w) != nil {
					continue
				}
				if i < 2 {
					open[w.SecretRef] = w
				} else {
					closed[w.SecretRef] = true
				}
			}
		}
		var kc kvsync.Commit
		for ref, st := range staged {
			w, known := open[ref]
			switch {
			case !known && (closed[ref] || b.o.Now().Sub(st.At) > stagedSweepAge):
				kc.Delete([]byte(pfxStaged + ref))
				deleted++
			case known && st.Secret != "":
				sealed, err := b.secrets.Seal([]byte(st.Secret), sealAD(adStaged, w.Merchant, ref))
				if err != nil {
					return statelog.Commit{}, nil, fmt.Errorf("seal the staged secret of %s: %w", w.Merchant, err)
				}
				v, _ := json.Marshal(stagedSecret{Sealed: sealed, At: st.At})
				kc.Set([]byte(pfxStaged+ref), v)
				resealed++
			}
		}
		return kc.Commit, nil, nil
	}, nil)
	if err != nil {
		return fmt.Errorf("notify: tidy the staged webhook secrets: %w", err)
	}
	if deleted > 0 {
		b.log.Info().Int("secrets", deleted).Msg("staged webhook secrets of rejected, cancelled or failed requests deleted")
	}
	if resealed > 0 {
		b.log.Info().Int("secrets", resealed).Msg("staged webhook secrets stored in the clear (before sealing) rewritten sealed")
	}
	return nil
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
	if pr := registry.NoteProblem(reason); pr != "" {
		// Refused before the secret is staged (RequestChange would refuse it after).
		return nil, fmt.Errorf("%w: request of %s: reason: %s; free text takes any script, tabs and line breaks, not characters that reorder or hide text",
			registry.ErrInvalid, OpWebhookPut, pr)
	}
	if id, err := b.pendingFor(merchant, nil); err != nil {
		return nil, err
	} else if id != "" {
		return nil, fmt.Errorf("%w: %s: change %s of merchant %s's webhook is pending; approve, reject or cancel it first", registry.ErrConflict, OpWebhookPut, id, merchant)
	}
	if err := b.webhookUnchanged(merchant, rawURL, secret); err != nil {
		return nil, err
	}
	if rawURL == "" {
		secret = ""
	}
	var r [16]byte
	_, _ = rand.Read(r[:])
	w := WebhookChange{Merchant: merchant, URL: rawURL, SecretRef: hex.EncodeToString(r[:])}
	st := stagedSecret{At: b.o.Now().UTC()}
	if secret != "" {
		w.SecretFingerprint = b.fingerprint(secret)
		sealed, err := b.secrets.Seal([]byte(secret), sealAD(adStaged, merchant, w.SecretRef))
		if err != nil {
			return nil, fmt.Errorf("notify: seal the webhook secret of %s: %w", merchant, err)
		}
		st.Sealed = sealed
	}
	v, _ := json.Marshal(st)
	var kc kvsync.Commit
	kc.Set([]byte(pfxStaged+w.SecretRef), v)
	if err := b.sync.Do(context.Background(), func() (statelog.Commit, func(), error) { return kc.Commit, nil, nil }, nil); err != nil {
		return nil, fmt.Errorf("notify: stage the webhook secret of %s: %w", merchant, err)
	}
	ext, _ := json.Marshal(w)
	return b.reg.RequestChange(p, registry.Change{Op: OpWebhookPut, Target: merchant, Reason: reason, Ext: ext})
}

// webhookUnchanged refuses (registry.NothingToChange, registry.ErrInvalid) the
// request of merchant's webhook rawURL with secret when the webhook in force is
// already that URL with that secret: a reviewer would approve a change of nothing.
// It is called before the secret is staged, so that a refused request leaves
// nothing staged. The secrets compare by their fingerprints, which the error
// shows, never the secret. A new webhook and a removal are changes; so is a webhook
// whose secret does not open on this node (held): setting it again repairs it.
func (b *Outbox) webhookUnchanged(merchant, rawURL, secret string) error {
	old, ok := (*b.eps.Load())[merchant]
	if rawURL == "" || !ok || old.held != "" {
		return nil
	}
	return registry.NothingToChange("webhook of merchant "+merchant, []registry.Field{
		{Name: "url", Before: old.URL, After: rawURL},
		{Name: "secret_fingerprint", Before: b.fingerprint(old.Secret), After: b.fingerprint(secret)},
	})
}

// readStaged reads the staged secret ref as stored.
func (b *Outbox) readStaged(ref string) (stagedSecret, bool, error) {
	var st stagedSecret
	if ref == "" {
		return st, false, nil
	}
	err := b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(pfxStaged + ref))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &st) })
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return st, false, nil
	case err != nil:
		return st, false, fmt.Errorf("notify: read the staged webhook secret %s: %w", ref, err)
	}
	return st, true, nil
}

// isStaged says whether the secret ref is staged.
func (b *Outbox) isStaged(ref string) (bool, error) {
	_, ok, err := b.readStaged(ref)
	return ok, err
}

// staged returns the staged secret of change w, opened ("" for a removal). A
// sealed secret that does not open is an error naming the merchant.
func (b *Outbox) staged(w WebhookChange) (string, bool, error) {
	st, ok, err := b.readStaged(w.SecretRef)
	if err != nil || !ok {
		return "", ok, err
	}
	if st.Sealed == nil {
		return st.Secret, true, nil // staged before sealing
	}
	s, err := b.secrets.Open(st.Sealed, sealAD(adStaged, w.Merchant, w.SecretRef))
	if err != nil {
		return "", true, fmt.Errorf("notify: the staged secret of merchant %s's webhook change: %w (is this node's card hash key the one of the node that staged it?)",
			w.Merchant, err)
	}
	return string(s), true, nil
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
	secret, ok, err := b.staged(w)
	if err != nil {
		return registry.ChangeEffect{}, fmt.Errorf("%w: %s: %v", registry.ErrInvalid, c.Op, err)
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
		before := map[string]string{"url": old.URL}
		if old.held == "" {
			before["secret_fingerprint"] = b.fingerprint(old.Secret)
		}
		ce.Before, _ = json.Marshal(before)
	}
	switch {
	case w.URL == "":
		ce.After = json.RawMessage("null")
	case w.SecretFingerprint == "" && w.SecretSHA256 != "":
		// Requested before the keyed fingerprint: shown as it was.
		ce.After, _ = json.Marshal(map[string]string{"url": w.URL, "secret_sha256": w.SecretSHA256})
	default:
		ce.After, _ = json.Marshal(map[string]string{"url": w.URL, "secret_fingerprint": w.SecretFingerprint})
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
			if ok, err := b.isStaged(w.SecretRef); err != nil {
				return nil, err
			} else if ok {
				out.del = append(out.del, []byte(pfxStaged+w.SecretRef))
			}
		}
		last, w := mine[len(mine)-1], refs[len(refs)-1]
		secret, ok, err := b.staged(w)
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
