package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync"
	"github.com/switchyard/switchyard/switch/internal/seal"
)

// The webhook secrets at rest. A secret is an HMAC key (it signs the notices), so
// it is kept only under a protecting key, as the card data rules want of keys: the
// webhooks (notify/ep/) and the staged secrets of requested changes
// (notify/staged/) hold it sealed with AES-256-GCM (switch/internal/seal) under
// a key derived from the card hash key with secretSealLabel, in the database and
// in the commits shared through the cluster's state log. Every node of a cluster
// has the same card hash key and opens what another sealed. The clear secret is
// only in memory, where the outbox signs notices with it.
//
// The additional data binds a sealed secret to its merchant and its use
// (sealAD): a webhook's sealed secret copied to another merchant's webhook, or
// to a staged secret, does not open.
//
// A sealed secret that does not open (the node's card hash key is not the one it
// was sealed under, or the value was altered) does not stop the outbox: the
// merchant's webhook is held. It is known (its notices are queued) but nothing is
// posted: each attempt fails with the reason (Endpoint.held, in the delivery
// log's last error and Log.Held), the reason is logged at Error when the webhook
// is loaded or arrives from another node, and the notices go out once the node
// has the right key (a restart) or a new webhook is approved.
const (
	secretSealLabel        = "switchyard webhook secret seal v1"
	secretFingerprintLabel = "switchyard webhook secret fingerprint v1"
)

// The additional data's purposes.
const (
	adEndpoint = "notify endpoint secret"
	adStaged   = "notify staged secret"
	adPrevious = "notify endpoint previous secret" // the secret a rotation replaced (rotation.go)
)

// sealAD is the additional data of a secret sealed for purpose: the purpose, the
// merchant and the other parts (a staged secret's reference), each preceded by
// its length.
func sealAD(purpose, merchant string, more ...string) []byte {
	var b []byte
	for _, s := range append([]string{purpose, merchant}, more...) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// endpointRecord is an Endpoint as stored (notify/ep/) and shared through the
// state log.
type endpointRecord struct {
	URL string `json:"url"`
	// Secret is the clear secret that versions before sealing wrote: read (and
	// rewritten sealed by resealEndpoints), never written.
	Secret string `json:"secret,omitempty"`
	// Sealed is the secret sealed for the merchant's webhook.
	Sealed []byte    `json:"secret_sealed,omitempty"`
	By     string    `json:"by"`
	Change string    `json:"change,omitempty"`
	At     time.Time `json:"at"`
	// PrevSealed is the secret that Sealed replaced, sealed for the merchant's
	// webhook's previous secret (adPrevious), kept until PrevUntil (rotation.go).
	PrevSealed []byte     `json:"previous_secret_sealed,omitempty"`
	PrevUntil  *time.Time `json:"previous_secret_until,omitempty"`
}

// newSecrets derives the outbox's sealing and fingerprint keys from the card hash
// key.
func (b *Outbox) newSecrets(cardHashKey []byte) error {
	if len(cardHashKey) < 16 {
		return errors.New("notify: Options.CardHashKey is required (at least 16 bytes): the webhook secrets are sealed under a key derived from it")
	}
	s, err := seal.New(cardHashKey, secretSealLabel)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	b.secrets, b.fpKey = s, seal.Key(cardHashKey, secretFingerprintLabel)
	return nil
}

// fingerprint is the secret's fingerprint shown to the reviewer of a change: the
// first 8 bytes of HMAC-SHA256 under a key derived from the card hash key, in hex.
// Two requests with one secret show one fingerprint; unlike an unkeyed hash, it
// lets nobody without the key confirm a guessed secret.
func (b *Outbox) fingerprint(secret string) string {
	m := hmac.New(sha256.New, b.fpKey)
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// endpointValue is the stored form of merchant's webhook ep, its secret sealed.
func (b *Outbox) endpointValue(merchant string, ep *Endpoint) ([]byte, error) {
	sealed, err := b.secrets.Seal([]byte(ep.Secret), sealAD(adEndpoint, merchant))
	if err != nil {
		return nil, fmt.Errorf("notify: seal the webhook secret of %s: %w", merchant, err)
	}
	r := endpointRecord{URL: ep.URL, Sealed: sealed, By: ep.By, Change: ep.Change, At: ep.At}
	if ep.prev != "" {
		if r.PrevSealed, err = b.secrets.Seal([]byte(ep.prev), sealAD(adPrevious, merchant)); err != nil {
			return nil, fmt.Errorf("notify: seal the previous webhook secret of %s: %w", merchant, err)
		}
		until := ep.prevUntil.UTC()
		r.PrevUntil = &until
	}
	return json.Marshal(r)
}

// openEndpoint decodes merchant's stored webhook v. clear is true when the record
// holds its secret in the clear (written before sealing). A sealed secret that
// does not open makes a held webhook (Endpoint.held says why), not an error: the
// error is for a record that is not one.
func (b *Outbox) openEndpoint(merchant string, v []byte) (ep Endpoint, clear bool, err error) {
	var r endpointRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return Endpoint{}, false, err
	}
	ep = Endpoint{URL: r.URL, By: r.By, Change: r.Change, At: r.At}
	switch {
	case r.Sealed != nil:
		s, err := b.secrets.Open(r.Sealed, sealAD(adEndpoint, merchant))
		if err != nil {
			ep.held = fmt.Sprintf("webhook of merchant %s held: its secret: %v (is this node's card hash key the one it was sealed under?); its notices wait", merchant, err)
			return ep, false, nil
		}
		ep.Secret = string(s)
	default:
		ep.Secret, clear = r.Secret, r.Secret != ""
	}
	if r.PrevSealed != nil && r.PrevUntil != nil {
		ep.prevUntil = *r.PrevUntil
		s, err := b.secrets.Open(r.PrevSealed, sealAD(adPrevious, merchant))
		switch {
		case err != nil:
			b.log.Error().Err(err).Str("merchant", merchant).
				Msg("the webhook's previous secret does not open: its notices are signed with the current one only")
		case ep.held == "":
			ep.prev = string(s)
		}
	}
	return ep, clear, nil
}

// logHeld logs at Error each held webhook of eps.
func (b *Outbox) logHeld(eps map[string]*Endpoint) {
	for m, ep := range eps {
		if ep != nil && ep.held != "" {
			b.log.Error().Str("merchant", m).Str("webhook", ep.URL).Msg(ep.held)
		}
	}
}

// resealEndpoints rewrites sealed, in one commit of the webhooks (shared with the
// other nodes like any), the webhooks whose secret is stored in the clear: those
// a version before sealing wrote, or a node not upgraded yet. It returns how many.
// Called at the start (UseReview) and, while some are left (resealDue), by Run
// every retryStagedEvery.
func (b *Outbox) resealEndpoints() (int, error) {
	b.resealDue.Store(false)
	var n int
	err := b.sync.Do(context.Background(), func() (statelog.Commit, func(), error) {
		n = 0
		var kc kvsync.Commit
		err := b.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxEndpoint), PrefetchValues: true})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				m := strings.TrimPrefix(string(it.Item().Key()), pfxEndpoint)
				var r endpointRecord
				if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
					return fmt.Errorf("%s: %w", it.Item().Key(), err)
				}
				if r.Secret == "" {
					continue
				}
				if r.Sealed == nil {
					sealed, err := b.secrets.Seal([]byte(r.Secret), sealAD(adEndpoint, m))
					if err != nil {
						return fmt.Errorf("seal the webhook secret of %s: %w", m, err)
					}
					r.Sealed = sealed
				}
				r.Secret = ""
				v, err := json.Marshal(r)
				if err != nil {
					return err
				}
				kc.Set(it.Item().KeyCopy(nil), v)
				n++
			}
			return nil
		})
		return kc.Commit, nil, err
	}, nil)
	if err != nil {
		b.resealDue.Store(true)
		return 0, fmt.Errorf("notify: reseal the webhook secrets stored in the clear: %w", err)
	}
	if n > 0 {
		b.log.Info().Int("webhooks", n).Msg("webhook secrets stored in the clear (before sealing) rewritten sealed")
	}
	return n, nil
}
