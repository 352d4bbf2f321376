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

func (s *sealer) seal(pan string) ([]byte, error) {
	b, err := s.s.Seal([]byte(pan), []byte(panSealAD))
	if err != nil {
		return nil, fmt.Errorf("seal PAN: %w", err)
	}
	return b, nil
}

// sealICC seals icc, an advice's ICC data (hex), under the PAN seal's key with its
// own additional data.
func (s *sealer) sealICC(icc string) ([]byte, error) {
	b, err := s.s.Seal([]byte(icc), []byte(iccSealAD))
	if err != nil {
		return nil, fmt.Errorf("seal ICC data: %w", err)
	}
	return b, nil
}

// openICC opens what sealICC sealed.
func (s *sealer) openICC(b []byte) (string, error) {
	icc, err := s.s.Open(b, []byte(iccSealAD))
	if err != nil {
		return "", fmt.Errorf("open sealed ICC data: %w", err)
	}
	return string(icc), nil
}

// sealExpiry seals exp, the card's expiry (DE 14, YYMM) of an advice, under the PAN
// seal's key with its own additional data: nil for a card without one.
func (s *sealer) sealExpiry(exp string) ([]byte, error) {
	if exp == "" {
		return nil, nil
	}
	b, err := s.s.Seal([]byte(exp), []byte(expirySealAD))
	if err != nil {
		return nil, fmt.Errorf("seal card expiry: %w", err)
	}
	return b, nil
}

// openExpiry opens what sealExpiry sealed.
func (s *sealer) openExpiry(b []byte) (string, error) {
	exp, err := s.s.Open(b, []byte(expirySealAD))
	if err != nil {
		return "", fmt.Errorf("open sealed card expiry: %w", err)
	}
	return string(exp), nil
}

func (s *sealer) open(b []byte) (string, error) {
	pan, err := s.s.Open(b, []byte(panSealAD))
	if err != nil {
		return "", fmt.Errorf("open sealed PAN: %w", err)
	}
	return string(pan), nil
}
