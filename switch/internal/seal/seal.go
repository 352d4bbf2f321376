// Package seal encrypts small values that the switch must keep at rest, such as
// the PANs of stand-in advices and the secrets of merchants' webhooks, so that
// neither its database nor the cluster's state log holds them in the clear.
//
// A Sealer encrypts with AES-256-GCM under a key derived from a root key (the
// switch's card hash key) and a purpose label: Key(root, label) is
// HMAC-SHA256(root, label). Each use has its own label, so a value sealed for one
// purpose does not open for another, and every node of a cluster that is
// configured with the same root key opens what another sealed. The additional
// data given to Seal must be given again to Open: callers bind a sealed value to
// what it belongs to (a merchant, a record) by it.
//
// A sealed value is the 12-byte random nonce followed by the ciphertext and the
// 16-byte tag.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// ErrOpen is wrapped by the errors of Open: the value was not sealed under this
// key and additional data, or was altered.
var ErrOpen = errors.New("sealed value does not open")

// Key returns the 32-byte key derived from root for the purpose label:
// HMAC-SHA256(root, label).
func Key(root []byte, label string) []byte {
	m := hmac.New(sha256.New, root)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// A Sealer seals and opens values under one derived key. It is safe for
// concurrent use.
type Sealer struct {
	label string
	aead  cipher.AEAD
}

// New returns a Sealer whose key is Key(root, label).
func New(root []byte, label string) (*Sealer, error) {
	block, err := aes.NewCipher(Key(root, label))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{label: label, aead: aead}, nil
}

// Seal encrypts and authenticates plaintext, and authenticates ad, under a fresh
// random nonce. It returns the nonce followed by the ciphertext and its tag.
func (s *Sealer) Seal(plaintext, ad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	nonce := make([]byte, n, n+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return s.aead.Seal(nonce, nonce, plaintext, ad), nil
}

// Open decrypts a value returned by Seal with the same key and additional data.
// Its error wraps ErrOpen when the value does not open; it never holds the value.
func (s *Sealer) Open(sealed, ad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes, too short (%s)", ErrOpen, len(sealed), s.label)
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: not sealed under this key (%s) with this additional data, or altered", ErrOpen, s.label)
	}
	return plain, nil
}
