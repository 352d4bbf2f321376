package pipeline

import (
	"testing"

	"github.com/switchyard/switchyard/switch/message"
)

// seenCount is how many times the fake registry was told a terminal was seen.
func (f *fakeTerminals) seenCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

// TestNetworkSeen: an echo or sign-off makes its terminal seen only when its MAC
// verified under the terminal's TAK; without one (a terminal without a MAC key) or
// refused for a wrong MAC it is answered as before and recorded nowhere the
// offline alerts read. Until 6 December 2026 every 0800 naming a known terminal
// was recorded as seen before anything was checked.
func TestNetworkSeen(t *testing.T) {
	t.Run("keyless", func(t *testing.T) {
		h := newHarness(t, withHSM, withTerminal(termNoKey))
		for _, code := range []string{message.NMEcho, message.NMSignOff} {
			if a := h.do(netMgmt(h, code)); a.RC != "00" {
				t.Fatalf("0800 %s: rc %s, want 00", code, a.RC)
			}
		}
		if n := h.terms.seenCount(); n != 0 {
			t.Fatalf("echo and sign-off without a MAC: %d sightings recorded, want none", n)
		}
	})
	t.Run("MAC", func(t *testing.T) {
		h := newHarness(t, withHSM, withTerminal(termMAC))
		h.macKey = "wrong"
		if a := h.do(netMgmt(h, message.NMEcho)); a.RC != "63" {
			t.Fatalf("echo with a wrong MAC: rc %s, want 63", a.RC)
		}
		if n := h.terms.seenCount(); n != 0 {
			t.Fatalf("echo with a wrong MAC: %d sightings recorded, want none", n)
		}
		h.macKey = termMAC.Keys.TAK
		if a := h.do(netMgmt(h, message.NMEcho)); a.RC != "00" {
			t.Fatalf("signed echo: rc %s, want 00", a.RC)
		}
		if n := h.terms.seenCount(); n != 1 {
			t.Fatalf("signed echo: %d sightings recorded, want 1", n)
		}
	})
}
