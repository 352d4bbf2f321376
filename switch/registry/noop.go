package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// A change request whose every field is what its merchant or terminal already has
// would have a reviewer approve a change of nothing: requestChange refuses it
// (trimPatch), naming the fields. A request that changes at least one field keeps
// only the fields it changes, so that the stored request, its log entry and what a
// reviewer is shown list the real changes alone. The owners of RegisterOp
// operations refuse their own updates of nothing the same way, with
// NothingToChange, when they request them.

// Field is one field a change request sets: its name (the JSON one), its value now
// and its value once the change is applied, both as they would be stored (a name
// language in lower case, a key reference's default filled in), so that equal means
// unchanged. NothingToChange compares them with reflect.DeepEqual.
type Field struct {
	Name          string
	Before, After any
}

// same says whether the field already has its requested value.
func (f Field) same() bool { return reflect.DeepEqual(f.Before, f.After) }

// NothingToChange refuses a change request that would update a record to what it
// already is: when every field of fields already has its requested value it
// returns ErrInvalid (400 over the API, exit 1 from the CLI) naming the record and
// each field with its value ("task nightly: nothing to change: schedule is already
// @daily, disabled is already false"); when one of them changes, nil. what names
// the record; no field at all is refused too ("the request sets no field"). A
// creation or a deletion is never a change of nothing: call it for updates only.
// The registry refuses its own merchant and terminal changes with it (trimPatch);
// the owners of RegisterOp operations (switch/apps, switch/sched, switch/notify)
// call it when they request an update, before RequestChange, so that no reviewer
// is asked to approve a change of nothing.
func NothingToChange(what string, fields []Field) error {
	var same []string
	for _, f := range fields {
		if !f.same() {
			return nil
		}
		same = append(same, f.Name+" is already "+showValue(f.After))
	}
	if len(same) == 0 {
		return invalidf("%s: nothing to change: the request sets no field", what)
	}
	return invalidf("%s: nothing to change: %s", what, strings.Join(same, ", "))
}

// patchField is one field a merchant or terminal patch sets, and how to take it
// out of the patch.
type patchField struct {
	Field
	drop func()
}

// trimPatch takes out of c's merchant or terminal patch the fields whose value is
// the record's current one, as effs (compute's answer) shows; when no field is
// left it returns ErrInvalid naming them ("merchant 000000000000001: nothing to
// change: mcc is already 5812"). Other operations are left alone.
func trimPatch(c *Change, effs []effect) error {
	if len(effs) != 1 {
		return nil
	}
	var fields []patchField
	var what string
	// The patches are copied: the caller's are not to be trimmed.
	switch e := effs[0]; {
	case c.Op == OpMerchantChange && c.MerchantPatch != nil && e.mBefore != nil && e.mAfter != nil:
		mp := *c.MerchantPatch
		c.MerchantPatch = &mp
		fields, what = merchantPatchFields(c.MerchantPatch, e.mBefore, e.mAfter), "merchant "+e.mBefore.ID
	case c.Op == OpTerminalChange && c.TerminalPatch != nil && e.tBefore != nil && e.tAfter != nil:
		tp := *c.TerminalPatch
		c.TerminalPatch = &tp
		fields, what = terminalPatchFields(c.TerminalPatch, e.tBefore, e.tAfter), "terminal "+e.tBefore.ID
	default:
		return nil
	}
	fs := make([]Field, len(fields))
	for i, f := range fields {
		fs[i] = f.Field
	}
	if err := NothingToChange(what, fs); err != nil {
		return err
	}
	for _, f := range fields {
		if f.same() {
			f.drop()
		}
	}
	return nil
}

// showValue is v as a change request's error shows it: a string as it is ("none"
// when empty), anything else as JSON.
func showValue(v any) string {
	switch x := v.(type) {
	case string:
		if x == "" {
			return "none"
		}
		return x
	case fmt.Stringer:
		if s := x.String(); s != "" {
			return s
		}
		return "none"
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) == "null" {
		return "none"
	}
	return string(b)
}

// merchantPatchFields lists the fields p sets, with their values in m (before) and
// n (after the change, normalised and validated).
func merchantPatchFields(p *MerchantPatch, m, n *Merchant) []patchField {
	var fs []patchField
	str := func(name string, v **string, before, after string) {
		if *v != nil {
			fs = append(fs, patchField{Field{name, before, after}, func() { *v = nil }})
		}
	}
	str("name", &p.Name, m.Name, n.Name)
	str("name_latin", &p.NameLatin, m.NameLatin, n.NameLatin)
	str("name_language", &p.NameLanguage, m.NameLanguage, n.NameLanguage)
	str("mcc", &p.MCC, m.MCC, n.MCC)
	str("region", &p.Region, m.Region, n.Region)
	str("group", &p.Group, m.Group, n.Group)
	str("currency", &p.Currency, m.Currency, n.Currency)
	str("tier", &p.Tier, m.Tier, n.Tier)
	str("rating", &p.Rating, m.Rating, n.Rating)
	if p.Limits != nil {
		fs = append(fs, patchField{Field{"limits", m.Limits, n.Limits}, func() { p.Limits = nil }})
	}
	return fs
}

// terminalPatchFields lists the fields p sets, with their values in t (before) and
// n (after the change, normalised and validated: a key reference the change leaves
// to its default compares as that default).
func terminalPatchFields(p *TerminalPatch, t, n *Terminal) []patchField {
	var fs []patchField
	add := func(set bool, name string, before, after any, drop func()) {
		if set {
			fs = append(fs, patchField{Field{name, before, after}, drop})
		}
	}
	add(p.MerchantID != nil, "merchant_id", t.MerchantID, n.MerchantID, func() { p.MerchantID = nil })
	add(p.Kind != nil, "kind", string(t.Kind), string(n.Kind), func() { p.Kind = nil })
	add(p.Model != nil, "model", t.Model, n.Model, func() { p.Model = nil })
	add(p.DeviceSerial != nil, "device_serial", t.Binding.DeviceSerial, n.Binding.DeviceSerial, func() { p.DeviceSerial = nil })
	add(p.ICCID != nil, "iccid", t.Binding.ICCID, n.Binding.ICCID, func() { p.ICCID = nil })
	add(p.IMEI != nil, "imei", t.Binding.IMEI, n.Binding.IMEI, func() { p.IMEI = nil })
	add(p.Location != nil || p.ClearLocation, "location", t.Location, n.Location, func() { p.Location, p.ClearLocation = nil, false })
	add(p.AllowedNetworks != nil, "allowed_networks", networks(t), networks(n), func() { p.AllowedNetworks = nil })
	add(p.MinAppVersion != nil, "min_app_version", t.MinAppVersion, n.MinAppVersion, func() { p.MinAppVersion = nil })
	add(p.MissingPolicy != nil, "missing_policy", string(t.MissingPolicy), string(n.MissingPolicy), func() { p.MissingPolicy = nil })
	add(p.Keys != nil, "keys", t.Keys, n.Keys, func() { p.Keys = nil })
	add(p.AttestMaxAge != nil, "attest_max_age", t.AttestMaxAge, n.AttestMaxAge, func() { p.AttestMaxAge = nil })
	add(p.AttestLegacy != nil, "attest_legacy", t.AttestLegacy, n.AttestLegacy, func() { p.AttestLegacy = nil })
	return fs
}

// networks is t's allowed networks as strings ("any" for none), compared and shown
// by trimPatch.
func networks(t *Terminal) string {
	if len(t.AllowedNetworks) == 0 {
		return "any"
	}
	s := make([]string, 0, len(t.AllowedNetworks))
	for _, p := range t.AllowedNetworks {
		s = append(s, p.String())
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

// sameAlertRule refuses an alert-rule.put (a rule that suspends terminals, under
// review) that would replace a rule with the same rule: everything but who saved it
// and when is what the rule already is.
func (r *review) sameAlertRule(c *Change, effs []effect) error {
	if c.Op != OpAlertRulePut || len(effs) != 1 || effs[0].rAfter == nil {
		return nil
	}
	now := *effs[0].rAfter
	r.mu.Lock()
	old := r.alerts.rules[now.ID]
	r.mu.Unlock()
	if old == nil {
		return nil
	}
	was := *old
	was.UpdatedBy, was.UpdatedAt, now.UpdatedBy = "", now.UpdatedAt, ""
	a, errA := json.Marshal(&was)
	b, errB := json.Marshal(&now)
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		return nil
	}
	return invalidf("alert rule %s: nothing to change: the rule is already as requested", now.ID)
}

// normalizeLanguages puts the name languages of the merchants c registers or
// changes in the form the registry stores (normalizeLanguage: lower case), so that
// the stored request says what its approval stores. The records and the patch are
// copied: the caller's are left as they were.
func normalizeLanguages(c *Change) {
	if c.Merchant != nil {
		m := *c.Merchant
		m.NameLanguage = normalizeLanguage(m.NameLanguage)
		c.Merchant = &m
	}
	if c.MerchantPatch != nil && c.MerchantPatch.NameLanguage != nil {
		mp := *c.MerchantPatch
		lang := normalizeLanguage(*mp.NameLanguage)
		mp.NameLanguage = &lang
		c.MerchantPatch = &mp
	}
	if len(c.Merchants) > 0 {
		ms := slices.Clone(c.Merchants)
		for i := range ms {
			ms[i].NameLanguage = normalizeLanguage(ms[i].NameLanguage)
		}
		c.Merchants = ms
	}
}
