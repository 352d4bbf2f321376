package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/internal/actorname"
	"github.com/switchyard/switchyard/internal/currency"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

// The registry's pages: merchants, terminals, the review queue. Each action is
// the registry call the admin API route of the same name makes (switch/api
// registry.go), as the session's user.

func (c *Console) merchants(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	needle := strings.ToLower(strings.TrimSpace(q.Get("q")))
	var out []*registry.Merchant
	for _, m := range c.o.Registry.Merchants(registry.MerchantFilter{Status: registry.MerchantStatus(q.Get("status")), Region: q.Get("region"), Tier: q.Get("tier")}) {
		if needle == "" || strings.Contains(strings.ToLower(m.ID+" "+m.Name+" "+m.NameLatin+" "+m.Region+" "+m.Group), needle) {
			out = append(out, m)
		}
	}
	c.render(w, r, s, "merchants", map[string]any{"Merchants": out, "Q": q.Get("q"), "Status": q.Get("status")})
}

func (c *Console) merchant(w http.ResponseWriter, r *http.Request, s *session) {
	m, ok := c.o.Registry.Merchant(r.PathValue("id"))
	if !ok {
		c.renderError(w, r, s, http.StatusNotFound, "merchant "+shownID(r.PathValue("id"))+" does not exist")
		return
	}
	ts := c.o.Registry.Terminals(registry.TerminalFilter{MerchantID: m.ID})
	changes, _ := c.o.Registry.Changes(registry.ChangeFilter{Target: m.ID, Limit: 20})
	// LimitsCurrency: the limits are minor units of the merchant's currency,
	// shown in it, or in the acquirer's (currency.Acquirer) for a merchant of any.
	c.render(w, r, s, "merchant", map[string]any{"M": m, "Terminals": ts, "Changes": changes, "Recent": c.recent(journal.Query{MID: m.ID}),
		"LimitsCurrency": m.LimitsCurrency(), "CurrencyAlpha": currency.Alpha(m.Currency)})
}

// terminalRow is a terminal with what the registry knows of its last contact.
type terminalRow struct {
	*registry.Terminal
	Seen     *registry.LastSeen
	Merchant string
	Keys     []keyRow
}

func (c *Console) terminalRow(t *registry.Terminal) terminalRow {
	row := terminalRow{Terminal: t}
	if ls, ok := c.o.Registry.LastSeen(t.ID); ok {
		row.Seen = &ls
	}
	if m, ok := c.o.Registry.Merchant(t.MerchantID); ok {
		row.Merchant = m.Name
	}
	return row
}

func (c *Console) terminals(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	needle := strings.ToLower(strings.TrimSpace(q.Get("q")))
	var out []terminalRow
	capped := false
	for _, t := range c.o.Registry.Terminals(registry.TerminalFilter{MerchantID: q.Get("merchant"), Status: registry.TerminalStatus(q.Get("status")), Kind: registry.TerminalKind(q.Get("kind"))}) {
		if needle != "" && !strings.Contains(strings.ToLower(t.ID+" "+t.MerchantID+" "+t.Binding.DeviceSerial+" "+t.Binding.ICCID), needle) {
			continue
		}
		if len(out) >= 500 {
			capped = true
			break
		}
		out = append(out, c.terminalRow(t))
	}
	c.render(w, r, s, "terminals", map[string]any{"Terminals": out, "Capped": capped, "Q": q.Get("q"), "Status": q.Get("status"), "Kind": q.Get("kind")})
}

func (c *Console) terminal(w http.ResponseWriter, r *http.Request, s *session) {
	t, ok := c.o.Registry.Terminal(r.PathValue("id"))
	if !ok {
		c.renderError(w, r, s, http.StatusNotFound, "terminal "+shownID(r.PathValue("id"))+" does not exist")
		return
	}
	row := c.terminalRow(t)
	if c.o.Keys != nil {
		for _, ref := range []string{t.Keys.TMK, t.Keys.TPK, t.Keys.TAK, t.Keys.BDK} {
			if ref == "" {
				continue
			}
			if k, err := c.o.Keys.Key(context.Background(), hsm.KeyRef{ID: ref}); err == nil {
				row.Keys = append(row.Keys, keyRowOf(k))
			}
		}
	}
	recent := c.recent(journal.Query{TID: t.ID})
	changes, _ := c.o.Registry.Changes(registry.ChangeFilter{Target: t.ID, Limit: 20})
	incs, _ := c.o.Registry.Incidents(registry.IncidentFilter{TerminalID: t.ID, Limit: 20})
	d := map[string]any{"T": row, "Recent": recent, "Changes": changes, "Incidents": incs}
	if c.o.Apps != nil {
		if rep, ok := c.o.Apps.ReportOf(t.ID); ok {
			d["App"] = rep
		}
	}
	c.render(w, r, s, "terminal", d)
}

// recent returns the newest 20 journal records matching q over the last 7 days.
func (c *Console) recent(q journal.Query) []*journal.Record {
	if c.o.Journal == nil {
		return nil
	}
	q.From, q.To = c.o.Now().Add(-7*24*time.Hour), c.o.Now().Add(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _ := newest(ctx, c.o.Journal, q, 20, nil)
	return out
}

func (c *Console) registerMerchant(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostFormValue
	m := registry.Merchant{ID: strings.TrimSpace(f("id")), Name: f("name"), NameLatin: f("name_latin"), NameLanguage: strings.TrimSpace(f("name_language")),
		MCC: f("mcc"), Region: f("region"), Currency: strings.TrimSpace(f("currency")), Tier: f("tier"), Rating: f("rating"), Status: registry.MerchantActive}
	ch, err := c.o.Registry.RequestChange(s.actor(), registry.Change{Op: registry.OpMerchantRegister, Merchant: &m, Reason: f("reason")})
	if err != nil {
		done(w, r, Prefix+"merchants", "", err)
		return
	}
	done(w, r, Prefix+"changes/"+ch.ID, "requested", nil)
}

var merchantOps = map[string]registry.Op{"activate": registry.OpMerchantActivate, "freeze": registry.OpMerchantFreeze,
	"unfreeze": registry.OpMerchantUnfreeze, "close": registry.OpMerchantClose}

var terminalOps = map[string]registry.Op{"activate": registry.OpTerminalActivate, "suspend": registry.OpTerminalSuspend,
	"resume": registry.OpTerminalResume, "close": registry.OpTerminalClose}

func (c *Console) merchantAction(w http.ResponseWriter, r *http.Request, s *session) {
	c.lifecycle(w, r, s, "merchants", merchantOps)
}

func (c *Console) terminalAction(w http.ResponseWriter, r *http.Request, s *session) {
	c.lifecycle(w, r, s, "terminals", terminalOps)
}

// lifecycle requests the change named by the path's action, for review.
func (c *Console) lifecycle(w http.ResponseWriter, r *http.Request, s *session, kind string, ops map[string]registry.Op) {
	id := r.PathValue("id")
	op, ok := ops[r.PathValue("action")]
	if !ok {
		c.renderError(w, r, s, http.StatusNotFound, "unknown action "+r.PathValue("action"))
		return
	}
	ch, err := c.o.Registry.RequestChange(s.actor(), registry.Change{Op: op, Target: id, Reason: r.PostFormValue("reason")})
	if err != nil {
		done(w, r, Prefix+kind+"/"+id, "", err)
		return
	}
	done(w, r, Prefix+"changes/"+ch.ID, "requested", nil)
}

// --- the review queue ---

func (c *Console) changes(w http.ResponseWriter, r *http.Request, s *session) {
	status := r.URL.Query().Get("status")
	if _, set := r.URL.Query()["status"]; !set {
		status = string(registry.ChangePending)
	}
	cs, err := c.o.Registry.Changes(registry.ChangeFilter{Status: registry.ChangeStatus(status), Limit: 200})
	if err != nil {
		c.renderError(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Seq > cs[j].Seq })
	c.render(w, r, s, "changes", map[string]any{"Changes": cs, "Status": status})
}

// diffLine is one field of a change's before/after comparison.
type diffLine struct {
	Field, Before, After string
	Changed              bool
	// LookAlike says how a changed text value differs from the one before when
	// the two read as one (actorname.LookAlike: a terminal moved to merchant
	// "00000000000000I" from "000000000000001", a name with a Cyrillic "А"), so
	// that the reviewer sees a change the eye would not; "" otherwise.
	LookAlike string
	// Amount, for a merchant's amount limit (limits.per_transaction, daily,
	// monthly: minor units), is the change as people read it, in the merchant's
	// currency ("500.00 → 1000.00 156"; the acquirer's for a merchant of any), each
	// side in its own when the change moves the merchant to another ("500.00 156 →
	// 50000 392"); "" otherwise.
	Amount string
}

// limitFields are the diff's fields of a merchant's amount limits.
var limitFields = map[string]bool{"limits.per_transaction": true, "limits.daily": true, "limits.monthly": true}

// limitAmount is a limit of a diff (its JSON number, "" for none) in currency
// cur: "-" for none, "" for a value that is not a number.
func limitAmount(v, cur string) (string, bool) {
	if v == "" {
		return "-", true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return "", false
	}
	return currency.Format(n, cur), true
}

// diffCurrency is the currency a merchant's limits are in, from its flattened
// JSON fields (flatten): its "currency", or the acquirer's (currency.Acquirer)
// when it has none (or the record is not a merchant's).
func diffCurrency(fields map[string]string) string {
	var c string
	if v, ok := fields["currency"]; ok && json.Unmarshal([]byte(v), &c) == nil && c != "" {
		return c
	}
	return currency.Acquirer
}

// effectDiff is one record a change touches, field by field.
type effectDiff struct {
	Type, ID string
	Lines    []diffLine
}

func (c *Console) change(w http.ResponseWriter, r *http.Request, s *session) {
	p, err := c.o.Registry.GetChange(r.PathValue("id"))
	if err != nil {
		c.renderError(w, r, s, http.StatusNotFound, notFound("change", r.PathValue("id"), err))
		return
	}
	var effects []effectDiff
	for _, e := range p.Effects {
		effects = append(effects, effectDiff{Type: e.Type, ID: e.ID, Lines: diff(e.Before, e.After)})
	}
	// A name that reads as the requester's is his too (the registry refuses its
	// approval): no approve button for "Alice" on alice's change.
	own := actorname.Same(p.Change.RequestedBy, s.User)
	c.render(w, r, s, "change", map[string]any{"P": p, "C": p.Change, "Effects": effects, "Own": own,
		"Pending": p.Change.Status == registry.ChangePending || p.Change.Status == registry.ChangeExpired,
		// An expired change is rejected or cancelled, never approved (registry.change_ttl).
		"Expired": p.Change.Status == registry.ChangeExpired})
}

// diff compares two JSON objects field by field: the top-level fields, and those of
// a field whose value is an object one level down ("keys.dukpt_device",
// "binding.imei", "limits.daily"), so that the reviewer sees which key reference,
// binding or limit a change moves rather than two JSON texts; deeper values are
// compared as their JSON.
func diff(before, after json.RawMessage) []diffLine {
	b, a := flatten(before), flatten(after)
	keys := map[string]bool{}
	for k := range b {
		keys[k] = true
	}
	for k := range a {
		keys[k] = true
	}
	bcur, acur := diffCurrency(b), diffCurrency(a)
	if len(b) == 0 { // a new record: no currency before
		bcur = acur
	}
	var out []diffLine
	for _, k := range sortedKeys(keys) {
		bv, av := b[k], a[k]
		l := diffLine{Field: k, Before: bv, After: av, Changed: bv != av}
		if limitFields[k] {
			bs, bok := limitAmount(bv, bcur)
			as, aok := limitAmount(av, acur)
			switch {
			case !bok || !aok:
			case bcur != acur:
				l.Amount = bs + " " + bcur + " → " + as + " " + acur
			default:
				l.Amount = bs + " → " + as + " " + acur
			}
		}
		var bs, as string
		if l.Changed && json.Unmarshal([]byte(bv), &bs) == nil && json.Unmarshal([]byte(av), &as) == nil {
			l.LookAlike = actorname.LookAlike(bs, as)
		}
		out = append(out, l)
	}
	// Changed fields first: the reviewer reads those.
	sort.SliceStable(out, func(i, j int) bool { return out[i].Changed && !out[j].Changed })
	return out
}

// flatten returns the fields of JSON object raw as their JSON texts, the fields of
// one whose value is a non-empty object under "field.name" (nothing for a value
// that is not an object).
func flatten(raw json.RawMessage) map[string]string {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(raw, &m)
	out := make(map[string]string, len(m))
	for k, v := range m {
		var sub map[string]json.RawMessage
		if len(v) > 0 && v[0] == '{' && json.Unmarshal(v, &sub) == nil && len(sub) > 0 {
			for sk, sv := range sub {
				out[k+"."+sk] = string(sv)
			}
			continue
		}
		out[k] = string(v)
	}
	return out
}

func (c *Console) approve(w http.ResponseWriter, r *http.Request, s *session) {
	c.review(w, r, s, c.o.Registry.Approve, "approved")
}

func (c *Console) reject(w http.ResponseWriter, r *http.Request, s *session) {
	c.review(w, r, s, c.o.Registry.Reject, "rejected")
}

func (c *Console) cancel(w http.ResponseWriter, r *http.Request, s *session) {
	c.review(w, r, s, c.o.Registry.Cancel, "cancelled")
}

// review approves, rejects or cancels the path's change; the registry refuses
// a reviewer's approval of his own request, and the message says so.
func (c *Console) review(w http.ResponseWriter, r *http.Request, s *session, fn func(registry.Actor, string, string) (*registry.Change, error), msg string) {
	id := r.PathValue("id")
	_, err := fn(s.actor(), id, r.PostFormValue("note"))
	done(w, r, Prefix+"changes/"+id, msg, err)
}

// --- users (admins) ---

func (c *Console) users(w http.ResponseWriter, r *http.Request, s *session) {
	us, err := c.o.Registry.Users()
	if err != nil {
		c.renderError(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	c.render(w, r, s, "users", map[string]any{"Users": us})
}

func (c *Console) addUser(w http.ResponseWriter, r *http.Request, s *session) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if c.o.TokenName != nil && c.o.TokenName(name) {
		done(w, r, Prefix+"users", "", fmt.Errorf("user %s: an admin token of the configuration has that name, and the oplog records names only: "+
			"give the console user another name (one name, one person)", name))
		return
	}
	_, err := c.o.Registry.AddUser(s.actor(), name, r.PostFormValue("role"), r.PostFormValue("password"))
	done(w, r, Prefix+"users", "saved", err)
}

func (c *Console) userAction(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	var err error
	switch r.PathValue("action") {
	case "disable", "enable":
		err = c.o.Registry.DisableUser(s.actor(), name, r.PathValue("action") == "disable")
	case "passwd":
		err = c.o.Registry.SetPassword(s.actor(), name, r.PostFormValue("password"))
	default:
		c.renderError(w, r, s, http.StatusNotFound, "unknown action "+strconv.Quote(r.PathValue("action")))
		return
	}
	done(w, r, Prefix+"users", "saved", err)
}
