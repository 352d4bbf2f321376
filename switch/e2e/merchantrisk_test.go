package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/server"
	"github.com/switchyard/switchyard/switch/termclient"
)

// pollFor polls cond every 20 ms until it holds or d passes.
func pollFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *fixture) rating(id string) (grade string, raw string) {
	f.t.Helper()
	out, code := f.cli(tokAnalyst, "merchant", "rating", id, "--json")
	if code != 0 {
		return "", out
	}
	var v struct{ Grade string }
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		f.t.Fatalf("rating JSON: %v\n%s", err, out)
	}
	return v.Grade, out
}

// TestRatingsMoveLimits: the daily run rates the grocery; its traffic turns bad
// (declines); the next scheduled run (the switch's clock moved a day on) downgrades
// it at once, and its next large purchase is declined by the new grade's limit. An
// analyst's pin holds against the next run, and the purchase passes again. Every
// change is in the operation log with its figures.
func TestRatingsMoveLimits(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	y, m, d := time.Now().In(loc).Date()
	noon, began := time.Date(y, m, d, 12, 0, 0, 0, loc), time.Now()
	var shift atomic.Int64
	clock := func() time.Time { return noon.Add(time.Duration(shift.Load()) + time.Since(began)) }
	rules := middayRules(t, noon)
	f := startDemo(t, func(c *config.Config) {
		c.Clock, c.RulesDir = clock, rules
		c.Ratings.Poll = config.Duration(20 * time.Millisecond)
	})
	const grocery = "000000000000001"
	pollFor(t, "the first rating", 10*time.Second, func() bool { g, _ := f.rating(grocery); return g != "" })
	if g, out := f.rating(grocery); g != "B" {
		t.Fatalf("a new merchant: %s", out)
	}
	big := func() termclient.Result {
		tx := pos(100000) // 1,000.00
		tx.PAN = testPAN(900 + int(shift.Load()/int64(time.Hour)))
		return f.send(tx)
	}
	if r := big(); r.RC != "00" {
		t.Fatalf("1,000.00 at a B merchant: %+v", r)
	}
	// The grocery's traffic turns bad: 40 purchases, all declined by the issuer.
	for i := 0; i < 40; i++ {
		tx := pos(1051 + int64(i)*100)
		tx.PAN = testPAN(100 + i)
		if r := f.send(tx); r.RC == "00" {
			t.Fatalf("purchase ending 51 approved: %+v", r)
		}
	}
	shift.Store(int64(24 * time.Hour)) // the next day, past the 03:30 run
	pollFor(t, "the downgrade by the scheduled run", 10*time.Second, func() bool { g, _ := f.rating(grocery); return g == "E" })
	r := big()
	if r.RC != "61" || (r.Reason != "merchant-single-limit" && r.Reason != "rating-single-limit") {
		t.Fatalf("1,000.00 at an E merchant: %+v", r)
	}
	if out, _ := f.cli(tokAnalyst, "merchant", "rating", grocery); !strings.Contains(out, "decline_ratio") || !strings.Contains(out, "downgraded at once") ||
		!strings.Contains(out, "single 500.00") {
		t.Fatalf("rating explanation: %s", out)
	}
	out, _ := f.cli(tokAnalyst, "oplog", "--json")
	if !strings.Contains(out, `"merchant.rating"`) || !strings.Contains(out, "decline_ratio") {
		t.Fatalf("no rating change with its figures in the oplog: %.2000s", out)
	}
	// An analyst pins B: it holds against the next scheduled run.
	if out, code := f.cli(tokOperator, "merchant", "rating", grocery, "--pin", "B", "--reason", "x"); code == 0 {
		t.Fatalf("an operator pinned a rating: %s", out)
	}
	if out, code := f.cli(tokAnalyst, "merchant", "rating", grocery, "--pin", "B"); code == 0 {
		t.Fatalf("a pin without a reason: %s", out)
	}
	if out, code := f.cli(tokAnalyst, "merchant", "rating", grocery, "--pin", "B", "--reason", "issuer outage caused the declines", "--days", "10"); code != 0 || !strings.Contains(out, "pinned B") {
		t.Fatalf("pin: %d %s", code, out)
	}
	if r := big(); r.RC != "00" {
		t.Fatalf("1,000.00 after the pin: %+v", r)
	}
	shift.Store(int64(48 * time.Hour))
	pollFor(t, "the next scheduled run", 10*time.Second, func() bool {
		_, raw := f.rating(grocery)
		var v struct {
			At time.Time `json:"computed_at"`
		}
		json.Unmarshal([]byte(raw), &v)
		return v.At.After(noon.Add(36 * time.Hour))
	})
	if g, out := f.rating(grocery); g != "B" || !strings.Contains(out, `"grade": "E"`) {
		t.Fatalf("pinned rating after the run: %s", out)
	}
	if r := big(); r.RC != "00" {
		t.Fatalf("1,000.00 with the pin after the run: %+v", r)
	}
	// The merchant's report: the purchases of the last 7 days by type and by hour.
	out, code := f.cli(tokOperator, "merchant", "report", grocery, "--days", "7", "--json")
	var rep struct {
		Transactions, Approved int
		ApprovalRate           float64                                  `json:"approval_rate"`
		ByType                 map[string]struct{ Count, Approved int } `json:"by_type"`
		Hourly                 [24]struct{ Count int }
	}
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil {
		t.Fatalf("report: %d %v %s", code, err, out)
	}
	hourly := 0
	for _, h := range rep.Hourly {
		hourly += h.Count
	}
	if rep.Transactions != 44 || rep.Approved != 3 || rep.ByType["purchase"].Count != 44 || hourly != 44 || rep.ApprovalRate < 0.06 || rep.ApprovalRate > 0.07 {
		t.Fatalf("report: %+v", rep)
	}
	if out, code := f.cli(tokOperator, "merchant", "report", grocery, "--days", "91"); code == 0 || !strings.Contains(out, "days") {
		t.Fatalf("report of 91 days: %s", out)
	}
}

// receiver is a merchant's webhook: down (503) while down is set; it records the
// notices it accepted.
type receiver struct {
	mu      sync.Mutex
	got     []map[string]any
	ids     map[string]int
	down    atomic.Bool
	badSig  atomic.Int64
	refused atomic.Int64
	secret  string
	first   chan struct{}
	once    sync.Once
}

func (rv *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if rv.down.Load() {
		rv.refused.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	mac := hmac.New(sha256.New, []byte(rv.secret))
	mac.Write([]byte(r.Header.Get("X-Switchyard-Timestamp") + "."))
	mac.Write(body)
	if r.Header.Get("X-Switchyard-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
		rv.badSig.Add(1)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var n map[string]any
	json.Unmarshal(body, &n)
	rv.mu.Lock()
	rv.got = append(rv.got, n)
	rv.ids[r.Header.Get("X-Switchyard-Notice")]++
	rv.mu.Unlock()
	rv.once.Do(func() { close(rv.first) })
}

func (rv *receiver) count() int {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return len(rv.got)
}

// TestMerchantNotices: a merchant's webhook gets its approvals, voids and refunds
// within a second, signed, with the card as 6/4; a receiver that is down for a while,
// across a restart of the switch, still gets every notice once, in order.
func TestMerchantNotices(t *testing.T) {
	rv := &receiver{ids: map[string]int{}, secret: "merchant-secret-0123456789", first: make(chan struct{})}
	hs := httptest.NewServer(rv)
	defer hs.Close()
	dir := t.TempDir()
	c := demoConfig(t, dir)
	c.Notices.RetryMin, c.Notices.RetryMax = config.Duration(50*time.Millisecond), config.Duration(200*time.Millisecond)
	c.Notices.AllowPrivate = []string{"127.0.0.1"} // the receiver is on loopback
	s, err := server.New(c, zerolog.Nop(), demoIssuer)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, s: s, dir: dir}
	f.c, err = termclient.Dial(s.ListenerAddr("ascii"), message.DialectASCII, nil)
	if err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte(rv.secret+"\n"), 0o600)
	// A webhook is a change for review: requested by an operator, in force once a
	// reviewer approves it; the secret is in neither the change nor its preview.
	out, code := f.cli(tokOperator, "merchant", "webhook", "000000000000001", "--url", hs.URL+"/notices", "--secret-file", secretFile, "--reason", "merchant asked")
	if code != 0 || !strings.Contains(out, " requested: merchant.webhook 000000000000001") {
		t.Fatalf("webhook: %s", out)
	}
	chg := strings.Fields(out)[0]
	if out, _ := f.cli(tokOperator, "merchant", "notices", "000000000000001"); strings.Contains(out, hs.URL) {
		t.Fatalf("the webhook is in force before its review: %s", out)
	}
	if out, code := f.cli(tokOperator, "change", "approve", chg); code == 0 {
		t.Fatalf("the requester approved the webhook change himself: %s", out)
	}
	show, _ := f.cli(tokReviewer, "change", "show", chg, "--json")
	if !strings.Contains(show, hs.URL) || strings.Contains(show, rv.secret) || !strings.Contains(show, "secret_fingerprint") {
		t.Fatalf("change show of the webhook: want the URL and the secret's fingerprint, never the secret:\n%s", show)
	}
	if out, code := f.cli(tokReviewer, "change", "approve", chg); code != 0 {
		t.Fatalf("approve the webhook: %s", out)
	}
	if out, _ := f.cli(tokOperator, "merchant", "notices", "000000000000001"); !strings.Contains(out, "Webhook:") || !strings.Contains(out, hs.URL) {
		t.Fatalf("the webhook is not in force after its approval: %s", out)
	}
	// Up: an approval arrives within a second.
	start := time.Now()
	p := f.send(pos(2500))
	if p.RC != "00" {
		t.Fatal(p)
	}
	select {
	case <-rv.first:
		if d := time.Since(start); d > time.Second {
			t.Errorf("first notice after %v, want within 1 s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notice within 5 s")
	}
	// Down for a while: purchases, a void, a refund, then a restart of the switch.
	rv.down.Store(true)
	var rrns []string
	for i := 0; i < 6; i++ {
		tx := pos(1000 + int64(i)*10)
		tx.PAN = testPAN(300 + i)
		r := f.send(tx)
		if r.RC != "00" {
			t.Fatal(r)
		}
		rrns = append(rrns, r.RRN)
	}
	v := pos(1000)
	v.PAN, v.ProcCode, v.RRN = testPAN(300), message.PCVoid, rrns[0]
	if r := f.send(v); r.RC != "00" {
		t.Fatalf("void: %+v", r)
	}
	rf := pos(500)
	rf.PAN, rf.ProcCode, rf.RRN = testPAN(301), message.PCRefund, rrns[1]
	if r := f.send(rf); r.RC != "00" {
		t.Fatalf("refund: %+v", r)
	}
	dec := pos(1051) // declined: no notice
	dec.PAN = testPAN(320)
	f.send(dec)
	pollFor(t, "failed posts", 5*time.Second, func() bool { return rv.refused.Load() >= 2 })
	out, _ = f.cli(tokOperator, "merchant", "notices", "000000000000001", "--json")
	if !strings.Contains(out, `"pending"`) || !strings.Contains(out, "503") {
		t.Fatalf("delivery log while down: %s", out)
	}
	f.c.Close()
	s.Close()

	s, err = server.New(c, zerolog.Nop(), demoIssuer)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f.s = s
	rv.down.Store(false)
	pollFor(t, "every notice", 10*time.Second, func() bool { return rv.count() >= 9 })
	time.Sleep(300 * time.Millisecond) // room for a duplicate, were one sent (3 retry periods)
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if len(rv.got) != 9 || rv.badSig.Load() != 0 {
		t.Fatalf("got %d notices (bad signatures %d), want 9: %v", len(rv.got), rv.badSig.Load(), rv.got)
	}
	for id, n := range rv.ids {
		if n != 1 {
			t.Errorf("notice %s received %d times", id, n)
		}
	}
	var events []string
	lastSeq := 0.0
	for _, n := range rv.got {
		if seq := n["seq"].(float64); seq <= lastSeq {
			t.Errorf("notice %v out of order after seq %v", n["id"], lastSeq)
		} else {
			lastSeq = seq
		}
		events = append(events, n["event"].(string))
		if pan := n["pan"].(string); !strings.Contains(pan, "*") || len(pan) < 10 {
			t.Errorf("PAN %q in a notice", pan)
		}
	}
	if want := "purchase purchase purchase purchase purchase purchase purchase void refund"; strings.Join(events, " ") != want {
		t.Errorf("events %v, want %s", events, want)
	}
}
