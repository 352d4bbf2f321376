package cup

import "github.com/switchyard/switchyard/switch/message"

// maxF54 is the longest F54 of the dialect (ans..040): two balances.
const maxF54 = 40

// balanceF54 is F54 of the answer to an approved balance inquiry, from DE 54 of the
// pipeline's answer (the issuer's additional amounts, ISO 8583:1987): the
// UnionPay F54 has the same 20-character layout (account type n2, amount type n2,
// currency n3, sign C/D, balance n12), so the amounts are passed as they are, the
// available balance (amount type 02) first, then the ledger balance (01), at most
// two; other amount types are left out. "" when DE 54 is absent or not of that
// layout (the answer then has no F54, as before the fifth release of 6 December
// 2026, when no balance reached the terminal).
func balanceF54(de54 string) string {
	if !message.ValidAdditionalAmounts(de54) {
		return ""
	}
	var out string
	for _, typ := range []string{"02", "01"} {
		for i := 0; i < len(de54) && len(out) < maxF54; i += message.AdditionalAmountLen {
			if e := de54[i : i+message.AdditionalAmountLen]; e[2:4] == typ {
				out += e
				break
			}
		}
	}
	return out
}
