package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/switchyard/switchyard/switch/message"
)

// TestFleetLabelsAndMessages: every generated request decodes as the switch would
// decode it, carries the label's tell-tale, and the mix contains every scenario.
func TestFleetLabelsAndMessages(t *testing.T) {
	f, err := NewFleet(50, 100)
	if err != nil {
		t.Fatal(err)
	}
	f.fraud = 0.5 // plenty of every scenario
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]int{}
	mtis := map[string]int{}
	now := time.Now()
	for i := 0; i < 20000; i++ {
		now = now.Add(time.Millisecond) // 20 s of the paced patterns
		req, err := f.Next(rng, now)
		if err != nil {
			t.Fatal(err)
		}
		r, err := message.Decode(req.body, message.DialectASCII)
		if err != nil {
			t.Fatalf("%s: generated request does not decode: %v", req.label, err)
		}
		if req.key != r.TID+r.STAN {
			t.Fatalf("match key %q for %s/%s", req.key, r.TID, r.STAN)
		}
		seen[req.label]++
		mtis[r.MTI+"/"+r.ProcCode]++
		switch req.label {
		case LabelRelocated:
			if !strings.HasPrefix(r.TLV.Geo, "31.") && !strings.HasPrefix(r.TLV.Geo, "32.") {
				t.Fatalf("relocated terminal at %s", r.TLV.Geo)
			}
		case LabelRooted:
			if r.TLV.Integrity == "" {
				t.Fatal("rooted SoftPOS without findings")
			}
		case LabelOverLimit:
			if r.Amount <= 100000 {
				t.Fatalf("over-limit SoftPOS of %d", r.Amount)
			}
		case LabelForgedMAC, LabelStaleAttest:
			if r.MACField == 0 {
				t.Fatal("SoftPOS request without a MAC")
			}
		}
		if req.follow != nil {
			a := *req.follow
			a.rrn, a.auth = "000000000001", "000001"
			f.remember(r.TID, a)
		}
		// The load terminals' template purchases (legitimate) carry no label.
		if (r.MTI == "0200" || r.MTI == "0100") && r.TLV.Label != req.label && (req.label != LabelLegit || r.TLV.Label != "") {
			t.Fatalf("%s request labelled %q in DE 48", req.label, r.TLV.Label)
		}
	}
	for _, l := range append(append([]string{LabelLegit}, FraudLabels...), LegitPatterns...) {
		if seen[l] == 0 {
			t.Errorf("no %s traffic", l)
		}
	}
	for _, k := range []string{"0200/000000", "0100/000000", "0200/020000", "0200/200000", "0200/310000", "0400/000000", "0800/", "0500/920000"} {
		if mtis[k] == 0 {
			t.Errorf("no %s in the mix: %v", k, mtis)
		}
	}
}

func TestScenariosRates(t *testing.T) {
	labels := map[string]*LabelStats{
		LabelLegit:       {Answered: 2000, Declined: 3, Reasons: map[string]int64{"x": 3}},
		LabelCardTesting: {Answered: 200, Declined: 199, Reasons: map[string]int64{"card-testing": 199}},
	}
	sc := Scenarios(labels)
	if len(sc) != 2 || sc[0].Label != LabelCardTesting || sc[0].Rate != 0.995 || !sc[0].Fraud || sc[1].Rate != 0.0015 || sc[1].Fraud {
		t.Fatalf("%+v", sc)
	}
}

func TestPhaseHistogramAndTimeline(t *testing.T) {
	l := &LoadResult{Hist: hdrhistogram.New(1, 60_000_000, 3), Elapsed: 3 * time.Second, TPS: 2}
	for i, lat := range []uint32{100, 200, 300, 5000, 900, 1000} {
		_ = l.Hist.RecordValue(int64(lat))
		l.Samples = append(l.Samples, Sample{Second: uint16(i / 2), LatencyUS: lat})
	}
	p := l.Phase("x")
	if len(p.Timeline) != 3 || p.Timeline[1].TPS != 2 || p.Timeline[1].P99US != 5000 || p.Latency.Max < 4990 {
		t.Fatalf("%+v", p)
	}
	var n int64
	for _, b := range p.Buckets {
		n += b.Count
	}
	if n != 6 {
		t.Fatalf("buckets hold %d of 6", n)
	}
}

// TestBenchSmoke runs the whole harness briefly against a real switch, issuer
// simulator and relay, each a process of its own, and checks the reports.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "switchyard")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/switchyard").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	rep, err := Run(context.Background(), Options{Exe: bin, Duration: 2 * time.Second, Warmup: time.Second, RelayDuration: time.Second,
		Rate: 500, Terminals: 200, Conns: 8, Depth: 4, RulesDir: "../rules", QRShare: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Result
	if r.Switch.TPS <= 0 || r.Relay.TPS <= 0 || r.Ratio <= 0 || r.SwitchCPUPerAuthUS <= 0 || r.Paced == nil {
		t.Fatalf("empty figures: %+v", r)
	}
	// QR purchases (5% of the load terminals' requests, through a wallet-sim process)
	// are legitimate: the false-positive check below covers them too.
	if ls := rep.Switch.Labels[LabelLegit]; ls == nil || ls.Reasons["qr-no-route"] > 0 || ls.Reasons["15"] > 0 {
		t.Fatalf("QR purchases not routed to the wallet simulator: %+v", ls)
	}
	if len(r.Scenarios) < 5 {
		t.Fatalf("scenarios: %+v", r.Scenarios)
	}
	// Two seconds show only the first attempts of the patterns that need a few
	// (card testing, cash-out, the paced ones), which pass by design.
	paced := map[string]bool{}
	for _, l := range FraudLabels[len(shareLabels):] {
		paced[l] = true
	}
	for _, sc := range r.Scenarios {
		if sc.Fraud && sc.Label != LabelCashOut && sc.Label != LabelCardTesting && !paced[sc.Label] && sc.Rate < 0.9 {
			t.Errorf("%s caught %.1f%%", sc.Label, 100*sc.Rate)
		}
		if !sc.Fraud && sc.Rate > 0.01 {
			t.Errorf("false positives %.2f%%: %v", 100*sc.Rate, sc.ByReason)
		}
	}
	j, h, err := r.WriteReports(filepath.Join(dir, "results"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{j, h} {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Fatalf("report %s: %v", f, err)
		}
	}
}

// TestPacedPatterns: the issue-22 patterns run on the clock, at merchants of their
// own, and their follow-ups come in order: a sale, its void, the sale rung up again
// cheaper; a split purchase's second part with the first part's card on the other
// till; structured amounts just under the micro limit; probes by inquiry.
func TestPacedPatterns(t *testing.T) {
	f, err := NewFleet(10, 100)
	if err != nil {
		t.Fatal(err)
	}
	f.fraud, f.bench = 0, 0
	rng := rand.New(rand.NewPCG(3, 4))
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	type seen struct {
		mid, proc, pan, tid string
		amount              int64
	}
	byLabel := map[string][]seen{}
	merchantOf := map[string]string{}
	for i := 0; i < 60000; i++ { // 60 s
		now = now.Add(time.Millisecond)
		req, err := f.Next(rng, now)
		if err != nil {
			t.Fatal(err)
		}
		if req.label == LabelLegit || strings.HasPrefix(req.label, labelNonFinancialPfx) {
			continue
		}
		r, err := message.Decode(req.body, message.DialectASCII)
		if err != nil {
			t.Fatalf("%s: %v", req.label, err)
		}
		if m, ok := merchantOf[req.label]; ok && m != r.MID {
			t.Fatalf("%s at merchants %s and %s", req.label, m, r.MID)
		}
		merchantOf[req.label] = r.MID
		byLabel[req.label] = append(byLabel[req.label], seen{r.MID, r.ProcCode, r.PAN, r.TID, r.Amount})
		if req.follow != nil {
			a := *req.follow
			a.rrn, a.auth = fmt.Sprintf("%012d", i), "000001"
			f.remember(r.TID, a)
		}
	}
	for _, l := range append(FraudLabels[len(shareLabels):], LegitPatterns...) {
		if len(byLabel[l]) == 0 {
			t.Errorf("no %s", l)
		}
	}
	if n := len(byLabel[LabelCardTestSlow]); n < 6 || n > 9 {
		t.Errorf("%d slow probes in 60 s, want one every 8 s", n)
	}
	for _, s := range byLabel[LabelCardTestInquiry] {
		if s.proc != message.PCBalance {
			t.Fatalf("inquiry probe with DE 3 %s", s.proc)
		}
	}
	for _, s := range byLabel[LabelStructuring] {
		if s.amount < 475000 || s.amount >= 500000 {
			t.Fatalf("structured amount %d", s.amount)
		}
	}
	firsts := map[string]string{}
	for _, s := range byLabel[labelSplitFirst] {
		firsts[s.pan] = s.tid
	}
	for _, s := range byLabel[LabelSplitTerminals] {
		if tid, ok := firsts[s.pan]; !ok || tid == s.tid {
			t.Fatalf("second part on %s, first part on %q", s.tid, tid)
		}
	}
	vr := byLabel[LabelVoidRering]
	if len(vr) < 3 || vr[0].proc != "000000" || vr[1].proc != message.PCVoid || vr[1].pan != vr[0].pan || vr[2].pan != vr[0].pan || vr[2].amount >= vr[0].amount {
		t.Fatalf("void and re-ring: %+v", vr[:min(3, len(vr))])
	}
	ids := map[string]bool{}
	for _, m := range benchMerchants {
		ids[m.id] = true
	}
	for l, m := range merchantOf {
		if !ids[m] {
			t.Errorf("%s at merchant %s, not one of the bench's own", l, m)
		}
	}
}

// TestNoVoidOfAClosedBatch: a load terminal forgets its purchases when it sends its
// batch totals, and an approval answered after a close it preceded is not kept, so
// the fleet never voids a purchase of a closed batch (the switch declines that,
// void-batch-closed: a false positive in the bench's counts).
func TestNoVoidOfAClosedBatch(t *testing.T) {
	f, err := NewFleet(5, 100)
	if err != nil {
		t.Fatal(err)
	}
	f.fraud, f.bench = 0, 0
	rng := rand.New(rand.NewPCG(3, 4))
	now := time.Now()
	inFlight := map[string][]approval{} // per terminal: generated, not yet answered
	closedAt := map[string]time.Time{}
	batches, voids := 0, 0
	for i := 0; i < 200000 && (batches < 20 || voids < 200); i++ {
		now = now.Add(time.Millisecond)
		req, err := f.Next(rng, now)
		if err != nil {
			t.Fatal(err)
		}
		r, err := message.Decode(req.body, message.DialectASCII)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case r.MTI == "0500":
			batches++
			closedAt[r.TID] = now
		case r.MTI == "0200" && r.ProcCode == message.PCVoid:
			voids++
		}
		if req.follow != nil && req.follow.kind == "" {
			inFlight[r.TID] = append(inFlight[r.TID], *req.follow)
		}
		// Answer the oldest in flight of this terminal a few requests later, as
		// the switch would: some after the terminal's next close.
		if q := inFlight[r.TID]; len(q) > 3 {
			q[0].rrn, q[0].auth = fmt.Sprintf("%012d", i), "000001" // the answer's
			f.remember(r.TID, q[0])
			inFlight[r.TID] = q[1:]
		}
		st := f.term(r.TID)
		st.mu.Lock()
		for _, a := range st.recent {
			if a.at.Before(closedAt[r.TID]) {
				t.Fatalf("%s keeps a purchase of %v, before its batch close at %v: it could void it", r.TID, a.at, closedAt[r.TID])
			}
		}
		st.mu.Unlock()
	}
	if batches == 0 || voids == 0 {
		t.Fatalf("%d batch closes, %d voids: nothing tested", batches, voids)
	}
}
