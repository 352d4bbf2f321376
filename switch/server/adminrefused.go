package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/switch/admin"
)

// adminRefusedBurst is how many refused admin requests are logged a second: enough
// for an operator's typo and a probe's first tries, not so many that a flood of
// bad tokens fills the log (the counter counts every one).
const adminRefusedBurst = 10

// watchAdminRefusals logs and counts the admin API's refused requests (no or an
// unknown bearer token, a role that may not): the invalid access attempts PCI DSS
// 10.2.1.4 wants recorded. The log line names the client's address (remote: behind
// a proxy of admin.trusted_proxies, from X-Forwarded-For; admin.ClientAddr) and the
// connection's (peer: ip:port), the method,
// the path (card numbers in it masked), the principal of a 403 and why; never the
// token. Counted by status in switchyard_admin_refused_total.
func (s *Server) watchAdminRefusals() {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_admin_refused_total",
		Help: "Admin API requests refused, by status: 401 (no or an unknown bearer token), 403 (a role that may not).",
	}, []string{"status"})
	s.Metrics.Registry.MustRegister(refused)
	log := s.log.With().Str("component", "admin").Logger().
		Sample(&zerolog.BurstSampler{Burst: adminRefusedBurst, Period: time.Second})
	s.auth.OnRefused(func(r admin.Refusal) {
		refused.WithLabelValues(strconv.Itoa(r.Status)).Inc()
		path, _ := carddata.MaskText(r.Path)
		reason, _ := carddata.MaskText(r.Reason)
		log.Warn().Int("status", r.Status).Str("remote", r.Remote).Str("peer", r.Peer).Str("method", r.Method).Str("path", path).
			Str("principal", r.Principal).Str("reason", reason).Msg("admin request refused")
	})
}
