package pipeline

import (
	"encoding/hex"
	"testing"
)

// TestSealedPANFromEarlierVersions: a PAN sealed by the first version (before the
// sealing moved to switch/internal/seal) still opens: stand-in advices and
// completions sealed then wait on disk. The value below was sealed by that code.
func TestSealedPANFromEarlierVersions(t *testing.T) {
	key, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	sealed, _ := hex.DecodeString("c822eda44c75a2049308b6c442419fe30507715f4cda0d253f09ff8f114e57e5f3cfb8464b69bb816e6378be")
	s, err := newSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	if pan, err := s.open(sealed); err != nil || pan != "4761739001010010" {
		t.Fatalf("open a PAN sealed by the first version: %q, %v", pan, err)
	}
	b, err := s.seal("4761739001010010")
	if err != nil {
		t.Fatal(err)
	}
	if pan, err := s.open(b); err != nil || pan != "4761739001010010" {
		t.Fatalf("round trip: %q, %v", pan, err)
	}
	other, _ := newSealer(append([]byte{1}, key[1:]...))
	if _, err := other.open(sealed); err == nil {
		t.Fatal("opened under another card hash key")
	}
}
