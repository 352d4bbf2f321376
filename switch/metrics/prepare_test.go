package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestPrepare: the counters the alerts read with increase() exist at zero for the
// label values known at the start, and only where they apply (no merchant locks
// off a cluster, no cup key refusals without a cup listener).
func TestPrepare(t *testing.T) {
	m := New()
	m.Prepare(Prepared{Issuers: []string{"visa"}, Listeners: []string{"ascii"}})
	for _, c := range []struct {
		name string
		got  int
		want int
	}{
		{"issuer errors", testutil.CollectAndCount(m.IssuerErrors), 2},
		{"connections refused", testutil.CollectAndCount(m.ConnsRefused), 2},
		{"cup key refusals", testutil.CollectAndCount(m.CUPKeyRefusals), 0},
		{"merchant locks", testutil.CollectAndCount(m.MerchantLocks), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d series, want %d", c.name, c.got, c.want)
		}
	}
	if v := testutil.ToFloat64(m.IssuerErrors.WithLabelValues("visa", "timeout")); v != 0 {
		t.Errorf("visa timeouts = %v, want 0", v)
	}

	m = New()
	m.Prepare(Prepared{Issuers: []string{"visa", "cup"}, Listeners: []string{"ascii", "cup"}, CUP: true, Cluster: true})
	for _, c := range []struct {
		name string
		got  int
		want int
	}{
		{"issuer errors", testutil.CollectAndCount(m.IssuerErrors), 4},
		{"connections refused", testutil.CollectAndCount(m.ConnsRefused), 4},
		{"cup key refusals", testutil.CollectAndCount(m.CUPKeyRefusals), 2},
		{"offline final writes", testutil.CollectAndCount(m.OfflineFinalWrites), 3},
		{"merchant locks", testutil.CollectAndCount(m.MerchantLocks), 2},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d series, want %d", c.name, c.got, c.want)
		}
	}
}
