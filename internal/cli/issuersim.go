package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/server"
)

func runIssuerSim(env *Env, args []string) int {
	fs := newFlags(env, "issuer-sim", "[--addr HOST:PORT] [--latency D] [--drop P] ...")
	addr := fs.String("addr", "127.0.0.1:9583", "listen address")
	bin := fs.String("bin", "476173", "the BIN of the issuer's cards (others get 14)")
	latency := fs.Duration("latency", 0, "base answer time (with --latency-p99: the median)")
	jitter := fs.Duration("jitter", 0, "extra random answer time, up to this")
	p99 := fs.Duration("latency-p99", 0, "log-normal answer times with this 99th percentile and --latency as the median")
	drop := fs.Float64("drop", 0, "share of requests never answered (0 to 1)")
	delay := fs.Float64("delay", 0, "share of answers delayed by --delay-by")
	delayBy := fs.Duration("delay-by", 15*time.Second, "delay of a delayed answer")
	dup := fs.Float64("duplicate", 0, "share of answers sent twice")
	disc := fs.Float64("disconnect", 0, "share of requests answered by closing the connection")
	logFormat := fs.String("log-format", "json", "json or console")
	control := fs.String("control", "", "serve the control API here (HTTP: POST/DELETE /outage, GET /ledger, GET /status); empty: none")
	ledgerLimit := fs.Int("ledger-limit", 0, "keep the newest N transactions in the ledger (GET /ledger), forgetting older ones; 0 keeps all (a long-running simulator should set one: ~200 bytes each)")
	if ok, code := parseFlagsOnly(env, fs, args); !ok {
		return code
	}
	if *ledgerLimit < 0 {
		return fail(env, "issuer-sim: --ledger-limit %d is negative", *ledgerLimit)
	}
	for name, p := range map[string]float64{"drop": *drop, "delay": *delay, "duplicate": *dup, "disconnect": *disc} {
		if p < 0 || p > 1 {
			return fail(env, "issuer-sim: --%s %v is not between 0 and 1", name, p)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"latency", *latency}, {"jitter", *jitter}, {"latency-p99", *p99}, {"delay-by", *delayBy}} {
		if d.v < 0 {
			return failUsage(env, "issuer-sim: --%s %v is negative", d.name, d.v)
		}
	}
	log := newLogger(env.Stdout, "info", *logFormat)
	sec, err := issuersim.NewDemoSecurity()
	if err != nil {
		return fail(env, "issuer-sim: keys: %v", err)
	}
	defer sec.Close()
	sim, err := issuersim.Start(issuersim.Config{Addr: *addr, BIN: *bin, Cards: issuersim.DemoCards, Latency: *latency, Jitter: *jitter, LatencyP99: *p99,
		VerifyPIN: sec.VerifyPIN, KeyChange: sec.KeyChange,
		Faults: issuersim.Faults{Drop: *drop, Delay: *delay, DelayBy: *delayBy, Duplicate: *dup, Disconnect: *disc},
		Logger: log.With().Str("component", "issuer-sim").Logger(), LedgerLimit: *ledgerLimit})
	if err != nil {
		return fail(env, "%v", err)
	}
	fmt.Fprintf(env.Stderr, "issuer simulator listening on %s\n", sim.Addr())
	if *control != "" {
		ln, err := net.Listen("tcp", *control)
		if err != nil {
			_ = sim.Close()
			return fail(env, "issuer-sim: --control %s: %v", *control, err)
		}
		srv := &http.Server{Handler: simControl(sim), ReadHeaderTimeout: 5 * time.Second}
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Serve(ln) }()
		defer func() { _ = srv.Close(); <-done }()
		fmt.Fprintf(env.Stderr, "issuer simulator control API on http://%s\n", ln.Addr())
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case <-sig:
	case <-env.Ctx.Done():
	}
	_ = sim.Close()
	fmt.Fprintf(env.Stderr, "requests %d, approved %d, declined %d, dropped %d\n", sim.Stats.Requests.Load(), sim.Stats.Approved.Load(),
		sim.Stats.Declined.Load(), sim.Stats.Dropped.Load())
	return 0
}

// simControl is the simulator's control API, for harnesses such as `bench --faults`:
//
//	POST   /outage?mode=down|silent  start an outage (409 if one is in progress)
//	DELETE /outage                   end it (409 if none)
//	GET    /ledger                   the ledger: a JSON array of entries by RRN
//	GET    /status                   the outage mode and the counters
func simControl(sim *issuersim.Sim) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /outage", func(w http.ResponseWriter, r *http.Request) {
		mode, err := issuersim.ParseOutageMode(r.URL.Query().Get("mode"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := sim.StartOutage(mode); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /outage", func(w http.ResponseWriter, r *http.Request) {
		if err := sim.EndOutage(); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /ledger", func(w http.ResponseWriter, r *http.Request) {
		l := sim.Ledger()
		out := make([]issuersim.Entry, 0, len(l))
		for _, e := range l {
			out = append(out, e)
		}
		slices.SortFunc(out, func(a, b issuersim.Entry) int { return strings.Compare(a.RRN, b.RRN) })
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st := &sim.Stats
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"outage": sim.Outage().String(),
			"requests": st.Requests.Load(), "approved": st.Approved.Load(), "declined": st.Declined.Load(),
			"dropped": st.Dropped.Load(), "delayed": st.Delayed.Load()})
	})
	return mux
}

// DemoIssuer is the server option of demo mode: the demo fleet's issuer is the
// simulator, started with the server and closed with it, and so is the wallet
// simulator behind demo mode's QR connectors (walletsim.go). The server package does
// not import the simulator; this wiring (serve --demo, the end-to-end tests) does.
func DemoIssuer() server.Option {
	return server.Options(server.WithDemoIssuer(func(addr string, log zerolog.Logger) (server.DemoIssuer, error) {
		d, err := issuersim.StartDemo(issuersim.Config{Addr: addr, Logger: log.With().Str("component", "issuer-sim").Logger()})
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return d, nil
	}), demoWallet())
}
