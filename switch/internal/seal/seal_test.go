package seal

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"testing"
)

// TestSeal: a sealed value opens only under the same root key, label and
// additional data, and does not hold the plaintext.
func TestSeal(t *testing.T) {
	root := []byte("0123456789abcdef0123456789abcdef")
	s, err := New(root, "test label v1")
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("merchant-secret-0123456789")
	b, err := s.Seal(plain, []byte("M1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, plain) {
		t.Fatal("the sealed value holds the plaintext")
	}
	if got, err := s.Open(b, []byte("M1")); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %q, %v", got, err)
	}
	if b2, _ := s.Seal(plain, []byte("M1")); bytes.Equal(b, b2) {
		t.Fatal("two seals of one value are equal (nonce reused)")
	}
	otherLabel, _ := New(root, "test label v2")
	otherRoot, _ := New([]byte("fedcba9876543210fedcba9876543210"), "test label v1")
	for name, c := range map[string]struct {
		s  *Sealer
		b  []byte
		ad string
	}{
		"other additional data": {s, b, "M2"},
		"other label":           {otherLabel, b, "M1"},
		"other root key":        {otherRoot, b, "M1"},
		"altered":               {s, append(append([]byte(nil), b[:len(b)-1]...), b[len(b)-1]^1), "M1"},
		"too short":             {s, b[:20], "M1"},
	} {
		if got, err := c.s.Open(c.b, []byte(c.ad)); !errors.Is(err, ErrOpen) || got != nil {
			t.Errorf("%s: %q, %v; want ErrOpen", name, got, err)
		} else if bytes.Contains([]byte(err.Error()), plain) {
			t.Errorf("%s: the error holds the plaintext: %v", name, err)
		}
	}
	m := hmac.New(sha256.New, root)
	m.Write([]byte("test label v1"))
	if !bytes.Equal(Key(root, "test label v1"), m.Sum(nil)) {
		t.Fatal("Key is not HMAC-SHA256(root, label)")
	}
}
