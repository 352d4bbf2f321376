package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/switch/journal"
)

type fakeJournal []*journal.Record

func (f fakeJournal) Scan(_ context.Context, q journal.Query, fn func(*journal.Record) bool) error {
	for _, r := range f {
		if !r.Received.Before(q.From) && r.Received.Before(q.To) && !fn(r) {
			return nil
		}
	}
	return nil
}

func openDB(t *testing.T) *badger.DB {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestRecoverAfterCrash: notices handed over but never stored (the process died)
// are found in the journal at the next start, and every notice is delivered once,
// in order; a void or a decline of another merchant is not.
func TestRecoverAfterCrash(t *testing.T) {
	db := openDB(t)
	var mu sync.Mutex
	var got []Notice
	done := make(chan struct{}, 10)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var n Notice
		json.Unmarshal(b, &n)
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
		done <- struct{}{}
	}))
	defer hs.Close()
	t0 := time.Now().Add(-time.Minute)
	rec := func(i int, typ, rc, mid string) *journal.Record {
		return &journal.Record{RRN: "00000000000" + string(rune('0'+i)), Received: t0.Add(time.Duration(i) * time.Second), Type: typ, RC: rc, MID: mid,
			TID: "T0000001", Amount: int64(100 * i), PANMasked: "476173******0010"}
	}
	j := fakeJournal{rec(1, "purchase", "00", "M1"), rec(2, "purchase", "00", "M1"), rec(3, "purchase", "51", "M1"),
		rec(4, "refund", "00", "M1"), rec(5, "purchase", "00", "M2"), rec(6, "balance", "00", "M1")}

	b1, err := Open(db, Options{CardHashKey: testKey, AllowPrivate: loopback})
	if err != nil {
		t.Fatal(err)
	}
	if err := b1.SetEndpoint("M1", hs.URL, "0123456789abcdef", "op", "test"); err != nil {
		t.Fatal(err)
	}
	// The first notice was stored; the others were in the channel when it died.
	b1.Notice(j[0], "")
	if err := b1.store([]Notice{*<-b1.in}); err != nil {
		t.Fatal(err)
	}
	for _, r := range j[1:] {
		b1.Notice(r, "")
	}

	b2, err := Open(db, Options{CardHashKey: testKey, AllowPrivate: loopback})
	if err != nil {
		t.Fatal(err)
	}
	n, err := b2.Recover(context.Background(), j, time.Minute)
	if err != nil || n != 2 {
		t.Fatalf("recovered %d, %v; want 2 (the second purchase and the refund)", n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b2.Run(ctx)
	for i := 0; i < 3; i++ {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d notices delivered, want 3", i)
		}
	}
	select {
	case <-done:
		t.Fatal("a fourth notice")
	case <-time.After(100 * time.Millisecond):
	}
	mu.Lock()
	defer mu.Unlock()
	for i, want := range []string{"000000000001", "000000000002", "000000000004"} {
		if got[i].RRN != want || got[i].PAN != "476173******0010" {
			t.Errorf("notice %d: %+v, want RRN %s", i, got[i], want)
		}
	}
}

func TestSetEndpointRefusesBadWebhooks(t *testing.T) {
	b, err := Open(openDB(t), Options{CardHashKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ url, secret string }{{"ftp://x", "0123456789abcdef"}, {"https://u:p@x", "0123456789abcdef"}, {"https://x", "short"}} {
		if err := b.SetEndpoint("M1", c.url, c.secret, "op", ""); err == nil {
			t.Errorf("%s accepted", c.url)
		}
	}
	err = b.SetEndpoint("M1", "https://hooks.example/4761738000000071", "0123456789abcdef", "op", "")
	if err == nil || !strings.Contains(err.Error(), "holds a card number") || strings.Contains(err.Error(), "4761738000000071") {
		t.Errorf("a URL holding a card number: %v, want it refused, quoted masked", err)
	}
}

// TestWebhooksShared: in a cluster a webhook registered on one node is known to the
// others (through the state log), so their approvals are noticed too.
func TestWebhooksShared(t *testing.T) {
	var log statelog.Memory
	a, err := Open(openDB(t), Options{CardHashKey: testKey, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(openDB(t), Options{CardHashKey: testKey, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	log.Follow(a)
	log.Follow(b)
	if err := a.SetEndpoint("M1", "https://shop.example/n", "0123456789abcdef", "op", ""); err != nil {
		t.Fatal(err)
	}
	if err := log.Deliver(); err != nil {
		t.Fatal(err)
	}
	b.Notice(&journal.Record{RRN: "000000000001", MID: "M1", Type: "purchase", RC: "00", PANMasked: "476173******0010"}, "")
	select {
	case n := <-b.in:
		if n.Merchant != "M1" {
			t.Fatalf("notice %+v", n)
		}
	default:
		t.Fatal("the other node does not know M1's webhook")
	}
	if err := b.SetEndpoint("M1", "", "", "op", "closed"); err != nil {
		t.Fatal(err)
	}
	log.Deliver()
	if _, ok := (*a.eps.Load())["M1"]; ok {
		t.Fatal("the removal did not reach the first node")
	}
}

// TestIdleQueueIsNotScanned: the outbox's queue of notices waiting to be stored
// (64 Ki of them by default) adds little to what every garbage collection scans; as
// a channel of Notices it added 12 MB, a third of the switch's pointer-holding heap,
// and each collection's mark phase (two cores: one of them taken for its length)
// grew with it (issue 15).
func TestIdleQueueIsNotScanned(t *testing.T) {
	db := openDB(t)
	scanned := func() uint64 {
		runtime.GC()
		s := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	before := scanned()
	b, err := Open(db, Options{CardHashKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	after := scanned()
	runtime.KeepAlive(b)
	if grew := int64(after) - int64(before); grew > 2<<20 {
		t.Fatalf("an idle outbox (queue of %d) adds %d KiB to every collection's scan", b.o.Queue, grew>>10)
	}
}

// testKey is the card hash key of the tests.
var testKey = []byte("test card hash key 0123456789abc")

// loopback lets the tests' webhooks (httptest servers) be posted to.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// TestWebhookTargets: a webhook may not reach an internal address (the admin API,
// an issuer link, a cloud metadata service) unless notices.allow_private lists it:
// refused when registered if the URL names one, and when dialled otherwise.
func TestWebhookTargets(t *testing.T) {
	var hits atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer hs.Close()
	b, err := Open(openDB(t), Options{CardHashKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{hs.URL, "http://10.0.0.8/n", "http://[::1]:8080/", "http://localhost:8080/api/v1/x",
		"http://169.254.169.254/latest/meta-data", "https://192.168.1.1/", "http://100.64.0.1/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0:8080/",
		"http://[64:ff9b::7f00:1]/", "http://[64:ff9b:1::a00:1]/", "http://[2002:a00:1::]/", "http://192.0.0.192/", "http://198.18.0.1/",
		"http://[fec0::1]/", "http://240.0.0.1/", "http://255.255.255.255/", "http://[::7f00:1]/"} {
		if err := b.SetEndpoint("M1", u, "0123456789abcdef", "op", ""); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "notices.allow_private") {
			t.Errorf("%s: %v, want refused naming notices.allow_private", u, err)
		}
	}
	for _, u := range []string{"https://shop.example/n", "https://8.8.8.8/n", "https://[2606:4700::1111]/n", "https://[64:ff9b::808:808]/n"} {
		if err := b.SetEndpoint("M1", u, "0123456789abcdef", "op", ""); err != nil {
			t.Errorf("public %s: %v", u, err)
		}
	}
	// No proxy from the environment: through one only the proxy would be checked.
	if tr, ok := b.o.Client.Transport.(*http.Transport); !ok || tr.Proxy != nil {
		t.Errorf("the default client's transport uses a proxy (%T)", b.o.Client.Transport)
	}
	// A name is checked where it is dialled: localhost's answer is loopback.
	_, port, _ := net.SplitHostPort(hs.Listener.Addr().String())
	if _, err := b.o.Client.Get("http://localhost:" + port + "/"); err == nil || !strings.Contains(err.Error(), "internal address") {
		t.Errorf("dial of localhost: %v, want refused", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the internal server was reached %d times", n)
	}
	a, err := Open(openDB(t), Options{CardHashKey: testKey, AllowPrivate: loopback})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetEndpoint("M1", hs.URL, "0123456789abcdef", "op", ""); err != nil {
		t.Fatalf("allowed loopback: %v", err)
	}
	resp, err := a.o.Client.Get(hs.URL)
	if err != nil {
		t.Fatalf("allowed loopback: %v", err)
	}
	resp.Body.Close()
	if n := hits.Load(); n != 1 {
		t.Fatalf("%d hits, want 1", n)
	}
}

// TestDroppedNoticeRecovered: a notice dropped because the queue was full is left
// to the recovery at the next start, even when later notices were stored after it:
// the mark Recover reads the journal from must not pass it (it did, and the
// notice was lost for good).
func TestDroppedNoticeRecovered(t *testing.T) {
	db := openDB(t)
	t0 := time.Now().Add(-time.Hour)
	rec := func(i int, at time.Duration) *journal.Record {
		return &journal.Record{RRN: fmt.Sprintf("%012d", i), Received: t0.Add(at), Type: "purchase", RC: "00", MID: "M1",
			TID: "T0000001", Amount: 100, PANMasked: "476173******0010"}
	}
	j := fakeJournal{rec(1, 0), rec(2, time.Second), rec(3, 10*time.Minute)}
	b1, err := Open(db, Options{CardHashKey: testKey, Queue: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := b1.SetEndpoint("M1", "https://shop.example/n", "0123456789abcdef", "op", "test"); err != nil {
		t.Fatal(err)
	}
	b1.Notice(j[0], "")
	b1.Notice(j[1], "") // the queue (1) is full: dropped
	if d := b1.dropped.Load(); d != 1 || testutil.ToFloat64(b1.m.dropped) != 1 {
		t.Fatalf("dropped %d (metric %v), want 1", d, testutil.ToFloat64(b1.m.dropped))
	}
	if err := b1.store([]Notice{*<-b1.in}); err != nil {
		t.Fatal(err)
	}
	b1.Notice(j[2], "") // ten minutes later, stored
	if err := b1.store([]Notice{*<-b1.in}); err != nil {
		t.Fatal(err)
	}

	b2, err := Open(db, Options{CardHashKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	n, err := b2.Recover(context.Background(), j, 2*time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("recovered %d, %v; want 1 (the dropped notice)", n, err)
	}
	b2.mu.Lock()
	defer b2.mu.Unlock()
	var rrns []string
	for _, p := range b2.pending["M1"] {
		rrns = append(rrns, p.RRN)
	}
	if strings.Join(rrns, ",") != "000000000001,000000000003,000000000002" {
		t.Errorf("pending = %v, want all three notices", rrns)
	}
}

// TestRedirectNotFollowed: a webhook that answers with a redirect is a failed post,
// kept and retried, its error naming the status and where it pointed. Followed, a
// 302 turned the POST into a GET without the notice, and the other host's 200
// marked the notice delivered (lost); a 307 or 308 posted the signed notice to a
// URL no reviewer approved.
func TestRedirectNotFollowed(t *testing.T) {
	var moved atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { moved.Add(1) }))
	defer other.Close()
	b, err := Open(openDB(t), Options{CardHashKey: testKey, AllowPrivate: loopback, RetryMin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i, code := range []int{http.StatusFound, http.StatusPermanentRedirect} {
		redirect := httptest.NewServer(http.RedirectHandler(other.URL+"/new", code))
		defer redirect.Close()
		m := fmt.Sprintf("M%d", i+1)
		if err := b.SetEndpoint(m, redirect.URL+"/n", "0123456789abcdef", "op", ""); err != nil {
			t.Fatal(err)
		}
		deliverOne(t, b, m, fmt.Sprintf("%012d", i+1))
		l, err := b.Deliveries(m, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Delivered) != 0 || len(l.Pending) != 1 {
			t.Fatalf("%d redirect: %d delivered, %d pending; want the notice pending", code, len(l.Delivered), len(l.Pending))
		}
		if e := l.Pending[0].LastError; !strings.Contains(e, strconv.Itoa(code)) || !strings.Contains(e, other.URL+"/new") {
			t.Errorf("%d redirect: last error %q, want the status and the Location", code, e)
		}
	}
	if n := moved.Load(); n != 0 {
		t.Errorf("the redirects' target was reached %d times", n)
	}
}

// TestDeadHostHoldsItsMerchantsOnly: merchants whose webhooks are on one host
// that does not answer (a service provider's receiver for many merchants) do not
// each spend a worker for the timeout: after a post there fails without an
// answer, the host's other merchants wait without posting (each retried on its
// backoff) until the host's own backoff ends. Before, 240 such merchants kept all
// 4 workers busy and every other merchant's notices waited. A host that answers
// (even 500) is not held: the answer is the merchant's.
func TestDeadHostHoldsItsMerchantsOnly(t *testing.T) {
	var hits atomic.Int32
	release := make(chan struct{})
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer dead.Close()
	defer close(release)
	var ok atomic.Int32
	alive := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/m4" {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		ok.Add(1)
	}))
	defer alive.Close()
	promReg := prometheus.NewRegistry()
	b, err := Open(openDB(t), Options{CardHashKey: testKey, AllowPrivate: loopback, Timeout: 100 * time.Millisecond, RetryMin: time.Hour, Metrics: promReg})
	if err != nil {
		t.Fatal(err)
	}
	for m, u := range map[string]string{"M1": dead.URL + "/m1", "M2": dead.URL + "/m2", "M3": alive.URL + "/m3", "M4": alive.URL + "/m4", "M5": alive.URL + "/m5"} {
		if err := b.SetEndpoint(m, u, "0123456789abcdef", "op", ""); err != nil {
			t.Fatal(err)
		}
	}
	lastErr := func(m string) string {
		l, err := b.Deliveries(m, 0)
		if err != nil || len(l.Pending) != 1 {
			t.Fatalf("%s: %+v, %v; want one pending", m, l, err)
		}
		return l.Pending[0].LastError
	}
	deliverOne(t, b, "M1", "000000000001")
	deliverOne(t, b, "M2", "000000000002")
	if n := hits.Load(); n != 1 {
		t.Errorf("the dead host got %d posts; want 1 (M2 held behind M1's failure)", n)
	}
	if e := lastErr("M2"); !strings.Contains(e, "not posted") || !strings.Contains(e, dead.Listener.Addr().String()) {
		t.Errorf("M2's last error %q; want it held, naming the host", e)
	}
	deliverOne(t, b, "M3", "000000000003")
	deliverOne(t, b, "M4", "000000000004")
	deliverOne(t, b, "M5", "000000000005")
	if e := lastErr("M4"); !strings.Contains(e, "500") {
		t.Errorf("M4's last error %q; want the 500", e)
	}
	if n := ok.Load(); n != 2 {
		t.Errorf("%d notices delivered to the live host, want 2 (M3, M5)", n)
	}
	// What an operator sees in the metrics.
	for result, want := range map[string]float64{"delivered": 2, "failed": 2, "held": 1} {
		if got := testutil.ToFloat64(b.m.posts.WithLabelValues(result)); got != want {
			t.Errorf("switchyard_notices_posts_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	if n, err := testutil.GatherAndCount(promReg, "switchyard_notices_pending"); err != nil || n != 1 {
		t.Fatalf("switchyard_notices_pending: %d series, %v", n, err)
	}
	mfs, _ := promReg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "switchyard_notices_pending" {
			if v := mf.GetMetric()[0].GetGauge().GetValue(); v != 3 {
				t.Errorf("switchyard_notices_pending = %v, want 3 (M1, M2, M4)", v)
			}
		}
	}
}

// TestNoticeNeverCarriesClearPAN: a notice carries the card as first 6 and last 4
// digits even if the journal's masked PAN were not masked, and a failed post's log
// line names neither the card nor the secret.
func TestNoticeNeverCarriesClearPAN(t *testing.T) {
	var logBuf strings.Builder
	var mu sync.Mutex
	b, err := Open(openDB(t), Options{CardHashKey: testKey, AllowPrivate: loopback, RetryMin: time.Hour,
		Logger: zerolog.New(zerolog.SyncWriter(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logBuf.Write(p) })))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	if err := b.SetEndpoint("M1", srv.URL+"/n", "0123456789abcdef-secret", "op", ""); err != nil {
		t.Fatal(err)
	}
	b.Notice(&journal.Record{RRN: "000000000001", MID: "M1", TID: "T0000001", Type: "purchase", RC: "00", Amount: 100,
		PANMasked: "4761739001010010", Received: time.Now()}, "")
	n := <-b.in
	if n.PAN != "476173******0010" {
		t.Fatalf("notice PAN %q, want 476173******0010", n.PAN)
	}
	if err := b.store([]Notice{*n}); err != nil {
		t.Fatal(err)
	}
	b.deliverMerchant(context.Background(), "M1")
	mu.Lock()
	defer mu.Unlock()
	if out := logBuf.String(); !strings.Contains(out, "merchant notice not delivered") || strings.Contains(out, "4761739001010010") || strings.Contains(out, "-secret") {
		t.Errorf("log %s", out)
	}
}

// writerFunc is an io.Writer of a function.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
