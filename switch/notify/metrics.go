package notify

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// outboxMetrics are the outbox's Prometheus series:
//
//	switchyard_notices_pending                 notices stored and not delivered yet (all merchants)
//	switchyard_notices_posts_total{result}     delivery attempts: delivered, failed, held (not posted: the webhook or its host held)
//	switchyard_notices_dropped_total           notices dropped on a full queue (recovered at the next start)
type outboxMetrics struct {
	posts   *prometheus.CounterVec
	dropped prometheus.Counter
}

// newMetrics creates the outbox's series and registers them on reg (if not nil).
func (b *Outbox) newMetrics(reg *prometheus.Registry) error {
	b.m = outboxMetrics{
		posts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_notices_posts_total",
			Help: "Merchant notice delivery attempts by result: delivered; failed (no answer, or not 2xx); held (not posted: the webhook's secret does not open, none is registered, its host got no answer to its last post, or its host asked to wait with a Retry-After).",
		}, []string{"result"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_notices_dropped_total",
			Help: "Merchant notices dropped because the outbox's queue was full; the recovery at the next start finds them in the journal.",
		}),
	}
	for _, r := range []string{"delivered", "failed", "held"} {
		b.m.posts.WithLabelValues(r) // export zeros
	}
	if reg == nil {
		return nil
	}
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_notices_pending",
		Help: "Merchant notices stored and not delivered yet, all merchants (a merchant's wait behind its oldest).",
	}, func() float64 {
		b.mu.Lock()
		defer b.mu.Unlock()
		n := 0
		for _, q := range b.pending {
			n += len(q)
		}
		return float64(n)
	})
	for _, c := range []prometheus.Collector{b.m.posts, b.m.dropped, pending} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("notify: register metrics: %w", err)
		}
	}
	return nil
}
