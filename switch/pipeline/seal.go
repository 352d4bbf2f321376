package pipeline

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// sealer encrypts PANs that must wait on disk (in stand-in advices) with AES-256-GCM
// under a key derived from the card hash key (HMAC-SHA256 with a purpose label), so the
// store-and-forward queue never holds a clear PAN.
type sealer struct{ aead cipher.AEAD }

func newSealer(cardHashKey []byte) (*sealer, error) {
	m := hmac.New(sha256.New, cardHashKey)
	m.Write([]byte("switchyard pan seal v1"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(pan string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(pan)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal PAN: %w", err)
	}
	return s.aead.Seal(nonce, nonce, []byte(pan), []byte("pan")), nil
}

func (s *sealer) open(b []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(b) < n {
		return "", errors.New("sealed PAN too short")
	}
	pan, err := s.aead.Open(nil, b[:n], b[n:], []byte("pan"))
	if err != nil {
		return "", fmt.Errorf("open sealed PAN: %w", err)
	}
	return string(pan), nil
}
