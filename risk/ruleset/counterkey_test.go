package ruleset

import (
	"testing"

	"github.com/switchyard/switchyard/risk/state"
)

func TestCompositeKeys(t *testing.T) {
	c := dimKeysOf([]string{state.DimCard, state.DimMerchant})
	a, b := purchase(1), purchase(1)
	b.Merchant.ID = "000000000000002"
	ka, ok1 := counterKey(c, a)
	kb, ok2 := counterKey(c, b)
	if !ok1 || !ok2 || ka == kb {
		t.Errorf("keys %x %x", ka, kb)
	}
	b.Txn.CardHash = ""
	if _, ok := counterKey(c, b); ok {
		t.Error("a key without a card")
	}
	// card+terminal and terminal+card of swapped values differ.
	x := dimKeysOf([]string{state.DimCard, state.DimTerminal})
	in := purchase(1)
	in.Txn.CardHash, in.Terminal.ID = "T1", "C1"
	in2 := purchase(1)
	in2.Txn.CardHash, in2.Terminal.ID = "C1", "T1"
	k1, _ := counterKey(x, in)
	k2, _ := counterKey(x, in2)
	if k1 == k2 {
		t.Error("swapped dimension values give the same key")
	}
}

// Keys are what they were before dimensions were resolved at compile time (the series
// a switch wrote to Badger keep being found after an upgrade).
func TestCounterKeysStable(t *testing.T) {
	in := purchase(1)
	k, ok := counterKey(dimKeysOf([]string{state.DimCard, state.DimTerminal}), in)
	if !ok || k != 0x9b2a8e5f6e68cd32 {
		t.Errorf("key %#x", k)
	}
}
