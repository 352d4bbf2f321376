package ruleset

import (
	"math/bits"

	"github.com/cespare/xxhash/v2"
	"github.com/switchyard/switchyard/risk/state"
)

// dimSalt separates the dimensions in a composite key hash.
var dimSalt = map[string]uint64{
	state.DimCard:     0x9e3779b97f4a7c15,
	state.DimTerminal: 0xc2b2ae3d27d4eb4f,
	state.DimMerchant: 0x165667b19e3779f9,
	state.DimDevice:   0xd6e8feb86659fd93,
	// Dimensions added later: new salts, so no key of theirs meets an older one's.
	state.DimMerchantGroup: 0x2545f4914f6cdd1d,
	state.DimBIN:           0x94d049bb133111eb,
	state.DimRegion:        0xbf58476d1ce4e5b9,
	state.DimAcquirer:      0x7fb5d329728ea185,
}

// dimensionNames lists the dimensions for messages, in the order docs/rules.md gives them.
const dimensionNames = "card, terminal, merchant, device, merchant_group, bin, region or acquirer"

// dimKey is one dimension of a counter, resolved when the rule set is compiled: the
// per-transaction key costs no string comparison or map lookup per dimension.
type dimKey struct {
	code uint8 // which Input field (dim* below)
	salt uint64
}

const (
	dimCard uint8 = iota
	dimTerminal
	dimMerchant
	dimDevice
	dimMerchantGroup
	dimBIN
	dimRegion
	dimAcquirer
)

var dimCodes = map[string]uint8{
	state.DimCard: dimCard, state.DimTerminal: dimTerminal, state.DimMerchant: dimMerchant, state.DimDevice: dimDevice,
	state.DimMerchantGroup: dimMerchantGroup, state.DimBIN: dimBIN, state.DimRegion: dimRegion,
	state.DimAcquirer: dimAcquirer,
}

// dimKeysOf resolves dimension names (all known: the compiler checked them).
func dimKeysOf(dims []string) []dimKey {
	out := make([]dimKey, len(dims))
	for i, d := range dims {
		out[i] = dimKey{code: dimCodes[d], salt: dimSalt[d]}
	}
	return out
}

// counterKey hashes the dimension values of in for a counter of dims; ok is false
// when a value is empty (the counter does not apply to the transaction).
func counterKey(dims []dimKey, in *Input) (uint64, bool) {
	var h uint64
	for _, d := range dims {
		var v string
		switch d.code {
		case dimCard:
			v = in.Txn.CardHash
		case dimTerminal:
			v = in.Terminal.ID
		case dimMerchant:
			v = in.Merchant.ID
		case dimDevice:
			v = in.Device.ID
		case dimMerchantGroup:
			v = in.Merchant.Group
		case dimBIN:
			v = in.Txn.BIN
		case dimRegion:
			v = in.Terminal.Region
		case dimAcquirer:
			v = state.DimAcquirer // one key for every transaction
		}
		if v == "" {
			return 0, false
		}
		h = bits.RotateLeft64(h, 17) ^ (xxhash.Sum64String(v) ^ d.salt)
		h *= 0xff51afd7ed558ccd
	}
	return h, true
}

// writeKey is the key Observe and Retract give the store for counter c and in:
// counterKey's, or for a striped counter (acquirer) the key of the stripe of in.
// A transaction's stripe comes from its card (else its terminal, else its
// merchant), so that the retraction of a transaction finds the stripe its
// observation fed, on every node of a cluster alike.
func writeKey(c *Counter, in *Input) (uint64, bool) {
	key, ok := counterKey(c.dims, in)
	if !ok || c.spec.Stripes <= 1 {
		return key, ok
	}
	return state.StripeKey(&c.spec, key, stripeOf(in)), true
}

// stripeOf picks the stripe of a striped counter that in feeds.
func stripeOf(in *Input) uint64 {
	switch {
	case in.Txn.CardHash != "":
		return xxhash.Sum64String(in.Txn.CardHash)
	case in.Terminal.ID != "":
		return xxhash.Sum64String(in.Terminal.ID)
	}
	return xxhash.Sum64String(in.Merchant.ID)
}
