package bench

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/qr"
)

// TestFleetQRShare: with a QR share the load terminals send QR purchases that the
// switch decodes with a payment code of each default network; without one (the
// default) none.
func TestFleetQRShare(t *testing.T) {
	tb, _ := qr.NewTable(qr.DefaultRoutes())
	for _, share := range []float64{0, 0.5} {
		f, err := NewFleet(20, 100)
		if err != nil {
			t.Fatal(err)
		}
		f.fraud, f.bench, f.QRShare = 0, 0, share
		rng := rand.New(rand.NewPCG(3, 4))
		networks := map[string]int{}
		n := 0
		for i := 0; i < 2000; i++ {
			req, err := f.Next(rng, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			r, err := message.Decode(req.body, message.DialectASCII)
			if err != nil {
				t.Fatalf("request %d does not decode: %v", i, err)
			}
			if r.QR {
				n++
				rt, ok := tb.Classify(r.QRCode)
				if !ok {
					t.Fatalf("code of %d digits matches no network", len(r.QRCode))
				}
				networks[rt.Network]++
			}
		}
		if share == 0 && n != 0 || share > 0 && (n < 800 || n > 1200 || len(networks) != 3) {
			t.Fatalf("share %v: %d QR purchases of 2000, networks %v", share, n, networks)
		}
	}
}
