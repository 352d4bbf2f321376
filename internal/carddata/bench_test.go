package carddata

import "testing"

// benchNotes are free text MaskText meets: a note without digits, one with the
// identifiers the switch writes (RRN, STAN, amount, date, merchant ID, a
// zero-padded one glued to a letter), one quoting a card hash and a SHA-256, one
// with a card number in groups, and one with a card number glued to letters.
var benchNotes = []struct{ name, text string }{
	{"no digits", "customer called about a refund, asked to wait for the settlement"},
	{"identifiers", "RRN 612345678901 STAN 000123 amount 1500.00 EUR on 2026-12-07 12:30:00, merchant 000000000000001, M0000000000000000000"},
	{"hashes", "card 9f86d081884c7d659a2feaa0c55ad015 rules sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 moved"},
	{"card", "customer read 4761 7390 0101 0119 on the phone"},
	{"glued card", "customer read card4761739001010119end on the phone"},
}

func BenchmarkMaskText(b *testing.B) {
	for _, c := range benchNotes {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				MaskText(c.text)
			}
		})
	}
}
