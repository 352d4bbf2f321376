package server

import (
	"fmt"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/pipeline"
	"github.com/switchyard/switchyard/switch/qr"
	"github.com/switchyard/switchyard/switch/wallet"
)

// DemoWallet is the wallet simulator of demo mode, as the server sees it. Like the
// demo issuer, the server does not build one; the demo wiring passes a starter with
// WithDemoWallet.
type DemoWallet interface {
	URL() string
	// SetNotify says where merchant-presented payment notifications go (the admin
	// server's NotifyPath, known once it listens) and the secret that signs them.
	SetNotify(url string, secret []byte)
	Close() error
}

// StartDemoWallet starts a demo wallet simulator listening on addr (qr.demo_wallet.addr).
type StartDemoWallet func(addr string, log zerolog.Logger) (DemoWallet, error)

// WithDemoWallet gives a demo-mode server the starter of its wallet simulator, used
// unless qr.demo_wallet.external names one already running. Without it, demo mode's
// QR connectors are left out (QR payments are declined 15) and the server says so.
func WithDemoWallet(start StartDemoWallet) Option {
	return func(o *newOptions) { o.startDemoWallet = start }
}

// Options combines options into one (the demo wiring hands the server both its
// simulators as one option).
func Options(opts ...Option) Option {
	return func(o *newOptions) {
		for _, opt := range opts {
			opt(o)
		}
	}
}

// DemoWallet returns the demo wallet simulator the server started, or nil.
func (s *Server) DemoWallet() DemoWallet { return s.demoWallet }

// qrRoutes is the pipeline's QRRoutes: the payment-code table over the connectors.
type qrRoutes struct {
	table *qr.Table
	conns map[string]pipeline.IssuerLink // by connector ID, and ISO links by their issuer ID
}

func (r *qrRoutes) RouteQR(code string) (pipeline.IssuerLink, string, bool) {
	rt, ok := r.table.Classify(code)
	if !ok {
		return nil, "", false
	}
	l, ok := r.conns[rt.Connector]
	return l, rt.Network, ok
}

func (r *qrRoutes) Connector(id string) (pipeline.IssuerLink, bool) {
	l, ok := r.conns[id]
	return l, ok
}

// openQR builds the payment-code table and the connectors (starting the demo wallet
// simulator in demo mode). It runs after the issuer links are dialled.
func (s *Server) openQR(o newOptions) (*qrRoutes, error) {
	cfg, log := s.cfg.QR, s.log
	table, err := qr.NewTable(cfg.Routes)
	if err != nil {
		return nil, err
	}
	r := &qrRoutes{table: table, conns: map[string]pipeline.IssuerLink{}}
	s.wallets = map[string]*wallet.Connector{}
	demoURL := ""
	for _, c := range cfg.Connectors {
		if c.URL != config.DemoWalletURL {
			continue
		}
		if demoURL == "" {
			demoURL = cfg.DemoWallet.External
		}
		if demoURL == "" && o.startDemoWallet != nil {
			d, err := o.startDemoWallet(cfg.DemoWallet.Addr, log)
			if err != nil {
				return nil, fmt.Errorf("demo wallet: %w", err)
			}
			s.demoWallet = d
			demoURL = d.URL()
			log.Info().Str("url", demoURL).Msg("demo wallet simulator started")
		}
		break
	}
	for _, c := range cfg.Connectors {
		if c.Issuer != "" {
			l, ok := s.links[c.Issuer]
			if !ok {
				return nil, fmt.Errorf("qr connector %s: issuer %q has no link", c.ID, c.Issuer)
			}
			r.conns[c.ID], r.conns[l.ID()] = l, l
			continue
		}
		url := c.URL
		if url == config.DemoWalletURL {
			if demoURL == "" {
				log.Warn().Str("connector", c.ID).Msg("demo mode without a wallet simulator: QR payments to this connector are declined 15")
				continue
			}
			url = demoURL
		}
		w, err := wallet.New(wallet.Config{ID: c.ID, Network: c.Network, URL: url, Timeout: c.Timeout.D(), Poll: c.Poll.D(),
			RequestTimeout: c.RequestTimeout.D(), Logger: log.With().Str("component", "wallet").Logger()})
		if err != nil {
			return nil, err
		}
		s.wallets[c.ID] = w
		r.conns[c.ID] = w
	}
	return r, nil
}

// registerWallets gives the store-and-forward queue a sender per wallet connector
// (wallet.Connector.AdviceSender): a reversal advice (0420) becomes the network's
// cancel (a payment) or the undoing of a refund, tried until the network confirms,
// parked when the network refuses it for good.
func (s *Server) registerWallets() {
	for id, w := range s.wallets {
		s.Queue.Register(id, w.AdviceSender())
	}
}
