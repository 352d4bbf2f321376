package cli

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/server"
)

func runServe(env *Env, args []string) int {
	fs := newFlags(env, "serve", "[--config FILE | --demo] [--data DIR] [--admin-addr HOST:PORT] [--listen NAME=HOST:PORT ...]")
	cfgFile := fs.String("config", "", "configuration file (YAML)")
	demo := fs.Bool("demo", false, "serve the embedded demo fleet with its test keys and the built-in demo issuer")
	dataDir := fs.String("data", "", "data directory (overrides data_dir)")
	logFormat := fs.String("log-format", "", "json or console (overrides log.format)")
	adminAddr := fs.String("admin-addr", "", "admin API host:port (overrides admin.addr; port 0 picks a free one)")
	var listen []string
	fs.Func("listen", "NAME=HOST:PORT: the address of terminal listener NAME ("+demoListenerNames()+" in demo mode); repeatable", func(v string) error {
		listen = append(listen, v)
		return nil
	})
	if ok, code := parseFlagsOnly(env, fs, args); !ok {
		return code
	}
	var cfg *config.Config
	switch {
	case *cfgFile != "" && *demo:
		return failUsage(env, "serve: give --config or --demo, not both")
	case *cfgFile != "":
		c, err := config.Load(*cfgFile)
		if err != nil {
			return fail(env, "%v", err)
		}
		cfg = c
	case *demo:
		cfg = config.Demo()
	default:
		return failUsage(env, "serve: give --config FILE, or --demo for the embedded demo fleet")
	}
	over := overrides{dataDir: *dataDir, logFormat: *logFormat, adminAddr: *adminAddr, listen: listen}
	if err := over.apply(cfg); err != nil {
		return fail(env, "%v", err)
	}
	tuneGC(env)
	out := newBufferedLog(env.Stdout)
	defer out.Close()
	log := newLogger(out, cfg.Log.Level, cfg.Log.Format)
	// The handlers go in before the start, which may take seconds (an issuer's
	// sign-on timing out): a SIGTERM or SIGHUP then waits in sig and is handled
	// once the switch is up (a drain, a reload) instead of killing it with no
	// log line, as the default action did until 7 December 2026.
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sig)
	s, err := server.New(cfg, log, DemoIssuer(), server.WithVersion(Version))
	if err != nil {
		log.Error().Err(err).Msg("switch did not start")
		return 1
	}
	if cfg.Demo {
		rulesFrom := cfg.RulesDir
		if s.Risk.RuleSet().Dir == risk.FallbackLabel {
			rulesFrom = "the default pack built into the binary (" + cfg.RulesDir + " does not exist)"
		}
		// The banner goes out in one write, so that a reader waiting for its header
		// (the README test) also has the tokens and the try line.
		var banner strings.Builder
		fmt.Fprintf(&banner, "\nSwitchyard demo is up (public test keys: never use them for real cards).\n")
		for _, l := range cfg.Listeners { // those configured, in their order
			if addr := s.ListenerAddr(l.Name); addr != "" {
				fmt.Fprintf(&banner, "  %-26s %s\n", "terminals ("+l.Name+"):", addr)
			}
		}
		fmt.Fprintf(&banner, "  admin:                     http://%s (/livez /readyz /metrics)\n  data:                      %s   rules: %s\n\n  demo admin tokens (export SWITCHYARD_TOKEN=...):\n",
			s.AdminAddr(), cfg.DataDir, rulesFrom)
		for _, t := range registry.DemoTokens() {
			fmt.Fprintf(&banner, "    %-9s %-16s %s\n", t.Role, t.Name, t.Token)
		}
		if s.Console() != nil {
			fmt.Fprintf(&banner, "\n  web console: http://%s/console/  demo users (user / password):\n", s.AdminAddr())
			for _, u := range registry.DemoUsers() {
				fmt.Fprintf(&banner, "    %-9s %-10s %s\n", u.Role, u.Name, u.Password)
			}
		}
		fmt.Fprintf(&banner, "\n  %s\n\n", tryLine(selfName(), cfg.Listeners, s.ListenerAddr))
		_, _ = io.WriteString(env.Stderr, banner.String())
	}
	log.Info().Msg("serving: SIGHUP reloads, SIGTERM or SIGINT drains")
	// With journal.exit_on_broken_log false the channel stays nil: a switch whose
	// log broke stays up answering 96 until a person restarts it (as before).
	var broken <-chan struct{}
	if e := cfg.Journal.ExitOnBrokenLog; e == nil || *e {
		broken = s.JournalBroken()
	}
	for {
		select {
		case <-env.Ctx.Done():
			return drain(s, log)
		case <-s.Fenced():
			// A cluster node whose lease is lost for good: nothing in this
			// process may serve as the node again. Drained (what is in flight
			// answered 91 node-lease-lost, the terminals' connections closed so
			// that they reconnect to the other nodes), it exits for its
			// supervisor to start it again: the new process waits for the node
			// recovering this one, then recovers the rest from the data directory.
			log.Error().Err(s.FenceReason()).Int("exit_status", ExitFenced).
				Msg("this node's lease is lost for good: draining, then exiting with status 75 so that its supervisor (systemd Restart=on-failure, Kubernetes) starts it again; without one, start it again by hand")
			if code := drain(s, log); code != 0 {
				log.Warn().Msg("drain incomplete; exiting with status 75 all the same")
			}
			return ExitFenced
		case <-broken:
			// The journal's log refuses every write (what a failed write or
			// sync left on the disk is unknown): every transaction is answered
			// 96, and what the issuer approved in the group whose write failed
			// cannot be reversed from this process (the reversal queue is written
			// through the journal). Only a new process, reading the log back from
			// disk, recovers: its recovery reverses those approvals.
			log.Error().Err(s.Journal.Broken()).Int("exit_status", ExitRestart).
				Msg("the journal's log is broken (a failed fdatasync, or a failed write it could not cut back): draining, then exiting with status 75 so that its supervisor (systemd Restart=on-failure, Kubernetes) starts it again; the restart reads the log back and reverses what the issuer approved that the journal did not record; without a supervisor, check the disk (its kernel log, its free space) and start it again by hand")
			if code := drain(s, log); code != 0 {
				log.Warn().Msg("drain incomplete; exiting with status 75 all the same")
			}
			return ExitRestart
		case sg := <-sig:
			if sg == syscall.SIGHUP {
				reload(s, log, *cfgFile, over)
				continue
			}
			log.Info().Str("signal", sg.String()).Msg("draining")
			return drain(s, log)
		}
	}
}

// reloader is what serve's SIGHUP reloads: the server.
type reloader interface {
	Reload(next *config.Config) server.ReloadResult
}

// overrides are serve's flags that replace settings of the configuration.
type overrides struct {
	dataDir, logFormat, adminAddr string
	listen                        []string // NAME=HOST:PORT
}

// apply puts the overrides in cfg and validates the result.
func (o overrides) apply(cfg *config.Config) error {
	if o.dataDir != "" {
		cfg.DataDir = o.dataDir
	}
	if o.logFormat != "" {
		cfg.Log.Format = o.logFormat
	}
	if o.adminAddr != "" {
		cfg.Admin.Addr = o.adminAddr
	}
	if err := setListenAddrs(cfg, o.listen); err != nil {
		return kit.Usagef("serve: %v", err) // a bad command line: exit 2
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// reload is serve's SIGHUP: it reads the configuration file again (none in demo
// mode) with the command line's overrides put in as at start (else every reload
// named data_dir, admin.addr and listeners as changed), has s apply what changes
// live, and ends with one line, "SIGHUP: reload
// done", naming the restart_needed settings and the refused parts, at error level
// when a part was refused. A configuration that does not load is such a part: the
// running one stays, and the summary says so (it said info and refused [] while
// the log's line before said the file was refused).
func reload(s reloader, log zerolog.Logger, cfgFile string, over overrides) {
	log.Info().Msg("SIGHUP: reloading")
	var next *config.Config
	var cfgErr error
	if cfgFile != "" {
		next, cfgErr = config.Load(cfgFile)
		if cfgErr == nil {
			cfgErr = over.apply(next)
		}
		if cfgErr != nil {
			next = nil
			log.Error().Err(cfgErr).Msg("reload: configuration refused; the running one stays")
		}
	}
	res := s.Reload(next)
	if cfgErr != nil {
		res.Refused = append([]error{cfgErr}, res.Refused...)
	}
	ev := log.Info()
	if len(res.Refused) > 0 {
		ev = log.Error()
	}
	ev.Strs("restart_needed", res.Restart).Errs("refused", res.Refused).
		Msg("SIGHUP: reload done; the refused parts keep their running state, the restart_needed settings take effect at the next restart")
}

// selfName is how the user called this binary (./bin/switchyard after make run), so
// that the banner's example runs as printed; "switchyard" when that is not known.
func selfName() string {
	if len(os.Args) > 0 && filepath.Base(os.Args[0]) == "switchyard" {
		return os.Args[0]
	}
	return "switchyard"
}

// tryLine is the demo banner's example, "try: " and a purchase with `self term` at
// the first listener, in the configured order, that term can reach from this host:
// one of kind tcp without TLS (term speaks neither HTTP nor TLS) that does not
// require a PROXY header from this host (requiresHeaderFrom), in the listener's
// dialect, with --addr unless it is term's default. Before, it named the listener
// called ascii whatever its configuration: with proxy_protocol.required there,
// term's connection was refused. When every listener term speaks to requires the
// header, the line says so ("term: ..."): term sends none, and must go through the
// proxy; when there is none it speaks to, it says that.
func tryLine(self string, ls []config.Listener, addr func(name string) string) string {
	proxied := false
	for _, l := range ls {
		a := addr(l.Name)
		if a == "" || (l.Kind != "" && l.Kind != "tcp") || l.TLS != nil {
			continue // not started, or HTTP or TLS: term speaks neither
		}
		if requiresHeaderFrom(l, a) {
			proxied = true
			continue
		}
		cmd := "try: " + self + " term purchase --pan 4761739001010119 --amount 1000"
		switch message.Dialect(l.Dialect) {
		case message.DialectASCIIBinaryBitmap:
			return cmd + " --dialect " + l.Dialect + addrFlag(a, "127.0.0.1:8584")
		case message.DialectCUP:
			return cmd + " --pin 1234 --dialect " + l.Dialect + addrFlag(a, "127.0.0.1:8585")
		}
		return cmd + addrFlag(a, "127.0.0.1:8583")
	}
	if proxied {
		return "term: every terminal listener it speaks to (tcp without TLS) requires the PROXY protocol from this host " +
			"(proxy_protocol.required), and " + self + " term sends no header: give its --addr the address of the proxy " +
			"in front of one (docs/terminal-interface.md, Behind a load balancer)"
	}
	return "term: no terminal listener it speaks to (" + self + " term speaks tcp without TLS: no kind https, no tls)"
}

// requiresHeaderFrom says whether listener l, bound at addr, refuses a connection
// without a PROXY header from term run on this host: l requires the header
// (proxy_protocol.required) from its trusted proxies, and term's address is one of
// them. Term's connection comes from the listener's own address, or from loopback
// when the listener is bound to all addresses (0.0.0.0, ::). A trusted list that
// does not parse (Validate refuses it first) counts as trusting term.
func requiresHeaderFrom(l config.Listener, addr string) bool {
	pp := l.ProxyProtocol
	if pp == nil || !pp.Required {
		return false
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return true
	}
	from := ap.Addr().Unmap()
	switch {
	case from.IsUnspecified() && from.Is4():
		from = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case from.IsUnspecified():
		from = netip.IPv6Loopback()
	}
	nets, err := pp.Networks()
	if err != nil {
		return true
	}
	for _, n := range nets {
		if n.Contains(from) {
			return true
		}
	}
	return false
}

// addrFlag is the --addr flag term needs to reach addr, "" when addr is term's
// default for the dialect (def).
func addrFlag(addr, def string) string {
	if addr == def {
		return ""
	}
	return " --addr " + addr
}

// setListenAddrs applies --listen NAME=HOST:PORT overrides to the configured listeners.
// A listener named twice is refused: which address was meant is unknown.
func setListenAddrs(cfg *config.Config, listen []string) error {
	given := map[string]string{}
	for _, v := range listen {
		name, addr, ok := strings.Cut(v, "=")
		if !ok || name == "" || addr == "" {
			return fmt.Errorf("--listen %q: want NAME=HOST:PORT", v)
		}
		if prev, dup := given[name]; dup {
			return fmt.Errorf("--listen %q: listener %s is given twice (also %s=%s)", v, name, name, prev)
		}
		given[name] = addr
		found := false
		var names []string
		for i := range cfg.Listeners {
			names = append(names, cfg.Listeners[i].Name)
			if cfg.Listeners[i].Name == name {
				cfg.Listeners[i].Addr, found = addr, true
			}
		}
		if !found {
			return fmt.Errorf("--listen %q: no listener named %q (the listeners: %s)", v, name, strings.Join(names, ", "))
		}
	}
	return nil
}

// ExitRestart (75, EX_TEMPFAIL) is `switchyard serve`'s exit status when the
// process drained and must be started again, with the same configuration and
// data directory, by its supervisor (systemd Restart=on-failure, Kubernetes):
// a cluster node's lease is lost for good (server.Server.Fenced, ExitFenced), or
// the journal's log is broken (server.Server.JournalBroken, single switch and
// cluster node alike, unless journal.exit_on_broken_log is false).
const ExitRestart = 75

// ExitFenced is ExitRestart for a cluster node whose lease is lost for good
// (docs/cluster.md, "A fenced node exits").
const ExitFenced = ExitRestart

func drain(s *server.Server, log zerolog.Logger) int {
	if err := s.Drain(); err != nil {
		log.Error().Err(err).Msg("drain incomplete")
		return 1
	}
	log.Info().Msg("switch stopped")
	return 0
}

// tuneGC trades memory for CPU: the switch allocates per transaction, and the default
// GOGC=100 spends a tenth of its CPU in the collector at load. Unless GOGC or
// GOMEMLIMIT is set, the collector runs at GOGC=400 with a 4 GiB soft memory limit.
func tuneGC(env *Env) {
	if env.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if env.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(4 << 30)
	}
}

// demoListenerNames lists the demo configuration's listener names for serve's
// --listen help, so that the help names every one (it once left out cup).
func demoListenerNames() string {
	var names []string
	for _, l := range config.Demo().Listeners {
		names = append(names, l.Name)
	}
	return strings.Join(names, ", ")
}
