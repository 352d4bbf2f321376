package apps

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/internal/seal"
)

// The token key at rest. The key of the download tokens is an HMAC key (whoever
// has it makes a token for any terminal and package), so it is kept only under a
// protecting key, as the card data rules want of keys: Badger holds it under
// keySealed, sealed with AES-256-GCM (switch/internal/seal) under a key derived
// from the card hash key with tokenSealLabel, with keySealed as additional data.
// The value is the seal's output as it is (nonce, ciphertext, tag); another format
// would take another Badger key or label. The clear key is only in memory.
//
// Versions before sealing kept it in the clear under keySecret. At the start the
// clear key is written sealed and keySecret deleted in one transaction, logged at
// Info: the key itself does not change, so the tokens issued before stay valid.
// When both are there (a version before sealing ran on the data directory after
// this one), the clear key is the one last in use: it is the one sealed.
//
// A sealed key that does not open (the node's card hash key is not the one it was
// sealed under, or the value was altered) does not stop the start: a new key is
// made, stored sealed in its place and the reason logged at Error. The tokens
// issued under the old key are refused (401); they live Options.TokenTTL (24 h),
// and a terminal gets a new one with its next offer, at its next sign-on or echo.
// Failing the start instead would stop the payments for the sake of a key whose
// loss costs an interrupted download.
const tokenSealLabel = "switchyard app token key seal v1"

// tokenKeyBytes is the size of a new token key.
const tokenKeyBytes = 32

// loadTokenKey sets m.token from Badger (in txn, the load's transaction): the
// sealed key, or the clear key of a version before sealing, which it rewrites
// sealed; a new key when there is none or the sealed one does not open.
func (m *Manager) loadTokenKey(txn *badger.Txn) error {
	s, err := seal.New(m.opts.CardHashKey, tokenSealLabel)
	if err != nil {
		return fmt.Errorf("apps: %w", err)
	}
	clearKey, err := valueOf(txn, keySecret)
	if err != nil {
		return err
	}
	sealed, err := valueOf(txn, keySealed)
	if err != nil {
		return err
	}
	ad := []byte(keySealed)
	switch {
	case len(clearKey) > 0:
		m.token = clearKey
		if err := m.storeTokenKey(txn, s); err != nil {
			return err
		}
		ev := m.log.Info()
		if sealed != nil {
			ev = ev.Bool("replaced_sealed", true)
		}
		ev.Msg("apps: the download token key, stored in the clear by an earlier version, is now stored sealed under the card hash key; the tokens issued before stay valid")
		return nil
	case sealed != nil:
		k, err := s.Open(sealed, ad)
		if err == nil && len(k) > 0 {
			m.token = k
			return nil
		}
		if err == nil {
			err = errors.New("empty key")
		}
		m.log.Error().Err(err).Msg("apps: the download token key stored sealed does not open: is this node's card hash key (security.card_hash_key_hex or _file) the one it was sealed under? " +
			"A new token key is made and stored: the download tokens issued before are refused, and terminals get new ones at their next sign-on or echo")
	}
	m.token = make([]byte, tokenKeyBytes)
	if _, err := rand.Read(m.token); err != nil {
		return fmt.Errorf("apps: make the download token key: %w", err)
	}
	return m.storeTokenKey(txn, s)
}

// storeTokenKey writes m.token sealed under keySealed and deletes the clear key.
func (m *Manager) storeTokenKey(txn *badger.Txn, s *seal.Sealer) error {
	v, err := s.Seal(m.token, []byte(keySealed))
	if err != nil {
		return fmt.Errorf("apps: seal the download token key: %w", err)
	}
	if err := txn.Set([]byte(keySealed), v); err != nil {
		return fmt.Errorf("apps: store the download token key: %w", err)
	}
	if err := txn.Delete([]byte(keySecret)); err != nil {
		return fmt.Errorf("apps: delete the clear download token key: %w", err)
	}
	return nil
}

// valueOf returns a copy of the value of key in txn, nil when there is none.
func valueOf(txn *badger.Txn, key string) ([]byte, error) {
	it, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("apps: read %s: %w", key, err)
	}
	v, err := it.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("apps: read %s: %w", key, err)
	}
	return v, nil
}
