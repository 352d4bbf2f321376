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
}

// dimensionNames lists the dimensions for messages, in the order docs/rules.md gives them.
const dimensionNames = "card, terminal, merchant, device, merchant_group, bin or region"

// counterKey hashes the dimension values of in for counter c; ok is false when a
// value is empty (the counter does not apply to the transaction).
func counterKey(c *state.CounterSpec, in *Input) (uint64, bool) {
	var h uint64
	for _, d := range c.Dims {
		var v string
		switch d {
		case state.DimCard:
			v = in.Txn.CardHash
		case state.DimTerminal:
			v = in.Terminal.ID
		case state.DimMerchant:
			v = in.Merchant.ID
		case state.DimDevice:
			v = in.Device.ID
		case state.DimMerchantGroup:
			v = in.Merchant.Group
		case state.DimBIN:
			v = in.Txn.BIN
		case state.DimRegion:
			v = in.Terminal.Region
		}
		if v == "" {
			return 0, false
		}
		h = bits.RotateLeft64(h, 17) ^ (xxhash.Sum64String(v) ^ dimSalt[d])
		h *= 0xff51afd7ed558ccd
	}
	return h, true
}
