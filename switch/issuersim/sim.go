// Package issuersim is an issuer host simulator: the demo issuer of `serve --demo`, the
// standalone `switchyard issuer-sim`, and the issuer of tests and benchmarks. It answers
// authorizations by the rules of the demo fleet, checks PINs through a verifier, keeps a
// ledger of what it approved and reversed, and injects faults on demand: dropped,
// delayed and duplicated answers, and disconnects.
package issuersim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// Card is a card the issuer knows with a fixed expiry.
type Card struct {
	PAN    string
	Expiry string // YYMM
}

// KeyGrace is how long the previous zone PIN key stays valid after a key change.
var KeyGrace = 10 * time.Minute

// DemoCards are the cards of the demo fleet with a fixed expiry.
var DemoCards = []Card{
	{PAN: "4761739001010119", Expiry: "2912"},
	{PAN: "4761739001010010", Expiry: "2212"},
	{PAN: "4761739001010267", Expiry: "2912"},
}

// PINVerifier checks the PIN block of a request (under the issuer's zone PIN key).
type PINVerifier func(pan string, block [8]byte) (ok bool, err error)

// Faults are injected at random with these probabilities (0 to 1).
type Faults struct {
	Drop       float64       // never answer
	Delay      float64       // answer after DelayBy
	DelayBy    time.Duration // how long a delayed answer waits
	Duplicate  float64       // answer twice
	Disconnect float64       // close the connection instead of answering
}

// Config configures the simulator.
type Config struct {
	Addr string
	// BIN is the prefix of the cards the issuer owns (demo: 476173); others get 14.
	BIN string
	// Cards with a fixed expiry; every other Luhn-valid PAN of BIN is a good card.
	Cards []Card
	// Latency is the base answer time, plus up to Jitter at random.
	Latency, Jitter time.Duration
	Faults          Faults
	// VerifyPIN checks DE 52 when present; nil accepts any PIN block.
	VerifyPIN PINVerifier
	// KeyChange takes a new zone PIN key from an 0800 with DE 70 = 161 (DE 48 WP,
	// HEXKEY:KCV under the zone master key); nil refuses key changes.
	KeyChange func(wp string) error
	// Now is the clock (for expiry); nil means time.Now.
	Now func() time.Time
}

// Entry is the ledger's record of one transaction by RRN.
type Entry struct {
	RRN       string `json:"rrn"`
	MTI       string `json:"mti"`
	Amount    int64  `json:"amount"`
	Approved  bool   `json:"approved"`
	RC        string `json:"rc"`
	Requests  int    `json:"requests"`  // how often the request came (repeats counted)
	Reversals int    `json:"reversals"` // reversal messages received for it
	Advices   int    `json:"advices"`   // advice messages received for it
	Reversed  bool   `json:"reversed"`
	StandIn   bool   `json:"stand_in"`
}

// Stats count what the simulator did.
type Stats struct {
	Requests, Approved, Declined, Dropped, Delayed, Duplicated, Disconnects, Network atomic.Int64
}

// Sim is a running simulator.
type Sim struct {
	cfg   Config
	log   zerolog.Logger
	ln    net.Listener
	cards map[string]string
	auth  atomic.Uint32
	Stats Stats

	mu      sync.Mutex
	ledger  map[string]*Entry
	conns   map[net.Conn]struct{}
	closing bool
	wg      sync.WaitGroup

	faultMu sync.RWMutex
}

// Start listens on cfg.Addr and serves until Close.
func Start(cfg Config, log zerolog.Logger) (*Sim, error) {
	if cfg.BIN == "" {
		cfg.BIN = "476173"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("issuer simulator: %w", err)
	}
	s := &Sim{cfg: cfg, log: log.With().Str("component", "issuer-sim").Logger(), ln: ln,
		cards: map[string]string{}, ledger: map[string]*Entry{}, conns: map[net.Conn]struct{}{}}
	for _, c := range cfg.Cards {
		s.cards[c.PAN] = c.Expiry
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the listening address.
func (s *Sim) Addr() string { return s.ln.Addr().String() }

// SetFaults changes the injected faults while running.
func (s *Sim) SetFaults(f Faults) {
	s.faultMu.Lock()
	s.cfg.Faults = f
	s.faultMu.Unlock()
}

func (s *Sim) faults() Faults {
	s.faultMu.RLock()
	defer s.faultMu.RUnlock()
	return s.cfg.Faults
}

// Close stops listening and closes every connection.
func (s *Sim) Close() error {
	s.mu.Lock()
	s.closing = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// DropConnections closes every open connection (the switch must reconnect).
func (s *Sim) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.Close()
	}
}

// Ledger returns a copy of the ledger.
func (s *Sim) Ledger() map[string]Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Entry, len(s.ledger))
	for k, v := range s.ledger {
		out[k] = *v
	}
	return out
}

func (s *Sim) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn().Err(err).Msg("accept")
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

type simConn struct {
	nc  net.Conn
	out chan []byte
}

func (s *Sim) serve(nc net.Conn) {
	defer s.wg.Done()
	c := &simConn{nc: nc, out: make(chan []byte, 1024)}
	var pending sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		w := bufio.NewWriterSize(nc, 16384)
		for b := range c.out {
			_, err := w.Write(b)
			for err == nil && len(c.out) > 0 {
				_, err = w.Write(<-c.out)
			}
			if err == nil {
				err = w.Flush()
			}
			if err != nil {
				_ = nc.Close()
			}
		}
	}()
	r := bufio.NewReaderSize(nc, 16384)
	for {
		body, err := frontend.ReadFrame(r, nil, 0xFFFF)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug().Err(err).Msg("issuer-sim read")
			}
			break
		}
		m := iso8583.NewMessage(message.SpecASCII)
		if err := m.Unpack(body); err != nil {
			s.log.Warn().Err(err).Msg("issuer-sim: undecodable message; closing connection")
			break
		}
		pending.Add(1)
		go func() {
			defer pending.Done()
			s.handle(ctx, c, m)
		}()
	}
	cancel()
	_ = nc.Close()
	pending.Wait()
	close(c.out)
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
}

func (s *Sim) handle(ctx context.Context, c *simConn, m *iso8583.Message) {
	mti, _ := m.GetMTI()
	if mti == "0800" {
		s.Stats.Network.Add(1)
		rc := message.RCApproved
		if nm, _ := m.GetString(70); nm == message.NMKeyChange {
			rc = s.keyChange(m)
		}
		s.reply(c, s.answer(m, "0810", rc, ""))
		return
	}
	s.Stats.Requests.Add(1)
	resp, drop := s.decide(m, mti)
	f := s.faults()
	roll := rand.Float64()
	switch {
	case drop:
		s.Stats.Dropped.Add(1)
		return
	case roll < f.Drop:
		s.Stats.Dropped.Add(1)
		return
	case roll < f.Drop+f.Disconnect:
		s.Stats.Disconnects.Add(1)
		_ = c.nc.Close()
		return
	}
	wait := s.cfg.Latency
	if s.cfg.Jitter > 0 {
		wait += rand.N(s.cfg.Jitter)
	}
	if roll < f.Drop+f.Disconnect+f.Delay {
		s.Stats.Delayed.Add(1)
		wait += f.DelayBy
	}
	if wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
	s.reply(c, resp)
	if roll >= 1-f.Duplicate {
		s.Stats.Duplicated.Add(1)
		s.reply(c, resp)
	}
}

// keyChange applies a zone key change and returns the answer's response code.
func (s *Sim) keyChange(m *iso8583.Message) string {
	if s.cfg.KeyChange == nil {
		return message.RCInvalidTransaction
	}
	de48, _ := m.GetString(48)
	tl, err := message.ParseTLV(de48)
	if err != nil || tl.Has&message.HasPINKey == 0 {
		return message.RCFormatError
	}
	if err := s.cfg.KeyChange(tl.PINKey); err != nil {
		s.log.Warn().Err(err).Msg("issuer-sim: zone key change refused")
		return message.RCSecurityViolation
	}
	s.log.Info().Msg("issuer-sim: new zone PIN key in use; the previous one stays valid for the grace period")
	return message.RCApproved
}

func (s *Sim) reply(c *simConn, m *iso8583.Message) {
	body, err := m.Pack()
	if err != nil {
		s.log.Error().Err(err).Msg("issuer-sim: pack answer")
		return
	}
	defer func() { _ = recover() }() // the connection may have closed
	c.out <- frontend.AppendFrame(make([]byte, 0, len(body)+2), body)
}

func (s *Sim) answer(req *iso8583.Message, mti, rc, auth string) *iso8583.Message {
	m := iso8583.NewMessage(message.SpecASCII)
	m.MTI(mti)
	for _, id := range []int{2, 3, 4, 7, 11, 32, 37, 41, 42, 49, 70} {
		if req.GetField(id) != nil {
			v, _ := req.GetString(id)
			_ = m.Field(id, v)
		}
	}
	if auth != "" {
		_ = m.Field(38, auth)
	}
	_ = m.Field(39, rc)
	return m
}

// decide answers a financial message and books it in the ledger. drop means no answer.
func (s *Sim) decide(m *iso8583.Message, mti string) (resp *iso8583.Message, drop bool) {
	get := func(id int) string {
		if m.GetField(id) == nil {
			return ""
		}
		v, _ := m.GetString(id)
		return v
	}
	rrn, pan, amountRaw := get(37), get(2), get(4)
	amount, _ := strconv.ParseInt(amountRaw, 10, 64)
	respMTI := message.ResponseMTI(mti)
	if respMTI == "" {
		respMTI = "0810"
	}
	// Reversals (04xx) and advices (0120, 0220) are always acknowledged.
	if mti[1] == '4' || mti[2] == '2' {
		s.mu.Lock()
		e := s.entry(rrn, mti, amount)
		if mti[1] == '4' {
			e.Reversals++
			e.Reversed = true
		} else {
			e.Advices++
			e.StandIn = true
			e.Approved = true
			e.RC = message.RCApproved
		}
		s.mu.Unlock()
		return s.answer(m, respMTI, message.RCApproved, ""), false
	}

	rc, auth := s.authorize(m, pan, get(14), amountRaw)
	if rc == "" {
		s.mu.Lock()
		s.entry(rrn, mti, amount).Requests++
		s.mu.Unlock()
		return nil, true
	}
	s.mu.Lock()
	e := s.entry(rrn, mti, amount)
	e.Requests++
	if e.Requests == 1 {
		e.RC, e.Approved = rc, rc == message.RCApproved
	} else {
		rc = e.RC // a repeat gets the first answer
	}
	s.mu.Unlock()
	if rc == message.RCApproved {
		s.Stats.Approved.Add(1)
	} else {
		s.Stats.Declined.Add(1)
		auth = ""
	}
	return s.answer(m, respMTI, rc, auth), false
}

func (s *Sim) entry(rrn, mti string, amount int64) *Entry {
	e := s.ledger[rrn]
	if e == nil {
		e = &Entry{RRN: rrn, MTI: mti, Amount: amount}
		s.ledger[rrn] = e
	}
	return e
}

// authorize applies the demo issuer's rules; "" means no answer at all.
func (s *Sim) authorize(m *iso8583.Message, pan, expiry, amountRaw string) (rc, auth string) {
	if len(pan) < len(s.cfg.BIN) || pan[:len(s.cfg.BIN)] != s.cfg.BIN || !message.Luhn(pan) {
		return "14", ""
	}
	if e, ok := s.cards[pan]; ok {
		expiry = e
	}
	if expiry == "" || expired(expiry, s.cfg.Now()) {
		return message.RCExpiredCard, ""
	}
	if m.GetField(52) != nil && s.cfg.VerifyPIN != nil {
		b, _ := m.GetBytes(52)
		var block [8]byte
		copy(block[:], b)
		ok, err := s.cfg.VerifyPIN(pan, block)
		if err != nil {
			s.log.Warn().Err(err).Str("pan", message.MaskPAN(pan)).Msg("issuer-sim: PIN block not verifiable")
			return message.RCIncorrectPIN, ""
		}
		if !ok {
			return message.RCIncorrectPIN, ""
		}
	}
	if len(amountRaw) >= 2 {
		switch amountRaw[len(amountRaw)-2:] {
		case "51":
			return "51", ""
		case "05":
			return "05", ""
		case "91":
			return "", ""
		}
	}
	n := s.auth.Add(1) % 1000000
	return message.RCApproved, fmt.Sprintf("%06d", n)
}

func expired(yymm string, now time.Time) bool {
	if len(yymm) != 4 {
		return true
	}
	y, err1 := strconv.Atoi(yymm[:2])
	mo, err2 := strconv.Atoi(yymm[2:])
	if err1 != nil || err2 != nil || mo < 1 || mo > 12 {
		return true
	}
	// A card is valid through the last day of its expiry month.
	end := time.Date(2000+y, time.Month(mo)+1, 1, 0, 0, 0, 0, time.UTC)
	return !now.Before(end)
}
