package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/registry"
)

// fakeReview is the registry's review as the outbox sees it: changes requested,
// approved (Check, then Apply unless crash is set) or rejected.
type fakeReview struct {
	ops     map[registry.Op]registry.ExtOp
	changes []*registry.Change
}

func (f *fakeReview) RegisterOp(op registry.Op, h registry.ExtOp) {
	if f.ops == nil {
		f.ops = map[registry.Op]registry.ExtOp{}
	}
	f.ops[op] = h
}

func (f *fakeReview) RequestChange(p registry.Actor, c registry.Change) (*registry.Change, error) {
	if _, err := f.ops[c.Op].Check(&c); err != nil {
		return nil, err
	}
	c.ID, c.Seq, c.Status, c.RequestedBy = fmt.Sprintf("CHG-%d", len(f.changes)+1), uint64(len(f.changes)+1), registry.ChangePending, p.Name
	f.changes = append(f.changes, &c)
	return &c, nil
}

func (f *fakeReview) decide(t *testing.T, id string, approve, crash bool) registry.ChangeEffect {
	t.Helper()
	ce, err := f.decideErr(id, approve, crash)
	if err != nil {
		t.Fatalf("approve %s: %v", id, err)
	}
	return ce
}

func (f *fakeReview) decideErr(id string, approve, crash bool) (registry.ChangeEffect, error) {
	for _, c := range f.changes {
		if c.ID != id {
			continue
		}
		if !approve {
			c.Status = registry.ChangeRejected
			return registry.ChangeEffect{}, nil
		}
		ce, err := f.ops[c.Op].Check(c)
		if err != nil {
			return ce, err
		}
		c.Status, c.ReviewedBy = registry.ChangeApproved, "reviewer"
		if !crash {
			f.ops[c.Op].Apply(c)
		}
		return ce, nil
	}
	return registry.ChangeEffect{}, fmt.Errorf("no change %s", id)
}

func (f *fakeReview) ApprovedChanges(ops ...registry.Op) ([]*registry.Change, error) {
	var out []*registry.Change
	for _, c := range f.changes {
		if c.Status == registry.ChangeApproved && slices.Contains(ops, c.Op) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeReview) ClosedChanges(ops ...registry.Op) ([]*registry.Change, error) {
	var out []*registry.Change
	for _, c := range f.changes {
		if (c.Status == registry.ChangeRejected || c.Status == registry.ChangeCancelled) && slices.Contains(ops, c.Op) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeReview) PendingChanges(ops ...registry.Op) ([]*registry.Change, error) {
	var out []*registry.Change
	for _, c := range f.changes {
		if c.Status == registry.ChangePending && slices.Contains(ops, c.Op) {
			out = append(out, c)
		}
	}
	return out, nil
}

// TestWebhookReviewed: a webhook requested through review is in force only once
// approved; its secret is in neither the change nor the effect the reviewer sees,
// which carries the secret's fingerprint; one change of a merchant is pending at
// a time; an approval whose Apply a crash cut off is applied at the next start,
// and only a merchant's last approved change is; a rejected change's staged
// secret is swept, a pending one's is kept; a removal leaves nothing
// staged; the URL is checked again at the approval.
func TestWebhookReviewed(t *testing.T) {
	db := openDB(t)
	now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	open := func(reg *fakeReview, allow []netip.Prefix) *Outbox {
		t.Helper()
		b, err := Open(db, Options{CardHashKey: testKey, AllowPrivate: allow, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.UseReview(reg); err != nil {
			t.Fatal(err)
		}
		return b
	}
	reg := &fakeReview{}
	b := open(reg, loopback)
	const secret = "merchant-secret-0123456789"
	op := registry.Actor{Name: "op", Role: "operator"}
	request := func(m, url, secret string) *registry.Change {
		t.Helper()
		c, err := b.RequestEndpoint(op, m, url, secret, "asked")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	inForce := func(m string) string {
		ep, ok := (*b.eps.Load())[m]
		if !ok {
			return ""
		}
		return ep.URL
	}
	c := request("M1", "http://127.0.0.1:9/a", secret)
	if strings.Contains(string(c.Ext), secret) {
		t.Fatalf("the change carries the secret: %s", c.Ext)
	}
	if inForce("M1") != "" {
		t.Fatal("the webhook is in force before its review")
	}
	if _, err := b.RequestEndpoint(op, "M1", "http://127.0.0.1:9/z", secret, ""); !errors.Is(err, registry.ErrConflict) || !strings.Contains(err.Error(), c.ID) {
		t.Fatalf("a second change of M1 while %s is pending: %v", c.ID, err)
	}
	if _, err := b.RequestEndpoint(op, "M9", "ftp://x", secret, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a bad URL requested: %v", err)
	}
	if _, err := b.RequestEndpoint(op, "M9", "http://127.0.0.1:9/\u202egnp.kooh", secret, ""); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "U+202E") {
		t.Fatalf("a URL with a bidi override requested: %v, want refused naming U+202E", err)
	}
	if _, err := b.RequestEndpoint(op, "M9", "http://127.0.0.1:9/n", secret, "as\u200bked"); !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "U+200B") {
		t.Fatalf("a reason with a zero-width space: %v, want refused naming U+200B", err)
	}
	ce := reg.decide(t, c.ID, true, false)
	if strings.Contains(string(ce.After), secret) || !strings.Contains(string(ce.After), `"secret_fingerprint":"`+b.fingerprint(secret)+`"`) {
		t.Fatalf("the effect shown: %s", ce.After)
	}
	ep := (*b.eps.Load())["M1"]
	if ep.URL != "http://127.0.0.1:9/a" || ep.Secret != secret || ep.Change != c.ID || !strings.Contains(ep.By, "approved by reviewer") {
		t.Fatalf("after the approval: %+v", ep)
	}
	if staged, _ := b.isStaged(mustRef(t, c)); staged {
		t.Fatal("the secret stays staged after the change was applied")
	}

	// An approval cut off before its Apply is applied at the next start.
	c1 := request("M1", "http://127.0.0.1:9/b", secret+"-b")
	reg.decide(t, c1.ID, true, true)
	b = open(reg, loopback)
	if inForce("M1") != "http://127.0.0.1:9/b" {
		t.Fatalf("after the restart M1's webhook is %q; want the approved change's", inForce("M1"))
	}
	// One cut off, then a newer one applied, then a restart: the newer stays,
	// the older's secret goes.
	c2 := request("M1", "http://127.0.0.1:9/c", secret+"-c")
	reg.decide(t, c2.ID, true, true)
	c3 := request("M1", "http://127.0.0.1:9/d", secret+"-d")
	reg.decide(t, c3.ID, true, false)
	b = open(reg, loopback)
	if inForce("M1") != "http://127.0.0.1:9/d" {
		t.Fatalf("after the restart M1's webhook is %q; want the last approved change's", inForce("M1"))
	}
	if staged, _ := b.isStaged(mustRef(t, c2)); staged {
		t.Error("the superseded change's secret is still staged after the restart")
	}

	// Two changes of one merchant pending (requested on two nodes at once): the
	// later cannot be approved first; applied in either order, the later stays.
	cA := request("M4", "http://127.0.0.1:9/A", secret)
	other := request("M5", "http://127.0.0.1:9/B", secret)
	var wB WebhookChange
	_ = json.Unmarshal(other.Ext, &wB)
	wB.Merchant = "M4"
	other.Target, other.Ext = "M4", mustJSON(t, wB)
	restage(t, b, wB, secret) // sealed for M5: staged again as if for M4
	if _, err := reg.decideErr(other.ID, true, false); !errors.Is(err, registry.ErrConflict) || !strings.Contains(err.Error(), cA.ID) {
		t.Fatalf("the later change approved first: %v", err)
	}
	reg.decide(t, cA.ID, true, true)
	reg.decide(t, other.ID, true, true)
	b.applyChange(other)
	b.applyChange(cA) // late: must not put A over B
	if inForce("M4") != "http://127.0.0.1:9/B" {
		t.Fatalf("M4's webhook is %q after the approvals applied out of order; want the later's", inForce("M4"))
	}

	// Rejected: swept (at once: TestRejectedSecretDeleted); pending: kept, even
	// a day later.
	rej := request("M2", "http://127.0.0.1:9/r", secret)
	reg.decide(t, rej.ID, false, false)
	pend := request("M3", "http://127.0.0.1:9/p", secret)
	now = now.Add(25 * time.Hour)
	b = open(reg, loopback)
	if staged, _ := b.isStaged(mustRef(t, rej)); staged {
		t.Error("the rejected change's secret is still staged a day later")
	}
	if staged, _ := b.isStaged(mustRef(t, pend)); !staged {
		t.Error("the pending change's secret was swept")
	}
	reg.decide(t, pend.ID, true, false)
	if inForce("M3") != "http://127.0.0.1:9/p" {
		t.Fatalf("the pending change approved a day later: %q", inForce("M3"))
	}
	// A removal through review leaves nothing staged.
	rm := request("M3", "", "")
	reg.decide(t, rm.ID, true, false)
	if inForce("M3") != "" {
		t.Fatal("the webhook is still there after its removal was approved")
	}
	if staged, _ := b.isStaged(mustRef(t, rm)); staged {
		t.Error("the removal's marker is still staged")
	}
	// The URL is checked again at the approval: loopback no longer allowed.
	late := request("M6", "http://127.0.0.1:9/late", secret)
	b = open(reg, nil)
	if _, err := reg.decideErr(late.ID, true, false); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("a webhook to a now refused address approved: %v", err)
	}
}

// TestWebhookOfNothingRefused: a request of the webhook in force, the same URL
// with the same secret, is refused (registry.ErrInvalid naming the URL and the
// secret's fingerprint, never the secret), and nothing is staged or requested; a
// new secret for the URL (a rotation), another URL, and a removal are requested.
func TestWebhookOfNothingRefused(t *testing.T) {
	db := openDB(t)
	b, err := Open(db, Options{CardHashKey: testKey, AllowPrivate: loopback})
	if err != nil {
		t.Fatal(err)
	}
	reg := &fakeReview{}
	if err := b.UseReview(reg); err != nil {
		t.Fatal(err)
	}
	const secret, url = "merchant-secret-0123456789", "http://127.0.0.1:9/a"
	op := registry.Actor{Name: "op", Role: "operator"}
	c, err := b.RequestEndpoint(op, "M1", url, secret, "asked")
	if err != nil {
		t.Fatal(err)
	}
	reg.decide(t, c.ID, true, false)
	staged, _ := b.stagedRefs()
	_, err = b.RequestEndpoint(op, "M1", url, secret, "again")
	want := "webhook of merchant M1: nothing to change: url is already " + url + ", secret_fingerprint is already " + b.fingerprint(secret)
	if !errors.Is(err, registry.ErrInvalid) || err.Error() != want || strings.Contains(err.Error(), secret) {
		t.Fatalf("the webhook in force requested again: %v\nwant %s", err, want)
	}
	if now, _ := b.stagedRefs(); len(now) != len(staged) || len(reg.changes) != 1 {
		t.Fatalf("after the refusal: %d staged secrets (want %d), %d changes (want 1)", len(now), len(staged), len(reg.changes))
	}
	for _, tc := range []struct{ url, secret string }{{url, secret + "-new"}, {url + "x", secret}, {"", ""}} {
		c, err := b.RequestEndpoint(op, "M1", tc.url, tc.secret, "")
		if err != nil {
			t.Fatalf("request of %q with another secret or URL, or a removal: %v", tc.url, err)
		}
		reg.decide(t, c.ID, false, false)
	}
}

// restage stages secret again under w's reference, sealed for w's merchant.
func restage(t *testing.T, b *Outbox, w WebhookChange, secret string) {
	t.Helper()
	sealed, err := b.secrets.Seal([]byte(secret), sealAD(adStaged, w.Merchant, w.SecretRef))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(pfxStaged+w.SecretRef), mustJSON(t, stagedSecret{Sealed: sealed, At: b.o.Now()}))
	}); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustRef(t *testing.T, c *registry.Change) string {
	t.Helper()
	var w WebhookChange
	if err := json.Unmarshal(c.Ext, &w); err != nil || w.SecretRef == "" {
		t.Fatalf("change %s: payload %s: %v", c.ID, c.Ext, err)
	}
	return w.SecretRef
}
