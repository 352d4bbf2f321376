package pipeline

import (
	"fmt"

	"github.com/switchyard/switchyard/switch/internal/seal"
)

// PAN sealing's label and additional data: those of the first version, which
// sealed the stand-in advices and completions on disk; they must not change.
const (
	panSealLabel = "switchyard pan seal v1"
	panSealAD    = "pan"
	// iccSealAD is the additional data of an advice's sealed ICC data (DE 55), so
	// that neither opens as the other.
	iccSealAD = "icc"
	// expirySealAD is the additional data of an advice's sealed card expiry (DE 14).
	expirySealAD = "expiry"
)

// DerivedKey returns the 32-byte key derived from the card hash key for purpose
// label (seal.Key: HMAC-SHA256 of the label under the card hash key): the same on
// every node of a cluster and after a restart, and of no use to tell the card hash
// key, so that a component keying its own hash (the cup adapter's content
// fingerprints, cup.ContentKeyLabel) need not hold the card hash key itself.
func (p *Pipeline) DerivedKey(label string) []byte { return seal.Key(p.cfg.CardHashKey, label) }

// sealer encrypts the card data that must wait on disk (an advice's PAN, expiry and
// chip data, in the store-and-forward queue and an offline capture's record) with
// AES-256-GCM under a key derived from the card hash key (HMAC-SHA256 with a purpose
// label), each with its own additional data, so that neither holds them clear.
type sealer struct{ s *seal.Sealer }

func newSealer(cardHashKey []byte) (*sealer, error) {
	s, err := seal.New(cardHashKey, panSealLabel)
	if err != nil {
		return nil, err
	}
	return &sealer{s: s}, nil
}

// sealAs seals v under the PAN seal's key with ad as its additional data, so that
// no sealed value opens as another kind; what names the kind in an error.
func (s *sealer) sealAs(v, ad, what string) ([]byte, error) {
	b, err := s.s.Seal([]byte(v), []byte(ad))
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", what, err)
	}
	return b, nil
}

// openAs opens what sealAs sealed with ad.
func (s *sealer) openAs(b []byte, ad, what string) (string, error) {
	v, err := s.s.Open(b, []byte(ad))
	if err != nil {
		return "", fmt.Errorf("open sealed %s: %w", what, err)
	}
	return string(v), nil
}

func (s *sealer) seal(pan string) ([]byte, error) { return s.sealAs(pan, panSealAD, "PAN") }

func (s *sealer) open(b []byte) (string, error) { return s.openAs(b, panSealAD, "PAN") }

// sealICC seals icc, an advice's ICC data (hex), under the PAN seal's key with its
// own additional data.
func (s *sealer) sealICC(icc string) ([]byte, error) { return s.sealAs(icc, iccSealAD, "ICC data") }

// openICC opens what sealICC sealed.
func (s *sealer) openICC(b []byte) (string, error) { return s.openAs(b, iccSealAD, "ICC data") }

// sealExpiry seals exp, the card's expiry (DE 14, YYMM) of an advice, under the PAN
// seal's key with its own additional data: nil for a card without one.
func (s *sealer) sealExpiry(exp string) ([]byte, error) {
	if exp == "" {
		return nil, nil
	}
	return s.sealAs(exp, expirySealAD, "card expiry")
}

// openExpiry opens what sealExpiry sealed.
func (s *sealer) openExpiry(b []byte) (string, error) {
	return s.openAs(b, expirySealAD, "card expiry")
}
