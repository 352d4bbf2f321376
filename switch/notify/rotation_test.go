package notify

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync/kvsynctest"
	"github.com/switchyard/switchyard/switch/registry"
)

// testClock is a settable clock (Options.Now).
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// rotationReceiver is a merchant's receiver during a secret rotation: it
// accepts a notice whose X-Switchyard-Signature or
// X-Switchyard-Signature-Previous checks under the secret it verifies with
// (mine), and records whether X-Switchyard-Signature alone checks under the
// secret in force (current), as a receiver that reads only that header needs.
type rotationReceiver struct {
	mu       sync.Mutex
	mine     string
	current  string
	accepted int
	rejected int
	primary  int // notices whose X-Switchyard-Signature checked under current
	previous int // notices that carried X-Switchyard-Signature-Previous
}

func (rv *rotationReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ts := r.Header.Get(registry.WebhookTimestampHeader)
	want := []byte(registry.SignWebhook([]byte(rv.mine), ts, body))
	sig, prev := r.Header.Get(registry.WebhookSignatureHeader), r.Header.Get(HeaderSignaturePrevious)
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if sig == registry.SignWebhook([]byte(rv.current), ts, body) {
		rv.primary++
	}
	if prev != "" {
		rv.previous++
	}
	if !hmac.Equal([]byte(sig), want) && (prev == "" || !hmac.Equal([]byte(prev), want)) {
		rv.rejected++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	rv.accepted++
}

// counts returns what the receiver accepted and rejected.
func (rv *rotationReceiver) counts() (accepted, rejected, primary, previous int) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return rv.accepted, rv.rejected, rv.primary, rv.previous
}

// TestSecretRotationOverlap: after an approved change of a merchant's webhook
// secret (same URL), a receiver that still verifies with the old secret accepts
// the notices for the overlap (notices.secret_overlap, 24 h), on the node that
// applied the change and on another node of the cluster, and rejects them from
// its end; X-Switchyard-Signature is always the new secret's alone. The old
// secret is sealed at rest (in Badger and the state log) like the current one,
// survives a restart, and is dropped at rest, on every node, once the overlap
// has ended. Before, the receiver rejected every notice from the approval on.
func TestSecretRotationOverlap(t *testing.T) {
	const oldSecret, newSecret = "old-rotation-secret-0123456789", "new-rotation-secret-0123456789"
	rv := &rotationReceiver{mine: oldSecret, current: oldSecret}
	hs := httptest.NewServer(rv)
	t.Cleanup(hs.Close)
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	clk := &testClock{t: t0}
	var mem statelog.Memory
	la, lb := kvsynctest.New(&mem), kvsynctest.New(&mem)
	dba, dbb := openSmallDB(t), openSmallDB(t)
	a, err := Open(dba, Options{CardHashKey: testKey, AllowPrivate: loopback, Log: la, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(dbb, Options{CardHashKey: testKey, AllowPrivate: loopback, Log: lb, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	mem.Follow(a)
	mem.Follow(b)
	reg := &fakeReview{}
	if err := a.UseReview(reg); err != nil {
		t.Fatal(err)
	}
	op := registry.Actor{Name: "op", Role: "operator"}
	request := func(secret string) {
		t.Helper()
		c, err := a.RequestEndpoint(op, "M1", hs.URL, secret, "")
		if err != nil {
			t.Fatal(err)
		}
		reg.decide(t, c.ID, true, false)
		if err := mem.Deliver(); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(step string, accepted, rejected, primary, previous int) {
		t.Helper()
		if a, r, p, pv := rv.counts(); a != accepted || r != rejected || p != primary || pv != previous {
			t.Fatalf("%s: accepted %d, rejected %d, signed by the secret in force %d, with a previous signature %d; want %d, %d, %d, %d",
				step, a, r, p, pv, accepted, rejected, primary, previous)
		}
	}
	request(oldSecret)
	deliverOne(t, a, "M1", "000000000001")
	expect("before the rotation", 1, 0, 1, 0)

	// The rotation, approved at t0+1h: the receiver has not switched yet.
	clk.Set(t0.Add(time.Hour))
	request(newSecret)
	rv.mu.Lock()
	rv.current = newSecret
	rv.mu.Unlock()
	until := t0.Add(25 * time.Hour)
	deliverOne(t, a, "M1", "000000000002")
	deliverOne(t, b, "M1", "000000000003") // the other node signs with both too
	expect("just after the rotation", 3, 0, 3, 2)
	if l, err := b.Deliveries("M1", 1); err != nil || l.PreviousSecretUntil == nil || !l.PreviousSecretUntil.Equal(until) {
		t.Fatalf("the other node's delivery log: previous secret until %v (%v); want %v", l.PreviousSecretUntil, err, until)
	}
	// Sealed at rest, both nodes, and in the state log; the record has it sealed.
	noSecretIn(t, "the rotating node", dba, la.Commits(), oldSecret, newSecret)
	noSecretIn(t, "the other node", dbb, lb.Commits(), oldSecret, newSecret)
	if r := storedEndpoint(t, a, "M1"); r.PrevSealed == nil || r.PrevUntil == nil || !r.PrevUntil.Equal(until) {
		t.Fatalf("stored webhook: previous secret sealed %v until %v; want sealed until %v", r.PrevSealed != nil, r.PrevUntil, until)
	}
	// A restart (the stored webhooks read again) keeps the overlap.
	again, err := Open(dba, Options{CardHashKey: testKey, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if ep := (*again.eps.Load())["M1"]; ep.Secret != newSecret || ep.prev != oldSecret || !ep.prevUntil.Equal(until) {
		t.Fatalf("after a restart: previous secret %v until %v", ep.prev == oldSecret, ep.prevUntil)
	}

	// The last second of the overlap: still accepted; nothing dropped yet.
	clk.Set(until.Add(-time.Second))
	deliverOne(t, b, "M1", "000000000004")
	expect("the overlap's last second", 4, 0, 4, 3)
	if n, err := a.dropPrevious(); n != 0 || err != nil {
		t.Fatalf("dropped %d before the overlap's end (%v)", n, err)
	}
	// Its end: no longer signed with the old secret; the receiver rejects.
	clk.Set(until)
	deliverOne(t, a, "M1", "000000000005")
	expect("at the overlap's end", 4, 1, 5, 3)
	if l, _ := a.Deliveries("M1", 1); l.PreviousSecretUntil != nil {
		t.Errorf("the delivery log still shows a previous secret until %v", l.PreviousSecretUntil)
	}
	// Dropped at rest by the housekeeping, through the state log: the other
	// node drops it too, and has nothing left to drop.
	a.tend()
	if err := mem.Deliver(); err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]*Outbox{"rotating": a, "other": b} {
		if r := storedEndpoint(t, o, "M1"); r.PrevSealed != nil || r.PrevUntil != nil || r.Sealed == nil {
			t.Errorf("%s node: stored webhook after the overlap %+v; want the current secret sealed, no previous one", name, r)
		}
		if ep := (*o.eps.Load())["M1"]; ep.prev != "" || !ep.prevUntil.IsZero() || ep.Secret != newSecret {
			t.Errorf("%s node: webhook in memory keeps the previous secret (%v until %v)", name, ep.prev != "", ep.prevUntil)
		}
	}
	if n, err := b.dropPrevious(); n != 0 || err != nil {
		t.Errorf("the other node dropped %d more (%v)", n, err)
	}
	// The receiver switches: the notice it refused goes out, and the next.
	rv.mu.Lock()
	rv.mine = newSecret
	rv.mu.Unlock()
	deliverOne(t, a, "M1", "000000000006")
	expect("after the receiver switched", 6, 1, 7, 3)
}

// TestSecretRotationNewURL: a change of the webhook's URL, or its removal, ends
// the overlap: the old secret belongs to the old receiver. A change that keeps
// the secret and the URL keeps the overlap as it was.
func TestSecretRotationNewURL(t *testing.T) {
	clk := &testClock{t: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)}
	b, err := Open(openDB(t), Options{CardHashKey: testKey, Now: clk.Now, SecretOverlap: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	set := func(url, secret string) Endpoint {
		t.Helper()
		if err := b.SetEndpoint("M1", url, secret, "op", ""); err != nil {
			t.Fatal(err)
		}
		return (*b.eps.Load())["M1"]
	}
	set("https://shop.example/n", "first-secret-0123456789")
	if ep := set("https://shop.example/n", "second-secret-0123456789"); ep.prev != "first-secret-0123456789" || !ep.prevUntil.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("rotation: previous %q until %v; want the first secret for 1h (Options.SecretOverlap)", ep.prev, ep.prevUntil)
	}
	clk.Set(clk.Now().Add(time.Minute))
	if ep := set("https://shop.example/n", "second-secret-0123456789"); ep.prev != "first-secret-0123456789" || !ep.prevUntil.Equal(clk.Now().Add(59*time.Minute)) {
		t.Fatalf("same secret again: previous %q until %v; want the overlap kept", ep.prev, ep.prevUntil)
	}
	if ep := set("https://other.example/n", "third-secret-0123456789"); ep.prev != "" || !ep.prevUntil.IsZero() {
		t.Fatalf("new URL: previous %q until %v; want none", ep.prev, ep.prevUntil)
	}
	if r := storedEndpoint(t, b, "M1"); r.PrevSealed != nil || r.PrevUntil != nil {
		t.Fatalf("new URL: stored %+v; want no previous secret", r)
	}
}

// storedEndpoint reads merchant's stored webhook record.
func storedEndpoint(t *testing.T, b *Outbox, merchant string) endpointRecord {
	t.Helper()
	vs := stored(t, b.db)[pfxEndpoint+merchant]
	if len(vs) == 0 {
		t.Fatalf("no stored webhook of %s", merchant)
	}
	var r endpointRecord
	if err := json.Unmarshal(vs[0], &r); err != nil { // the newest version first
		t.Fatal(err)
	}
	if bytes.Contains(vs[0], []byte("secret\"")) {
		t.Fatalf("a clear secret field in %s", vs[0])
	}
	return r
}
