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
	Changes(f registry.ChangeFilter) ([]*registry.Change, error)
}

// UseReview registers merchant.webhook with reg, then puts in force the approved
// changes whose staged secret is still there (an approval committed, and the
// process stopped before it applied it), and deletes staged secrets that no
// pending change refers to and are older than a day.
func (b *Outbox) UseReview(reg ReviewRegistry) error {
	b.reg = reg
	reg.RegisterOp(OpWebhookPut, registry.ExtOp{Check: b.checkChange, Apply: b.applyChange})
	approved, err := reg.ApprovedChanges(OpWebhookPut)
	if err != nil {
		return fmt.Errorf("notify: read the approved webhook changes: %w", err)
	}
	// Only a merchant's last approved change may be put in force: an older one
	// still staged (its Apply failed, and a newer one was applied since) is
	// superseded, and its secret goes.
	last := map[string]int{}
	var superseded [][]byte
	for i, c := range approved {
		var w WebhookChange
		if json.Unmarshal(c.Ext, &w) != nil {
			continue
		}
		if j, ok := last[w.Merchant]; ok {
			var old WebhookChange
			_ = json.Unmarshal(approved[j].Ext, &old)
			if _, ok, err := b.staged(old.SecretRef); err != nil {
				return err
			} else if ok {
				superseded = append(superseded, []byte(pfxStaged+old.SecretRef))
			}
		}
		last[w.Merchant] = i
	}
	for _, i := range last {
		c := approved[i]
		var w WebhookChange
		_ = json.Unmarshal(c.Ext, &w)
		if _, ok, err := b.staged(w.SecretRef); err != nil {
			return err
		} else if ok {
			b.log.Warn().Str("change", c.ID).Str("merchant", w.Merchant).Msg("webhook change approved before the last stop, applied now")
			if err := b.apply(c, w); err != nil {
				return err
			}
		}
	}
	pending, err := reg.Changes(registry.ChangeFilter{Status: registry.ChangePending, Limit: 100000})
	if err != nil {
		return fmt.Errorf("notify: read the pending changes: %w", err)
	}
	keep := map[string]bool{}
	for _, c := range pending {
		var w WebhookChange
		if c.Op == OpWebhookPut && json.Unmarshal(c.Ext, &w) == nil {
			keep[w.SecretRef] = true
		}
	}
	stale := superseded
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
	}
	return nil
}

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
	secret, ok, err := b.staged(w.SecretRef)
	if err != nil {
		return registry.ChangeEffect{}, err
	}
	if !ok {
		return registry.ChangeEffect{}, fmt.Errorf("%w: %s of %s: its secret is not staged on this node (applied already, swept a day after its change was decided, or not replicated here yet): request it again",
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

// applyChange is the ExtOp's Apply, after the approval is committed.
func (b *Outbox) applyChange(c *registry.Change) {
	var w WebhookChange
	if err := json.Unmarshal(c.Ext, &w); err != nil {
		b.log.Error().Err(err).Str("change", c.ID).Msg("approved webhook change: bad payload")
		return
	}
	if err := b.apply(c, w); err != nil {
		// The staged secret stays: the next start applies it (UseReview).
		b.log.Error().Err(err).Str("change", c.ID).Str("merchant", w.Merchant).Msg("approved webhook change not applied; the next start applies it")
	}
}

// apply puts an approved change in force and deletes its staged secret in the
// same commit, so that a secret still staged means a change not applied yet.
func (b *Outbox) apply(c *registry.Change, w WebhookChange) error {
	secret, ok, err := b.staged(w.SecretRef)
	if err != nil || !ok {
		return err // applied already (by another node's start, say)
	}
	by := c.RequestedBy
	if c.ReviewedBy != "" {
		by += ", approved by " + c.ReviewedBy
	}
	// Every node of a cluster applies an approval as it reaches it: the first
	// commit deletes the staged secret, and a node whose commit conflicted with it
	// finds the secret gone when it tries again.
	still := func() bool {
		_, ok, err := b.staged(w.SecretRef)
		return ok || err != nil
	}
	err = b.putEndpoint(w.Merchant, w.URL, secret, by, c.ID, c.Reason, [][]byte{[]byte(pfxStaged + w.SecretRef)}, still, false)
	if errors.Is(err, errSkipped) {
		return nil
	}
	return err
}
