// Package issuersim is an issuer host simulator: the demo issuer of `serve --demo`, the
// standalone `switchyard issuer-sim`, and the issuer of tests and benchmarks. It answers
// authorizations by the rules of the demo fleet, checks PINs through a verifier, keeps a
// ledger of what it approved and reversed, and injects faults on demand: dropped,
// delayed and duplicated answers, and disconnects.
package issuersim

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	// AdviceUnavailable answers reversals and advices 91 (issuer inoperative)
	// without booking them: an issuer whose front end answers while its host is
	// down, which a switch must send the advice to again.
	AdviceUnavailable float64
	// AdviceNoRC answers reversals and advices without DE 39, without booking
	// them: an answer that says nothing of the advice's fate, which a switch must
	// not take as an acknowledgement.
	AdviceNoRC float64
	// WrongMTI answers a financial request with the MTI of another class's answer
	// (a 0200 with 0410, a 0400 with 0210), its DE 11 and DE 37 echoed, and sends
	// no right answer: an answer the switch must not take for the request's.
	WrongMTI float64
}

// Config configures the simulator.
type Config struct {
	Addr string
	// BIN is the prefix of the cards the issuer owns (demo: 476173); others get 14.
	BIN string
	// Cards with a fixed expiry; every other Luhn-valid PAN of BIN is a good card.
	Cards []Card
	// Latency is the base answer time, plus up to Jitter at random. With LatencyP99
	// set, answer times are log-normal instead, with median Latency and 99th percentile
	// LatencyP99 (the long tail of real issuer hosts; at most 10 times LatencyP99), and
	// Jitter is not used.
	Latency, Jitter, LatencyP99 time.Duration
	Faults                      Faults
	// VerifyPIN checks DE 52 when present; nil accepts any PIN block.
	VerifyPIN PINVerifier
	// KeyChange takes a new zone PIN key from an 0800 with DE 70 = 161 (DE 48 WP,
	// HEXKEY:KCV under the zone master key); nil refuses key changes.
	KeyChange func(wp string) error
	// Now is the clock (for expiry); nil means time.Now.
	Now func() time.Time
	// Logger receives the simulator's messages, tagged by the wiring
	// (component=issuer-sim); the zero value logs nothing.
	Logger zerolog.Logger
	// LedgerLimit is how many transactions the ledger keeps, the oldest forgotten
	// beyond it; 0 keeps every one (tests and the fault bench read the whole
	// ledger). The demo issuer keeps DemoLedgerLimit.
	LedgerLimit int
	// Balance is the available balance, in minor units of the request's currency,
	// of every card: an approved balance inquiry (DE 3 31xxxx) is answered with it
	// in DE 54 (ISO 8583:1987: the request's account type, amount type 02
	// available, DE 49, sign C, 12 digits). 0: DemoBalance; negative: a debit
	// balance (sign D).
	Balance int64
}

// DemoBalance is Config.Balance when not set: 12,345.67 in minor units.
const DemoBalance = 1234567

// DemoLedgerLimit is the demo issuer's LedgerLimit: a demo switch runs for days, and
// a ledger of every transaction grew its heap by ~200 bytes a transaction for good
// (1.2 GB over 5.9 million in a trial).
const DemoLedgerLimit = 100_000

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
	// ReversedAt is when the first reversal message for it came (zero: none came), so
	// a harness can time the delivery of the reversals a switch owed.
	ReversedAt time.Time `json:"reversed_at,omitzero"`
	// AnsweredAt is when the simulator first handed an answer to a request for it
	// to the connection (zero: none yet, or none will come), so that a harness can
	// tell a delayed answer on its way to the switch from one still held.
	AnsweredAt time.Time `json:"answered_at,omitzero"`
	// Fault is the fault injected into its answer, if any: "dropped", "disconnect" or
	// "delayed" (the first one, when the request came more than once).
	Fault string `json:"fault,omitempty"`
	// STAN, DE7 and AcquirerID are DE 11, DE 7 and DE 32 of the first request or
	// advice that came for it, and FirstMTI its MTI: what DE 90 of a reversal must
	// name (Original90). Reversal90 is DE 90 of the first reversal that came.
	FirstMTI   string `json:"first_mti,omitempty"`
	STAN       string `json:"stan,omitempty"`
	DE7        string `json:"de7,omitempty"`
	AcquirerID string `json:"acquirer_id,omitempty"`
	Reversal90 string `json:"reversal_90,omitempty"`
	// AdviceICC is DE 55 of the first advice that carried one (an offline
	// approval's chip data: the card's transaction certificate).
	AdviceICC string `json:"advice_icc,omitempty"`
	// AdviceExpiry is DE 14 (the card's expiry) of the first advice that carried
	// one, as the issuer gets it: a switch's test checks that an advice it rebuilt
	// after a restart carries it. Cardholder data: kept out of the ledger's JSON
	// (the simulator's GET /ledger), for in-process readers only.
	AdviceExpiry string `json:"-"`
}

// Original90 is the DE 90 (ISO 8583:1987, n42) that a reversal of e must carry for
// an issuer that matches reversals on it: the MTI, DE 11 and DE 7 of the message
// that came first for e, the acquiring institution (its DE 32, in 11 digits) and no
// forwarding institution (zeros). "" if only reversals came.
func (e Entry) Original90() string {
	if e.FirstMTI == "" || len(e.AcquirerID) > 11 {
		return ""
	}
	return e.FirstMTI + e.STAN + e.DE7 + strings.Repeat("0", 11-len(e.AcquirerID)) + e.AcquirerID + strings.Repeat("0", 11)
}

// first notes, in e, DE 11, 7 and 32 of m, the first request or advice for e.
func (e *Entry) first(m *simMsg) {
	if e.FirstMTI == "" {
		e.FirstMTI, e.STAN, e.DE7, e.AcquirerID = m.mti, m.get(11), m.get(7), m.get(32)
	}
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
	order   []string // with LedgerLimit: the ledger's RRNs, a ring, oldest at next
	next    int
	conns   map[net.Conn]struct{}
	closing bool
	wg      sync.WaitGroup

	faultMu   sync.RWMutex
	hasFaults atomic.Bool // any fault probability above zero

	// outage is the current OutageMode (OutageNone when the issuer is up); see outage.go.
	outage atomic.Int32
	// downAddr is the address to listen on again when an outage of mode OutageDown
	// ends (the listener is closed meanwhile).
	downAddr string
}

// Start listens on cfg.Addr and serves until Close.
func Start(cfg Config) (*Sim, error) {
	if cfg.BIN == "" {
		cfg.BIN = "476173"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LatencyP99 > 0 && (cfg.Latency <= 0 || cfg.LatencyP99 < cfg.Latency) {
		return nil, fmt.Errorf("issuer simulator: latency p99 %v needs a median latency above zero and not above it (median %v)", cfg.LatencyP99, cfg.Latency)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("issuer simulator: %w", err)
	}
	s := &Sim{cfg: cfg, log: cfg.Logger, ln: ln,
		cards: map[string]string{}, ledger: map[string]*Entry{}, conns: map[net.Conn]struct{}{}}
	for _, c := range cfg.Cards {
		s.cards[c.PAN] = c.Expiry
	}
	s.hasFaults.Store(cfg.Faults != Faults{})
	s.wg.Add(1)
	go s.accept(ln)
	return s, nil
}

// Addr is the listening address (it stays the same over an outage).
func (s *Sim) Addr() string { return s.addr() }

// SetFaults changes the injected faults while running.
func (s *Sim) SetFaults(f Faults) {
	s.faultMu.Lock()
	s.cfg.Faults = f
	s.hasFaults.Store(f != Faults{})
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
	ln := s.ln
	s.ln = nil
	s.mu.Unlock()
	var err error
	if ln != nil { // nil during an outage of mode OutageDown
		err = ln.Close()
	}
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

func (s *Sim) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn().Err(err).Msg("accept")
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.closing || s.ln != ln { // closed, or its listener closed by an outage
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
	var held []byte // answers not yet handed to the writer (inline answering only)
	for {
		body, err := frontend.ReadFrame(r, nil, 0xFFFF)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug().Err(err).Msg("issuer-sim read")
			}
			break
		}
		m, err := parse(body)
		if err != nil {
			s.log.Warn().Err(err).Msg("issuer-sim: undecodable message; closing connection")
			break
		}
		if s.cfg.Latency == 0 && s.cfg.Jitter == 0 && s.cfg.LatencyP99 == 0 && !s.hasFaults.Load() {
			// Nothing to wait for: answer in order, without a goroutine, and write the
			// answers to all the requests read in one go together.
			s.handle(ctx, c, m, &held)
			if r.Buffered() < 2 && len(held) > 0 {
				c.send(held)
				held = nil
			}
			continue
		}
		if len(held) > 0 {
			c.send(held)
			held = nil
		}
		pending.Add(1)
		go func() {
			defer pending.Done()
			s.handle(ctx, c, m, nil)
		}()
	}
	if len(held) > 0 {
		c.send(held)
	}
	cancel()
	_ = nc.Close()
	pending.Wait()
	close(c.out)
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
}

// simFields are the fields the simulator reads or echoes; simSlot maps a field number
// to its place in simMsg (0: not kept).
var (
	simFields = [...]int{2, 3, 4, 7, 11, 14, 32, 37, 41, 42, 48, 49, 52, 55, 70, 90}
	simSlot   = func() (t [129]uint8) {
		for i, id := range simFields {
			t[id] = uint8(i + 1)
		}
		return t
	}()
)

// simMsg is a request as the simulator sees it: its MTI and the text of the fields it
// uses (DE 52 as hex characters).
type simMsg struct {
	mti  string
	vals [len(simFields) + 1]string
}

func (m *simMsg) get(id int) string { return m.vals[simSlot[id]] }

// parse reads a message with the switch's zero-allocation scanner; only the fields the
// simulator uses are copied.
func parse(body []byte) (*simMsg, error) {
	m := new(simMsg)
	mti, err := message.Scan(body, message.DialectASCII, func(id int, v []byte) {
		if slot := simSlot[id]; slot != 0 {
			m.vals[slot] = string(v)
		}
	})
	if err != nil {
		return nil, err
	}
	m.mti = string(mti)
	return m, nil
}

func (s *Sim) handle(ctx context.Context, c *simConn, m *simMsg, held *[]byte) {
	mti := m.mti
	if OutageMode(s.outage.Load()) != OutageNone {
		// A silent host reads and answers nothing, echoes included; the ledger does
		// not see what the issuer never processed.
		s.Stats.Dropped.Add(1)
		return
	}
	if mti == "0800" {
		s.Stats.Network.Add(1)
		rc := message.RCApproved
		if m.get(70) == message.NMKeyChange {
			rc = s.keyChange(m)
		}
		s.reply(c, s.answer(m, "0810", rc, ""), held)
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
		s.markFault(m, "dropped")
		return
	case roll < f.Drop+f.Disconnect:
		s.Stats.Disconnects.Add(1)
		s.markFault(m, "disconnect")
		_ = c.nc.Close()
		return
	}
	wait := s.cfg.answerTime(rand.NormFloat64, rand.Float64)
	if roll < f.Drop+f.Disconnect+f.Delay {
		s.Stats.Delayed.Add(1)
		s.markFault(m, "delayed")
		wait += f.DelayBy
	}
	if wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
	if f.WrongMTI > 0 && len(resp) >= 4 && rand.Float64() < f.WrongMTI {
		s.markFault(m, "wrong-mti")
		resp = slices.Clone(resp)
		if resp[1] == '4' {
			resp[1] = '2'
		} else {
			resp[1] = '4'
		}
	}
	s.markAnswered(m)
	s.reply(c, resp, held)
	if roll >= 1-f.Duplicate {
		s.Stats.Duplicated.Add(1)
		s.reply(c, resp, held)
	}
}

// keyChange applies a zone key change and returns the answer's response code.
func (s *Sim) keyChange(m *simMsg) string {
	if s.cfg.KeyChange == nil {
		return message.RCInvalidTransaction
	}
	tl, err := message.ParseTLV(m.get(48))
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

func (s *Sim) reply(c *simConn, body []byte, held *[]byte) {
	if body == nil {
		return
	}
	if held != nil {
		*held = frontend.AppendFrame(*held, body)
		return
	}
	c.send(frontend.AppendFrame(make([]byte, 0, len(body)+2), body))
}

// send hands framed bytes to the connection's writer.
func (c *simConn) send(frames []byte) {
	defer func() { _ = recover() }() // the connection may have closed
	c.out <- frames
}

// answer encodes the answer to req: its identifying fields echoed, DE 38 and DE 39 set.
func (s *Sim) answer(req *simMsg, mti, rc, auth string) []byte {
	return s.answerWith(req, mti, rc, auth, "")
}

// answerWith is answer with DE 54 (additional amounts; "" for none).
func (s *Sim) answerWith(req *simMsg, mti, rc, auth, de54 string) []byte {
	b := message.NewBuilder(message.DialectASCII, mti)
	for _, id := range [...]int{2, 3, 4, 7, 11, 32, 37, 41, 42, 49, 70} {
		b.Set(id, req.get(id))
	}
	body, err := b.Set(38, auth).Set(39, rc).Set(54, de54).Bytes(nil)
	if err != nil {
		s.log.Error().Err(err).Str("mti", mti).Msg("issuer-sim: encode answer")
		return nil
	}
	return body
}

// decide answers a financial message and books it in the ledger. drop means no answer.
func (s *Sim) decide(m *simMsg, mti string) (resp []byte, drop bool) {
	get := m.get
	rrn, pan, amountRaw := get(37), get(2), get(4)
	amount, _ := strconv.ParseInt(amountRaw, 10, 64)
	respMTI := message.ResponseMTI(mti)
	if respMTI == "" {
		respMTI = "0810"
	}
	// Reversals (04xx) and advices (0120, 0220) are acknowledged, unless the
	// issuer is made to answer them unprocessed (Faults.AdviceUnavailable).
	if mti[1] == '4' || mti[2] == '2' {
		if f := s.faults(); f.AdviceUnavailable > 0 && rand.Float64() < f.AdviceUnavailable {
			return s.answer(m, respMTI, message.RCIssuerUnavailable, ""), false
		} else if f.AdviceNoRC > 0 && rand.Float64() < f.AdviceNoRC {
			return s.answer(m, respMTI, "", ""), false
		}
		s.mu.Lock()
		e := s.entry(rrn, mti, amount)
		if mti[1] == '4' {
			e.Reversals++
			if !e.Reversed {
				e.Reversed, e.ReversedAt, e.Reversal90 = true, s.cfg.Now(), m.get(90)
			}
		} else {
			e.first(m)
			e.Advices++
			if e.AdviceICC == "" {
				e.AdviceICC = m.get(55)
			}
			if e.AdviceExpiry == "" {
				e.AdviceExpiry = m.get(14)
			}
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
		e := s.entry(rrn, mti, amount)
		e.first(m)
		e.Requests++
		s.mu.Unlock()
		return nil, true
	}
	s.mu.Lock()
	e := s.entry(rrn, mti, amount)
	e.first(m)
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
	return s.answerWith(m, respMTI, rc, auth, s.balance(m, rc)), false
}

// balance is DE 54 of the answer to m: for an approved balance inquiry (DE 3
// 31xxxx), the available balance (Config.Balance) in ISO 8583:1987's layout; ""
// otherwise.
func (s *Sim) balance(m *simMsg, rc string) string {
	proc := m.get(3)
	if rc != message.RCApproved || len(proc) != 6 || proc[:2] != "31" {
		return ""
	}
	cur := m.get(49)
	if len(cur) != 3 {
		cur = "156"
	}
	bal, sign := s.cfg.Balance, "C"
	if bal == 0 {
		bal = DemoBalance
	}
	if bal < 0 {
		bal, sign = -bal, "D"
	}
	return fmt.Sprintf("%s02%s%s%012d", proc[2:4], cur, sign, bal%1_000_000_000_000)
}

// markFault books the fault injected into the answer to m in its ledger entry.
func (s *Sim) markFault(m *simMsg, fault string) {
	s.mu.Lock()
	if e := s.ledger[m.get(37)]; e != nil && e.Fault == "" {
		e.Fault = fault
	}
	s.mu.Unlock()
}

// markAnswered sets the AnsweredAt of m's entry, if it has none yet.
func (s *Sim) markAnswered(m *simMsg) {
	s.mu.Lock()
	if e := s.ledger[m.get(37)]; e != nil && e.AnsweredAt.IsZero() {
		e.AnsweredAt = s.cfg.Now()
	}
	s.mu.Unlock()
}

func (s *Sim) entry(rrn, mti string, amount int64) *Entry {
	e := s.ledger[rrn]
	if e == nil {
		e = &Entry{RRN: rrn, MTI: mti, Amount: amount}
		s.ledger[rrn] = e
		if n := s.cfg.LedgerLimit; n > 0 {
			if len(s.order) < n {
				s.order = append(s.order, rrn)
			} else {
				delete(s.ledger, s.order[s.next])
				s.order[s.next] = rrn
				s.next = (s.next + 1) % n
			}
		}
	}
	return e
}

// authorize applies the demo issuer's rules; "" means no answer at all.
func (s *Sim) authorize(m *simMsg, pan, expiry, amountRaw string) (rc, auth string) {
	if len(pan) < len(s.cfg.BIN) || pan[:len(s.cfg.BIN)] != s.cfg.BIN || !message.Luhn(pan) {
		return "14", ""
	}
	if e, ok := s.cards[pan]; ok {
		expiry = e
	}
	if expiry == "" || expired(expiry, s.cfg.Now()) {
		return message.RCExpiredCard, ""
	}
	if de52 := m.get(52); de52 != "" && s.cfg.VerifyPIN != nil {
		var block [8]byte
		if len(de52) != 16 {
			return message.RCIncorrectPIN, ""
		}
		if _, err := hex.Decode(block[:], []byte(de52)); err != nil {
			return message.RCIncorrectPIN, ""
		}
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
	var a [6]byte
	for i := 5; i >= 0; i-- {
		a[i] = byte('0' + n%10)
		n /= 10
	}
	return message.RCApproved, string(a[:])
}

// z99 is the 99th percentile of the standard normal distribution.
const z99 = 2.326347874

// answerTime draws one answer time; normal and uniform draw from N(0, 1) and [0, 1).
func (c *Config) answerTime(normal, uniform func() float64) time.Duration {
	if c.LatencyP99 > 0 && c.Latency > 0 {
		sigma := math.Log(float64(c.LatencyP99)/float64(c.Latency)) / z99
		d := time.Duration(float64(c.Latency) * math.Exp(sigma*normal()))
		return min(d, 10*c.LatencyP99)
	}
	d := c.Latency
	if c.Jitter > 0 {
		d += time.Duration(uniform() * float64(c.Jitter))
	}
	return d
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
