package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

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
	c.ID, c.Status, c.RequestedBy = fmt.Sprintf("CHG-%d", len(f.changes)+1), registry.ChangePending, p.Name
	f.changes = append(f.changes, &c)
	return &c, nil
}

func (f *fakeReview) decide(t *testing.T, id string, approve, crash bool) registry.ChangeEffect {
	t.Helper()
	for _, c := range f.changes {
		if c.ID != id {
			continue
		}
		if !approve {
			c.Status = registry.ChangeRejected
			return registry.ChangeEffect{}
		}
		ce, err := f.ops[c.Op].Check(c)
		if err != nil {
			t.Fatalf("approve %s: %v", id, err)
		}
		c.Status, c.ReviewedBy = registry.ChangeApproved, "reviewer"
		if !crash {
			f.ops[c.Op].Apply(c)
		}
		return ce
	}
	t.Fatalf("no change %s", id)
	return registry.ChangeEffect{}
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

func (f *fakeReview) Changes(flt registry.ChangeFilter) ([]*registry.Change, error) {
	var out []*registry.Change
	for _, c := range f.changes {
		if flt.Status == "" || c.Status == flt.Status {
			out = append(out, c)
		}
	}
	return out, nil
}

// TestWebhookReviewed: a webhook requested through review is in force only once
// approved, its secret is in neither the change nor the effect the reviewer sees;
// an approval whose Apply a crash cut off is applied at the next start, and only a
// merchant's last approved change is; a rejected change's staged secret is swept
// a day later, a pending one's is kept.
func TestWebhookReviewed(t *testing.T) {
	db := openDB(t)
	now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	open := func(reg *fakeReview) *Outbox {
		t.Helper()
		b, err := Open(db, Options{AllowPrivate: loopback, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.UseReview(reg); err != nil {
			t.Fatal(err)
		}
		return b
	}
	reg := &fakeReview{}
	b := open(reg)
	const secret = "merchant-secret-0123456789"
	op := registry.Actor{Name: "op", Role: "operator"}
	c, err := b.RequestEndpoint(op, "M1", "http://127.0.0.1:9/a", secret, "asked")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(c.Ext), secret) {
		t.Fatalf("the change carries the secret: %s", c.Ext)
	}
	if _, ok := (*b.eps.Load())["M1"]; ok {
		t.Fatal("the webhook is in force before its review")
	}
	if _, err := b.RequestEndpoint(op, "M1", "ftp://x", secret, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a bad URL requested: %v", err)
	}
	ce := reg.decide(t, c.ID, true, false)
	if strings.Contains(string(ce.After), secret) || !strings.Contains(string(ce.After), "secret_sha256") {
		t.Fatalf("the effect shown: %s", ce.After)
	}
	ep, ok := (*b.eps.Load())["M1"]
	if !ok || ep.URL != "http://127.0.0.1:9/a" || ep.Secret != secret || ep.Change != c.ID || !strings.Contains(ep.By, "approved by reviewer") {
		t.Fatalf("after the approval: %+v %v", ep, ok)
	}
	if _, staged, _ := b.staged(mustRef(t, c)); staged {
		t.Fatal("the secret stays staged after the change was applied")
	}
	// Approving it again (a second node's start) changes nothing: not staged.
	if _, err := b.checkChange(c); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("a change applied already checked again: %v", err)
	}

	// An approval cut off before its Apply, then a newer one applied, then a
	// restart: the newer is in force, the older's secret is gone.
	c1, err := b.RequestEndpoint(op, "M1", "http://127.0.0.1:9/b", secret+"-b", "")
	if err != nil {
		t.Fatal(err)
	}
	c2, err := b.RequestEndpoint(op, "M1", "http://127.0.0.1:9/c", secret+"-c", "")
	if err != nil {
		t.Fatal(err)
	}
	reg.decide(t, c1.ID, true, true)  // cut off before its Apply
	reg.decide(t, c2.ID, true, false) // applied: the start must not put c1 over it
	// A rejected request and a pending one.
	rej, err := b.RequestEndpoint(op, "M2", "http://127.0.0.1:9/r", secret, "")
	if err != nil {
		t.Fatal(err)
	}
	reg.decide(t, rej.ID, false, false)
	pend, err := b.RequestEndpoint(op, "M3", "http://127.0.0.1:9/p", secret, "")
	if err != nil {
		t.Fatal(err)
	}
	b = open(reg)
	if ep := (*b.eps.Load())["M1"]; ep.URL != "http://127.0.0.1:9/c" || ep.Change != c2.ID {
		t.Fatalf("after the restart M1's webhook is %+v; want the last approved change's", ep)
	}
	for _, x := range []*registry.Change{c1, c2} {
		if _, staged, _ := b.staged(mustRef(t, x)); staged {
			t.Errorf("%s's secret still staged after the restart", x.ID)
		}
	}
	if _, staged, _ := b.staged(mustRef(t, rej)); !staged {
		t.Error("the rejected change's secret was swept before a day had passed")
	}
	now = now.Add(25 * time.Hour)
	b = open(reg)
	if _, staged, _ := b.staged(mustRef(t, rej)); staged {
		t.Error("the rejected change's secret is still staged a day later")
	}
	if _, staged, _ := b.staged(mustRef(t, pend)); !staged {
		t.Error("the pending change's secret was swept")
	}
	reg.decide(t, pend.ID, true, false)
	if ep := (*b.eps.Load())["M3"]; ep.URL != "http://127.0.0.1:9/p" {
		t.Fatalf("the pending change approved a day later: %+v", ep)
	}
	// A removal through review.
	rm, err := b.RequestEndpoint(op, "M3", "", "", "merchant left")
	if err != nil {
		t.Fatal(err)
	}
	reg.decide(t, rm.ID, true, false)
	if _, ok := (*b.eps.Load())["M3"]; ok {
		t.Fatal("the webhook is still there after its removal was approved")
	}
}

func mustRef(t *testing.T, c *registry.Change) string {
	t.Helper()
	var w WebhookChange
	if err := json.Unmarshal(c.Ext, &w); err != nil || w.SecretRef == "" {
		t.Fatalf("change %s: payload %s: %v", c.ID, c.Ext, err)
	}
	return w.SecretRef
}
