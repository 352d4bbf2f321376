package cli

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/server"
	"github.com/switchyard/switchyard/switch/wallet"
)

// demoWallet is the demo wiring's wallet simulator (serve --demo, the end-to-end tests).
func demoWallet() server.Option {
	return server.WithDemoWallet(func(addr string, log zerolog.Logger) (server.DemoWallet, error) {
		s, err := wallet.StartSim(addr, wallet.SimConfig{Logger: log.With().Str("component", "wallet-sim").Logger()})
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return s, nil
	})
}

func init() {
	Register("wallet-sim", "run a QR payment network simulator (wallet API) with fault injection", runWalletSim)
}

func runWalletSim(env *Env, args []string) int {
	fs := newFlags(env, "wallet-sim", "[--addr HOST:PORT] [--latency D] [--userpaying P --silent P --error P --decline P] [--notify URL]\n\n"+
		"By the amount's last two digits: 51 NOTENOUGH, 05 cancelled, 14 code expired, 62 USERPAYING then paid,\n"+
		"63 USERPAYING then cancelled, 64 USERPAYING for ever, 91 silent (taken, never answered), 96 HTTP 500 (taken).")
	addr := fs.String("addr", "127.0.0.1:8700", "listen address")
	latency := fs.Duration("latency", 0, "added before every answer")
	confirm := fs.Int("confirm-after", 2, "queries a USERPAYING payment takes to be decided")
	userPaying := fs.Float64("userpaying", 0, "share of payments that ask the payer to confirm (then succeed)")
	silent := fs.Float64("silent", 0, "share of payments never answered (taken and paid)")
	errP := fs.Float64("error", 0, "share of payments answered HTTP 500 (taken and paid)")
	decline := fs.Float64("decline", 0, "share of payments declined NOTENOUGH")
	notify := fs.String("notify", "", "URL of the switch's notification route (http://ADMIN"+server.NotifyPath+") for merchant-presented payments")
	secretEnv := fs.String("notify-secret-env", "SWITCHYARD_QR_NOTIFY_SECRET", "the environment variable holding the secret notifications are signed with (the switch's qr.notify_secret_env)")
	logFormat := fs.String("log-format", "json", "json or console")
	if ok, code := parseFlagsOnly(env, fs, args); !ok {
		return code
	}
	for name, p := range map[string]float64{"userpaying": *userPaying, "silent": *silent, "error": *errP, "decline": *decline} {
		if p < 0 || p > 1 {
			return fail(env, "wallet-sim: --%s %v is not between 0 and 1", name, p)
		}
	}
	if *userPaying+*silent+*errP+*decline > 1 {
		return fail(env, "wallet-sim: --userpaying, --silent, --error and --decline add up to more than 1")
	}
	log := newLogger(env.Stdout, "info", *logFormat)
	sim, err := wallet.StartSim(*addr, wallet.SimConfig{Latency: *latency, ConfirmAfter: *confirm, UserPaying: *userPaying, Silent: *silent,
		Error: *errP, Decline: *decline, NotifyURL: *notify, NotifySecret: []byte(env.Getenv(*secretEnv)), Logger: log.With().Str("component", "wallet-sim").Logger()})
	if err != nil {
		return fail(env, "%v", err)
	}
	fmt.Fprintf(env.Stderr, "wallet simulator on %s (ledger: GET %s/ledger)\n", sim.URL(), sim.URL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case <-sig:
	case <-env.Ctx.Done():
	}
	return exitOf(sim.Close())
}

func exitOf(err error) int {
	if err != nil {
		return 1
	}
	return 0
}
