package server

import (
	"net"
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
// token. Counted by status in switchyard_admin_refused_total. The requests
// admin.CheckHost refuses (a Host not in admin.allowed_hosts) are logged and
// counted the same way (status 421), by s.hostRefused.
func (s *Server) watchAdminRefusals() {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_admin_refused_total",
		Help: "Admin API requests refused, by status: 401 (no or an unknown bearer token), 403 (a role that may not), 421 (a Host not in admin.allowed_hosts).",
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
	s.hostRefused = func(r admin.HostRefusal) {
		refused.WithLabelValues("421").Inc()
		path, _ := carddata.MaskText(r.Path)
		host, _ := carddata.MaskText(r.Host)
		log.Warn().Int("status", 421).Str("peer", r.Peer).Str("method", r.Method).Str("path", path).Str("host", host).
			Msg("admin request refused: its Host is not in admin.allowed_hosts (DNS rebinding?)")
	}
}

// warnOpenHosts logs a warning at start when the admin address listens beyond
// loopback with admin.allowed_hosts empty: the console and API then answer any
// Host, which a DNS rebinding page can name (docs/console.md). addr is the bound
// address; a demo (127.0.0.1) is not warned.
func (s *Server) warnOpenHosts(addr net.Addr) {
	if !s.hosts.Empty() {
		return
	}
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
		return
	}
	s.log.Warn().Str("addr", addr.String()).
		Msg("admin.allowed_hosts is empty and the admin address is not loopback: the console answers any Host name, so a DNS rebinding page can post its logins (lock names out); list the admin address's names in admin.allowed_hosts (docs/console.md)")
}
