package risk

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeRules writes name -> content into a new directory and returns it.
func writeRules(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// bigRound is the example rule of docs/rules.md.
const bigRound = `rules:
  - {id: big-round, condition: "txn.amount >= 500000 && txn.amount % 100000 == 0",
     action: decline, response_code: "05", reason: round-amount}
`

func purchase(amount int) *Input {
	in := &Input{}
	in.Txn = Txn{MTI: "0200", ProcCode: "000000", Type: TxnPurchase, Amount: amount, Currency: "156", BIN: "476173",
		CardHash: "c0ffee00c0ffee00c0ffee00c0ffee00", Time: time.Date(2025, 6, 4, 6, 0, 0, 0, time.UTC)}
	in.Terminal = Terminal{ID: "T0000001", Kind: "pos", Status: "active"}
	in.Merchant = Merchant{ID: "000000000000001", MCC: "5411", Tier: "standard", Status: "active"}
	return in
}

func writeFileBytes(dir, name string, b []byte) error {
	return os.WriteFile(filepath.Join(dir, name), b, 0o644)
}
