package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// The demo fleet's public test keys, as its terminals (and the bench's) hold them.
const (
	demoTPK = "C1D0F8FB4958670DBA40AB1F3752EF0D"
	demoTAK = "404142434445464748494A4B4C4D4E4F"
	demoBDK = "0123456789ABCDEFFEDCBA9876543210"
)

// Labels of generated traffic: legitimate, or one fraud scenario.
const (
	LabelLegit           = "legitimate"
	LabelRelocated       = "relocated-terminal"
	LabelSwappedSIM      = "swapped-sim"
	LabelRooted          = "rooted-softpos"
	LabelStaleAttest     = "stale-attestation"
	LabelCardTesting     = "card-testing"
	LabelCashOut         = "cash-out"
	LabelOverLimit       = "over-limit-softpos"
	LabelForgedMAC       = "forged-mac"
	labelNonFinancialPfx = "legitimate-" // 0800, 0400, 0500: answered but not authorizations
)

// shareLabels are the fraud scenarios that take a share of the requests.
var shareLabels = []string{LabelRelocated, LabelSwappedSIM, LabelRooted, LabelStaleAttest, LabelCardTesting, LabelCashOut, LabelOverLimit, LabelForgedMAC,
	LabelForgedToken, LabelReplayedToken}

// FraudLabels are the fraud scenarios the fleet generates, in report order: those
// that take a share of the requests, then the paced ones of patterns.go.
var FraudLabels = append(append([]string(nil), shareLabels...),
	LabelCardTestSpread, LabelCardTestAbove, LabelCardTestInquiry, LabelStructuring, LabelSplitTerminals, LabelCardTestSlow)

// benchTerminal is a terminal of the bench's own fleet, registered before the run.
type benchTerminal struct {
	id, merchant, kind  string
	serial, iccid, imei string
	lat, lon            float64
	radius              int
}

// fleetPlan is who plays which part.
type fleetPlan struct {
	legitPOS, legitSoftPOS                []benchTerminal
	relocated, swapped, cardTest, cashOut []benchTerminal
	rooted, stale, overLimit, forged      []benchTerminal
	hooked                                []benchTerminal // SoftPOS apps sending forged or replayed attestation tokens
	all                                   []benchTerminal
	pat                                   patternTerminals
}

func newFleetPlan() *fleetPlan {
	p := &fleetPlan{}
	mk := func(prefix, merchant, kind string, n int, lat, lon float64, radius int) []benchTerminal {
		out := make([]benchTerminal, n)
		for i := range out {
			id := fmt.Sprintf("%s%06d", prefix, len(p.all)+i+1)
			// IMEIs and ICCIDs in ranges of their own (861..., 89861...), apart
			// from the demo fleet's (860..., 89860...): a SIM or IMEI is one
			// terminal's, and the registry refuses an import that shares one.
			out[i] = benchTerminal{id: id, merchant: merchant, kind: kind, serial: "SN-" + id, imei: fmt.Sprintf("861%012d", len(p.all)+i+1),
				lat: lat, lon: lon, radius: radius}
			if kind == "pos" {
				out[i].iccid = fmt.Sprintf("89861%015d", len(p.all)+i+1)
			}
		}
		p.all = append(p.all, out...)
		return out
	}
	const grocery, stall = "000000000000001", "000000000000002"
	// Legitimate bench traffic goes to the standard merchant: the micro one's daily
	// limit (10,000.00) would turn it into limit declines.
	p.legitPOS = mk("BP", grocery, "pos", 100, 39.9042, 116.4074, 1000)
	p.relocated = mk("BP", grocery, "pos", 4, 39.9042, 116.4074, 1000)
	p.swapped = mk("BP", grocery, "pos", 4, 39.9042, 116.4074, 1000)
	// Card testing and cash-out at a micro merchant of the bench's own with the
	// stall's limits, not at the stall: the stall's real till sends legitimate
	// traffic, which a merchant-wide rule would decline with them.
	p.cardTest = mk("BM", mAttacked.id, "pos", 4, 31.2304, 121.4737, 5000)
	p.cashOut = mk("BM", mAttacked.id, "pos", 8, 31.2304, 121.4737, 5000)
	p.legitSoftPOS = mk("BS", grocery, "softpos", 100, 39.9042, 116.4074, 5000)
	p.rooted = mk("BS", stall, "softpos", 8, 31.2304, 121.4737, 5000)
	p.stale = mk("BS", stall, "softpos", 4, 31.2304, 121.4737, 5000)
	p.overLimit = mk("BS", stall, "softpos", 4, 31.2304, 121.4737, 5000)
	p.forged = mk("BS", stall, "softpos", 4, 31.2304, 121.4737, 5000)
	p.addPatternTerminals(mk)
	p.hooked = mk("BS", stall, "softpos", 8, 31.2304, 121.4737, 5000)
	return p
}

// csv is the terminal import file of the plan.
func (p *fleetPlan) csv() string {
	var b strings.Builder
	b.WriteString("terminal_id,merchant_id,kind,status,device_serial,iccid,imei,lat,lon,radius_m,missing_policy,pin_mode,tpk,tak,mac_required\n")
	for _, t := range p.all {
		pin, tpk, tak, mac := "tpk", "LT.TPK", "", "false"
		if t.kind == "softpos" {
			pin, tpk, tak, mac = "", "", "T0000002.TAK", "true"
		}
		fmt.Fprintf(&b, "%s,%s,%s,active,%s,%s,%s,%.4f,%.4f,%d,decline,%s,%s,%s,%s\n",
			t.id, t.merchant, t.kind, t.serial, t.iccid, t.imei, t.lat, t.lon, t.radius, pin, tpk, tak, mac)
	}
	return b.String()
}

// registerFleet imports the bench terminals through the admin API: requested by the
// demo operator, approved by the demo reviewer, as an acquirer's staff would.
func registerFleet(ctx context.Context, adminURL string, p *fleetPlan) error {
	op := &apiclient.Client{BaseURL: adminURL, Token: "demo-operator-7Kq2"}
	rev := &apiclient.Client{BaseURL: adminURL, Token: "demo-reviewer-3Xm9"}
	var rep struct {
		Accepted, Rejected int
		Rows               []struct {
			Line  int
			Error string
		}
		Change *struct{ ID string }
	}
	if err := registerMerchants(ctx, op, rev); err != nil {
		return err
	}
	if err := op.Do(ctx, "POST", "/api/v1/terminals/import", map[string]string{"csv": p.csv(), "reason": "bench fleet"}, &rep); err != nil {
		return fmt.Errorf("import bench terminals: %w", err)
	}
	if rep.Rejected > 0 || rep.Change == nil {
		for _, r := range rep.Rows {
			if r.Error != "" {
				return fmt.Errorf("import bench terminals: line %d: %s", r.Line, r.Error)
			}
		}
		return fmt.Errorf("import bench terminals: nothing accepted")
	}
	if err := rev.Do(ctx, "POST", "/api/v1/changes/"+rep.Change.ID+"/approve", map[string]string{"note": "bench"}, nil); err != nil {
		return fmt.Errorf("approve bench terminals: %w", err)
	}
	return nil
}

// approval is an approved purchase a terminal may void, refund or reverse later.
type approval struct {
	stan, de7, rrn, auth, pan string
	amount                    int64
	// kind and tid: a paced pattern's follow-up (patterns.go), "" for the others.
	kind, tid string
	// at is when the request was generated: a purchase sent before the terminal's
	// last batch close is in a closed batch, which a void may no longer take back.
	at time.Time
}

// termState is what a generated terminal remembers.
type termState struct {
	mu     sync.Mutex
	stan   uint32
	recent []approval
	// closed is when the terminal last sent its batch totals (0500): as a real
	// terminal, it forgets the purchases of the batch then, since the switch
	// declines a void of a closed batch's purchase (void-batch-closed).
	closed time.Time
}

func (s *termState) nextSTAN() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stan = s.stan%999999 + 1
	return fmt.Sprintf("%06d", s.stan)
}

// Fleet generates the request mix: the 2,000 load terminals' ordinary traffic (the
// bulk, from patched templates), the bench terminals' legitimate traffic, and the
// fraud scenarios, each request labelled with its ground truth.
type Fleet struct {
	plan   *fleetPlan
	cards  []string
	lt     []*template
	state  sync.Map // terminal ID -> *termState
	ltMix  atomic.Uint64
	fraud  float64 // share of requests from the fraud scenarios
	bench  float64 // share from the bench terminals' legitimate traffic
	mac    message.MACFunc
	badMAC message.MACFunc

	cashOnce  sync.Once
	cashCards []string
	tokens    tokenBook // good attestation tokens issued, for the replay scenario

	pat patterns

	// newCards, when above zero, makes every request a purchase at a bench merchant's
	// till with a card not used before, newCards of them (cards.go's distinct-cards
	// run); cardSeq counts the cards used.
	newCards int64
	cardSeq  atomic.Int64
	// QRShare is the share of the load terminals' requests that are QR purchases
	// with a payment code (cycling through the default table's networks); 0 (the
	// default) keeps the card-only mix, so that figures stay comparable.
	QRShare float64
	qrSeq   atomic.Uint64
}

// NewFleet builds the generator for terminals load terminals.
func NewFleet(terminals int, cards int) (*Fleet, error) {
	// Shares of the requests: the bench terminals' legitimate traffic stays under the
	// terminal-velocity rule (30 a minute on a non-enterprise till) up to ~20,000/s.
	f := &Fleet{plan: newFleetPlan(), cards: Cards(cards), fraud: 0.015, bench: 0.003}
	for i := 0; i < terminals; i++ {
		t, err := buildTemplate(fmt.Sprintf("LT%06d", i+1), message.DialectASCII)
		if err != nil {
			return nil, err
		}
		f.lt = append(f.lt, t)
	}
	f.initPatterns()
	var err error
	if f.mac, err = termclient.RetailMAC(demoTAK); err != nil {
		return nil, err
	}
	f.badMAC, _ = termclient.RetailMAC("0000000000000000FFFFFFFFFFFFFFFF")
	return f, nil
}

func (f *Fleet) term(id string) *termState {
	if s, ok := f.state.Load(id); ok {
		return s.(*termState)
	}
	s, _ := f.state.LoadOrStore(id, &termState{})
	return s.(*termState)
}

// request is one generated request.
type request struct {
	body  []byte
	key   string // DE 41 + DE 11
	label string
	// follow carries what a purchase needs to be remembered for follow-ups.
	follow *approval
	tid    string
}

func posTags(t benchTerminal) [][2]string {
	return [][2]string{{"DI", t.serial}, {"SI", t.iccid}, {"IM", t.imei}, {"GL", fmt.Sprintf("%.6f,%.6f", t.lat, t.lon)}, {"AV", "2.1.0"}}
}

func softposTags(t benchTerminal, now time.Time) [][2]string {
	return [][2]string{{"DI", t.serial}, {"IM", t.imei}, {"GL", fmt.Sprintf("%.6f,%.6f", t.lat, t.lon)}, {"AV", "2.1.0"},
		{"AJ", "sign:-20"}, {"IF", ""}} // a token issued 20 s ago (attest.go)
}

func setTag(tags [][2]string, k, v string) [][2]string {
	for i := range tags {
		if tags[i][0] == k {
			tags[i][1] = v
			return tags
		}
	}
	return append(tags, [2]string{k, v})
}

// bigCard returns a card from a pool of a million, for traffic that must not repeat
// cards (per-card velocity) on non-enterprise merchants.
func bigCard(rng *rand.Rand) string {
	base := []byte(fmt.Sprintf("4761736%08d", rng.IntN(1_000_000)))
	for d := byte('0'); d <= '9'; d++ {
		if message.Luhn(string(base) + string(d)) {
			return string(base) + string(d)
		}
	}
	return ""
}

// Next builds the next request.
func (f *Fleet) Next(rng *rand.Rand, now time.Time) (request, error) {
	if f.newCards > 0 {
		return f.newCardRequest(rng, now)
	}
	if req, ok, err := f.nextPaced(rng, now); ok {
		return req, err
	}
	r := rng.Float64()
	switch {
	case r < f.fraud:
		return f.fraudRequest(rng, now)
	case r < f.fraud+f.bench:
		return f.benchLegit(rng, now)
	}
	return f.loadRequest(rng, now)
}

func (f *Fleet) build(tx termclient.Txn, mac message.MACFunc, label string) (request, error) {
	// The ground truth goes with the authorizations and reversals (DE 48 LB): the
	// switch journals it, and `rules backtest` reports rates by label. The load
	// terminals' template purchases (the bulk) carry none.
	switch tx.MTI {
	case "", "0100", "0200", "0400":
		tx.TLV = append(tx.TLV[:len(tx.TLV):len(tx.TLV)], [2]string{message.TagLabel, label})
	}
	if err := f.attestTokens(&tx, label); err != nil {
		return request{}, err
	}
	m, err := termclient.Build(tx, message.DialectASCII)
	if err != nil {
		return request{}, err
	}
	body, err := message.Pack(m, mac)
	if err != nil {
		return request{}, err
	}
	return request{body: body, key: tx.TID + tx.STAN, label: label, tid: tx.TID}, nil
}

// loadRequest is the load terminals' ordinary traffic: mostly purchases from the
// template, and PINs, pre-authorizations, voids, refunds, reversals, balance
// inquiries, echoes and batch totals.
func (f *Fleet) loadRequest(rng *rand.Rand, now time.Time) (request, error) {
	i := int(f.ltMix.Add(1)) % len(f.lt)
	t := f.lt[i]
	st := f.term(t.tid)
	k := rng.IntN(1000)
	amounts := []int64{1000, 2500, 4800, 8800, 12000, 15600, 23000, 39900}
	pick := func() int64 { return amounts[rng.IntN(len(amounts))] }
	base := termclient.Txn{TID: t.tid, MID: "000000000000003", Expiry: "2912", Time: now}
	if f.QRShare > 0 && rng.Float64() < f.QRShare {
		tx := base
		tx.Expiry, tx.QRCode, tx.Amount, tx.STAN = "", qrCode(rng, f.qrSeq.Add(1)), pick(), st.nextSTAN()
		return f.build(tx, nil, LabelLegit)
	}
	switch {
	case k < 60: // purchase with a PIN under the TPK
		tx := base
		tx.PAN, tx.Amount, tx.STAN = bigCard(rng), pick(), st.nextSTAN()
		block, err := termclient.PINBlockTPK(demoTPK, "1234", tx.PAN)
		if err != nil {
			return request{}, err
		}
		tx.PINBlock = block
		req, err := f.build(tx, nil, LabelLegit)
		req.follow = &approval{stan: tx.STAN, de7: message.FormatDE7(now), pan: tx.PAN, amount: tx.Amount, at: now}
		return req, err
	case k < 90: // pre-authorization
		tx := base
		tx.MTI, tx.PAN, tx.Amount, tx.STAN = "0100", bigCard(rng), pick(), st.nextSTAN()
		return f.build(tx, nil, LabelLegit)
	case k < 110, k < 130, k < 140: // void, partial refund, reversal of an earlier purchase
		st.mu.Lock()
		var a approval
		ok := len(st.recent) > 0
		if ok {
			j := rng.IntN(len(st.recent))
			a = st.recent[j]
			st.recent = append(st.recent[:j], st.recent[j+1:]...)
		}
		st.mu.Unlock()
		if !ok {
			break
		}
		tx := base
		tx.STAN = st.nextSTAN()
		switch {
		case k < 110:
			tx.PAN, tx.Amount, tx.ProcCode, tx.RRN, tx.AuthCode = a.pan, a.amount, message.PCVoid, a.rrn, a.auth
			return f.build(tx, nil, LabelLegit)
		case k < 130:
			tx.PAN, tx.Amount, tx.ProcCode, tx.RRN = a.pan, a.amount/2, message.PCRefund, a.rrn
			return f.build(tx, nil, LabelLegit)
		default:
			tx.MTI, tx.Amount, tx.Original = "0400", a.amount, termclient.OriginalData("0200", a.stan, a.de7)
			return f.build(tx, nil, labelNonFinancialPfx+"reversal")
		}
	case k < 145: // balance inquiry
		tx := base
		tx.PAN, tx.ProcCode, tx.STAN = bigCard(rng), message.PCBalance, st.nextSTAN()
		return f.build(tx, nil, LabelLegit)
	case k < 150: // echo
		return f.build(termclient.Txn{MTI: "0800", NetCode: message.NMEcho, TID: t.tid, STAN: st.nextSTAN(), Time: now}, nil, labelNonFinancialPfx+"echo")
	case k < 151: // batch totals (the terminal does not track them here: 00 or 95 both answer)
		st.mu.Lock()
		st.recent, st.closed = st.recent[:0], now
		st.mu.Unlock()
		return f.build(termclient.Txn{MTI: "0500", ProcCode: message.PCBatch, TID: t.tid, MID: "000000000000003", STAN: st.nextSTAN(), Time: now,
			TLV: [][2]string{{"BT", "0,0,0,0"}}}, nil, labelNonFinancialPfx+"batch")
	}
	// The template purchase: patched in place, no encoding.
	stan := st.nextSTAN()
	body := append([]byte(nil), t.body...)
	copy(body[t.stanOff:t.stanOff+6], stan)
	copy(body[t.de7Off:t.de7Off+10], message.FormatDE7(now))
	pan := bigCard(rng)
	copy(body[t.panOff:t.panOff+16], pan)
	amount := pick()
	putDigits(body[t.amountOff:t.amountOff+12], uint64(amount))
	return request{body: body, key: t.tid + stan, label: LabelLegit, tid: t.tid,
		follow: &approval{stan: stan, de7: message.FormatDE7(now), pan: pan, amount: amount, at: now}}, nil
}

// benchLegit is the bench terminals' ordinary traffic: bound POS with their identity,
// SoftPOS phones with a fresh attestation and a MAC, small contactless amounts.
func (f *Fleet) benchLegit(rng *rand.Rand, now time.Time) (request, error) {
	return f.benchLegitCard(rng, now, bigCard(rng))
}

// benchLegitCard is benchLegit with the card pan.
func (f *Fleet) benchLegitCard(rng *rand.Rand, now time.Time, pan string) (request, error) {
	if rng.IntN(2) == 0 {
		t := f.plan.legitPOS[rng.IntN(len(f.plan.legitPOS))]
		tx := termclient.Txn{TID: t.id, MID: t.merchant, PAN: pan, Amount: int64(500 + rng.IntN(40)*250), Expiry: "2912",
			STAN: f.term(t.id).nextSTAN(), Time: now, TLV: posTags(t)}
		return f.build(tx, nil, LabelLegit)
	}
	t := f.plan.legitSoftPOS[rng.IntN(len(f.plan.legitSoftPOS))]
	tx := termclient.Txn{TID: t.id, MID: t.merchant, PAN: pan, Amount: int64(300 + rng.IntN(60)*100), Expiry: "2912",
		STAN: f.term(t.id).nextSTAN(), Time: now, TLV: softposTags(t, now)}
	return f.build(tx, f.mac, LabelLegit)
}

// fraudRequest is one request of a fraud scenario, the scenarios in equal shares.
func (f *Fleet) fraudRequest(rng *rand.Rand, now time.Time) (request, error) {
	p := f.plan
	label := shareLabels[rng.IntN(len(shareLabels))]
	pickT := func(ts []benchTerminal) benchTerminal { return ts[rng.IntN(len(ts))] }
	var t benchTerminal
	var tags [][2]string
	mac := message.MACFunc(nil)
	amount := int64(500 + rng.IntN(40)*250)
	pan, expiry := bigCard(rng), "2912"
	switch label {
	case LabelRelocated: // the POS, carried 1,000 km away
		t = pickT(p.relocated)
		tags = setTag(posTags(t), "GL", fmt.Sprintf("%.6f,%.6f", 31.2304+rng.Float64(), 121.4737))
	case LabelSwappedSIM: // the POS with another SIM
		t = pickT(p.swapped)
		tags = setTag(posTags(t), "SI", fmt.Sprintf("8986%016d", 900000+rng.IntN(99999)))
	case LabelRooted:
		t = pickT(p.rooted)
		tags, mac = setTag(softposTags(t, now), "IF", []string{"root", "hook", "debugger", "emulator"}[rng.IntN(4)]), f.mac
	case LabelStaleAttest:
		t = pickT(p.stale)
		tags, mac = setTag(softposTags(t, now), "AJ", fmt.Sprintf("sign:-%d", 300+rng.IntN(290))), f.mac // 5 to 10 min old
	case LabelOverLimit:
		t = pickT(p.overLimit)
		tags, mac, amount = softposTags(t, now), f.mac, int64(100001+rng.IntN(400000))
	case LabelForgedMAC:
		t = pickT(p.forged)
		tags, mac = softposTags(t, now), f.badMAC
	case LabelForgedToken: // a hooked app signs its own verdict under the service's key ID
		t = pickT(p.hooked)
		tags, mac = setTag(softposTags(t, now), "AJ", "forge"), f.mac
	case LabelReplayedToken: // a hooked app attaches a token captured from an honest phone
		t = pickT(p.hooked)
		tags, mac = setTag(softposTags(t, now), "AJ", "replay"), f.mac
	case LabelCardTesting: // tiny amounts, a different stolen or made-up card each time
		t = pickT(p.cardTest)
		tags, amount = posTags(t), int64(100+rng.IntN(100))
		switch v := rng.IntN(10); {
		case v < 4: // made up: fails the Luhn check
			pan = pan[:15] + string(rune('0'+(int(pan[15]-'0')+1)%10))
		case v < 7: // stolen, expired
			expiry = "2301"
		}
	case LabelCashOut: // the fraudster's two cards at the small merchant's tills, again and again, just under its limit
		t = pickT(p.cashOut)
		f.cashOnce.Do(func() { f.cashCards = []string{bigCard(rng), bigCard(rng)} })
		pan = f.cashCards[rng.IntN(len(f.cashCards))]
		tags, amount = posTags(t), int64(95500+rng.IntN(40)*100)
	}
	tx := termclient.Txn{TID: t.id, MID: t.merchant, PAN: pan, Amount: amount, Expiry: expiry, STAN: f.term(t.id).nextSTAN(), Time: now, TLV: tags}
	return f.build(tx, mac, label)
}

// remember keeps an approved purchase for later voids, refunds and reversals.
func (f *Fleet) remember(tid string, a approval) {
	if f.followUp(a) {
		return
	}
	st := f.term(tid)
	st.mu.Lock()
	if len(st.recent) < 8 && !a.at.Before(st.closed) { // answered after a close it preceded: in the closed batch
		st.recent = append(st.recent, a)
	}
	st.mu.Unlock()
}

// dukptStream is the demo SoftPOS T0000002: purchases with DUKPT PIN blocks and MACs,
// one at a time (its KSN counter must increase), slowly enough for a micro merchant's
// till. It returns its label counts.
func dukptStream(ctx context.Context, addr string, every time.Duration) map[string]*LabelStats {
	out := map[string]*LabelStats{LabelLegit: {Reasons: map[string]int64{}}}
	l := out[LabelLegit]
	c, err := termclient.Dial(addr, message.DialectASCII, nil)
	if err != nil {
		return out
	}
	defer c.Close()
	mac, _ := termclient.RetailMAC(demoTAK)
	rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
	counter := uint32(time.Now().Unix()%100000)*8 + 1
	for ctx.Err() == nil {
		select {
		case <-time.After(every):
		case <-ctx.Done():
			return out
		}
		for counter++; bitsSet(counter) > 10; counter++ {
		}
		ksn := fmt.Sprintf("FFFF9876543210%06X", 0xE00000|(counter&0x1FFFFF))
		now := time.Now()
		tx := termclient.Txn{TID: "T0000002", MID: "000000000000002", PAN: bigCard(rng), Amount: int64(100 + rng.IntN(40)*10),
			Expiry: "2912", Time: now, STAN: termclient.NextSTAN(),
			TLV: [][2]string{{"DI", "SP-T0000002"}, {"IM", "860000000000002"}, {"GL", "31.230400,121.473700"}, {"AV", "1.0.0"},
				{"AJ", "sign"}, {"IF", ""}, {"KS", ksn}}}
		if err := (&Fleet{}).attestTokens(&tx, ""); err != nil {
			continue
		}
		block, err := termclient.PINBlockDUKPT(demoBDK, ksn, "1234", tx.PAN)
		if err != nil {
			continue
		}
		tx.PINBlock = block
		m, err := termclient.Build(tx, message.DialectASCII)
		if err != nil {
			continue
		}
		l.Sent++
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		resp, err := c.Send(rctx, m, mac)
		cancel()
		if err != nil {
			continue
		}
		r, _ := termclient.Decode(resp)
		l.Answered++
		if !message.Approved(r.RC) {
			l.Declined++
			reason := r.Reason
			if reason == "" {
				reason = "rc-" + r.RC
			}
			l.Reasons[reason]++
		}
	}
	return out
}

func bitsSet(x uint32) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

// Scenarios turns label counts into the report's scenarios: each fraud scenario's catch
// rate, and the false-positive rate of legitimate authorizations.
func Scenarios(labels map[string]*LabelStats) []Scenario {
	var out []Scenario
	add := func(label string, fraud bool) {
		l := labels[label]
		if l == nil || l.Answered == 0 {
			return
		}
		out = append(out, Scenario{Label: label, Fraud: fraud, Sent: l.Answered, Declined: l.Declined,
			Rate: float64(l.Declined) / float64(l.Answered), ByReason: l.Reasons})
	}
	for _, f := range FraudLabels {
		add(f, true)
	}
	add(LabelLegit, false)
	for _, l := range LegitPatterns {
		add(l, false)
	}
	return out
}

// qrCode is a payment code of the default table's networks in turn: UnionPay (62, 19
// digits), WeChat Pay (13, 18 digits), Alipay (28, 18 digits).
func qrCode(rng *rand.Rand, n uint64) string {
	switch n % 3 {
	case 0:
		return fmt.Sprintf("62%017d", rng.Uint64()%1e17)
	case 1:
		return fmt.Sprintf("13%016d", rng.Uint64()%1e16)
	}
	return fmt.Sprintf("28%016d", rng.Uint64()%1e16)
}
