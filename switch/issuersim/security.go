package issuersim

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/keys"
)

// Security is the issuer's own HSM and key store (in memory) with the demo issuer zone
// keys: it verifies PINs under the zone PIN key (the demo cards' PIN is 1234) and takes
// new zone PIN keys sent under the zone master key.
type Security struct {
	db    *badger.DB
	h     *hsm.Software
	store *keys.Store
	// ZPK and ZMK are the key IDs of the zone keys.
	ZPK, ZMK string
}

// NewDemoSecurity opens an in-memory key store with the public demo keys.
func NewDemoSecurity() (*Security, error) {
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		return nil, fmt.Errorf("issuer keys: %w", err)
	}
	store, err := keys.NewStore(db, keys.Options{Demo: true})
	if err != nil {
		db.Close()
		return nil, err
	}
	ctx := context.Background()
	h, err := hsm.NewSoftware(ctx, store, keys.DemoLMK(), hsm.Options{})
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := keys.LoadDemo(ctx, store, h); err != nil {
		db.Close()
		return nil, err
	}
	return &Security{db: db, h: h, store: store, ZPK: keys.DemoIssuer + ".ZPK", ZMK: keys.DemoIssuer + ".ZMK"}, nil
}

// VerifyPIN checks a format 0 PIN block under the zone PIN key against the demo PIN.
func (s *Security) VerifyPIN(pan string, block [8]byte) (bool, error) {
	err := s.h.VerifyPIN(context.Background(), hsm.VerifyPINRequest{Key: hsm.KeyRef{ID: s.ZPK}, Format: pinblock.Format0,
		PINBlock: block[:], PAN: pan, ReferencePIN: []byte("1234")})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, hsm.ErrPINMismatch), errors.Is(err, hsm.ErrInput):
		return false, nil
	}
	return false, err
}

// KeyChange imports a new zone PIN key sent as "HEXKEY:KCV" under the zone master key;
// the previous one stays valid for the grace period.
func (s *Security) KeyChange(wp string) error {
	_, err := s.h.ImportKey(hsm.WithActor(context.Background(), "issuer-sim"), hsm.ImportKeyRequest{
		KeySpec: hsm.KeySpec{ID: s.ZPK, Type: hsm.ZPK, Owner: keys.DemoIssuer, Grace: KeyGrace},
		KEK:     hsm.KeyRef{ID: s.ZMK}, ECB: wp})
	return err
}

// KCV returns the check value of the current zone PIN key.
func (s *Security) KCV() (string, error) {
	k, err := s.h.KCV(context.Background(), hsm.KeyRef{ID: s.ZPK})
	return k.KCV, err
}

// Close releases the key store.
func (s *Security) Close() error { return s.db.Close() }
