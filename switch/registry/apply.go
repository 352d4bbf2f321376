package registry

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// What a change does: compute works it out from the current snapshot, without
// writing anything, for the request (is it possible now?), the preview and the
// approval (which writes the effects).

// effect is a computed change to one record.
type effect struct {
	mBefore, mAfter *Merchant
	tBefore, tAfter *Terminal
	rBefore, rAfter *AlertRule    // rBefore is filled under r.mu, where it is shown
	xAfter          *ChangeEffect // an operation another package registered (ext.go)
}

// compute works out what c does to the current state, at time now, without writing
// anything. It validates everything the approval will apply.
func (r *review) compute(c *Change, now time.Time) ([]effect, error) {
	s := r.snap.Load()
	curM := func(id string) *Merchant {
		if sl := s.merchants[id]; sl != nil {
			return sl.rec.Load()
		}
		return nil
	}
	curT := func(id string) *Terminal {
		if sl := s.terminals[id]; sl != nil {
			return sl.rec.Load()
		}
		return nil
	}
	merchantTransition := func(from []MerchantStatus, to MerchantStatus) ([]effect, error) {
		m := curM(c.Target)
		if m == nil {
			return nil, notFoundf("merchant %s does not exist", c.Target)
		}
		if !slices.Contains(from, m.Status) {
			return nil, conflictf("merchant %s is %s: %s needs it to be %v", m.ID, m.Status, c.Op, from)
		}
		n := *m
		n.Status, n.Note, n.UpdatedAt, n.Version = to, c.Reason, now, m.Version+1
		return []effect{{mBefore: m, mAfter: &n}}, nil
	}
	terminalTransition := func(from []TerminalStatus, to TerminalStatus) ([]effect, error) {
		t := curT(c.Target)
		if t == nil {
			return nil, notFoundf("terminal %s does not exist", c.Target)
		}
		if !slices.Contains(from, t.Status) {
			return nil, conflictf("terminal %s is %s: %s needs it to be %v", t.ID, t.Status, c.Op, from)
		}
		if to == TerminalActive && t.Kind == KindSoftPOS && t.Binding.DeviceSerial == "" {
			// A record stored before SoftPOS terminals had to be bound: bind it
			// first (a terminal change setting its device serial).
			return nil, invalidf("terminal %s: %s refused: %s", t.ID, c.Op, errSoftPOSUnbound)
		}
		n := *t
		n.Status, n.Note, n.UpdatedAt, n.Version = to, c.Reason, now, t.Version+1
		if to == TerminalActive && n.ActivatedAt.IsZero() {
			n.ActivatedAt = now
		}
		return []effect{{tBefore: t, tAfter: &n}}, nil
	}
	newMerchant := func(m Merchant, seen map[string]bool) (*Merchant, error) {
		if m.Status == "" {
			m.Status = MerchantActive
		}
		if m.Status != MerchantPending && m.Status != MerchantActive {
			return nil, invalidf("merchant %s: status %q: a new merchant is pending or active", m.ID, m.Status)
		}
		m.NameLanguage = normalizeLanguage(m.NameLanguage)
		if err := m.Validate(); err != nil {
			return nil, err
		}
		if curM(m.ID) != nil || seen[m.ID] {
			return nil, conflictf("merchant %s already exists", m.ID)
		}
		m.CreatedAt, m.UpdatedAt, m.Version, m.Note = now, now, 1, c.Reason
		return &m, nil
	}
	newTerminal := func(t Terminal, seen map[string]bool) (*Terminal, error) {
		normalizeTerminal(&t)
		if t.Status == "" {
			t.Status = TerminalPending
		}
		if t.Status != TerminalPending && t.Status != TerminalActive {
			return nil, invalidf("terminal %s: status %q: a new terminal is pending or active", t.ID, t.Status)
		}
		if err := t.Validate(); err != nil {
			return nil, err
		}
		if curT(t.ID) != nil || seen[t.ID] {
			return nil, conflictf("terminal %s already exists", t.ID)
		}
		claims := ownClaims(&t)
		if err := r.claimedElsewhere(t.ID, &claims, nil); err != nil {
			return nil, err
		}
		if m := curM(t.MerchantID); m == nil {
			return nil, notFoundf("terminal %s: merchant %s does not exist", t.ID, t.MerchantID)
		} else if m.Status == MerchantClosed {
			return nil, conflictf("terminal %s: merchant %s is closed", t.ID, t.MerchantID)
		}
		t.CreatedAt, t.UpdatedAt, t.Version, t.ActivatedAt = now, now, 1, time.Time{}
		if t.Status == TerminalActive {
			t.ActivatedAt = now
		}
		t.Note = c.Reason
		return &t, nil
	}

	switch c.Op {
	case OpMerchantRegister:
		if c.Merchant == nil {
			return nil, invalidf("%s: no merchant given", c.Op)
		}
		m, err := newMerchant(*c.Merchant, nil)
		if err != nil {
			return nil, err
		}
		return []effect{{mAfter: m}}, nil
	case OpMerchantImport:
		return importEffects(c.Op, "merchants", c.Merchants, func(m Merchant, seen map[string]bool) (effect, string, error) {
			n, err := newMerchant(m, seen)
			if err != nil {
				return effect{}, "", err
			}
			return effect{mAfter: n}, n.ID, nil
		})
	case OpMerchantChange:
		m := curM(c.Target)
		if m == nil {
			return nil, notFoundf("merchant %s does not exist", c.Target)
		}
		if m.Status == MerchantClosed {
			return nil, conflictf("merchant %s is closed", m.ID)
		}
		p := c.MerchantPatch
		if p == nil {
			return nil, invalidf("%s %s: no fields to change", c.Op, c.Target)
		}
		n := *m
		set := func(dst *string, v *string) {
			if v != nil {
				*dst = *v
			}
		}
		set(&n.Name, p.Name)
		set(&n.NameLatin, p.NameLatin)
		set(&n.NameLanguage, p.NameLanguage)
		set(&n.MCC, p.MCC)
		set(&n.Region, p.Region)
		set(&n.Group, p.Group)
		set(&n.Currency, p.Currency)
		set(&n.Tier, p.Tier)
		set(&n.Rating, p.Rating)
		if p.Limits != nil {
			n.Limits = *p.Limits
		}
		n.NameLanguage = normalizeLanguage(n.NameLanguage)
		if err := n.Validate(); err != nil {
			return nil, err
		}
		n.UpdatedAt, n.Version = now, m.Version+1
		return []effect{{mBefore: m, mAfter: &n}}, nil
	case OpMerchantActivate:
		return merchantTransition([]MerchantStatus{MerchantPending}, MerchantActive)
	case OpMerchantFreeze:
		return merchantTransition([]MerchantStatus{MerchantActive, MerchantPending}, MerchantFrozen)
	case OpMerchantUnfreeze:
		return merchantTransition([]MerchantStatus{MerchantFrozen}, MerchantActive)
	case OpMerchantClose:
		return merchantTransition([]MerchantStatus{MerchantPending, MerchantActive, MerchantFrozen}, MerchantClosed)
	case OpTerminalRegister:
		if c.Terminal == nil {
			return nil, invalidf("%s: no terminal given", c.Op)
		}
		t, err := newTerminal(*c.Terminal, nil)
		if err != nil {
			return nil, err
		}
		return []effect{{tAfter: t}}, nil
	case OpTerminalImport:
		var held [nClaims]map[string]string // claim kind -> value -> the terminal of the import holding it
		return importEffects(c.Op, "terminals", c.Terminals, func(t Terminal, seen map[string]bool) (effect, string, error) {
			n, err := newTerminal(t, seen)
			if err != nil {
				return effect{}, "", err
			}
			claims := ownClaims(n)
			for k, v := range claims {
				if other, dup := held[k][v]; v != "" && dup {
					return effect{}, "", conflictf("terminal %s: %s is terminal %s's in this import too: %s", n.ID, claimText(claimKind(k), v), other, claimInfo[k].why)
				}
			}
			for k, v := range claims {
				if v != "" {
					if held[k] == nil {
						held[k] = map[string]string{}
					}
					held[k][v] = n.ID
				}
			}
			return effect{tAfter: n}, n.ID, nil
		})
	case OpTerminalChange:
		t := curT(c.Target)
		if t == nil {
			return nil, notFoundf("terminal %s does not exist", c.Target)
		}
		if t.Status == TerminalClosed {
			return nil, conflictf("terminal %s is closed", t.ID)
		}
		p := c.TerminalPatch
		if p == nil {
			return nil, invalidf("%s %s: no fields to change", c.Op, c.Target)
		}
		n := *t
		if p.MerchantID != nil && *p.MerchantID != t.MerchantID {
			m := curM(*p.MerchantID)
			if m == nil {
				return nil, notFoundf("terminal %s: merchant %s does not exist", t.ID, *p.MerchantID)
			}
			if m.Status == MerchantClosed {
				return nil, conflictf("terminal %s: merchant %s is closed", t.ID, m.ID)
			}
			n.MerchantID = m.ID
		}
		if p.Kind != nil {
			n.Kind = *p.Kind
		}
		if p.Model != nil {
			n.Model = *p.Model
		}
		if p.DeviceSerial != nil {
			n.Binding.DeviceSerial = *p.DeviceSerial
		}
		if p.ICCID != nil {
			n.Binding.ICCID = *p.ICCID
		}
		if p.IMEI != nil {
			n.Binding.IMEI = *p.IMEI
		}
		if p.ClearLocation {
			n.Location = nil
		}
		if p.Location != nil {
			l := *p.Location
			n.Location = &l
		}
		if p.AllowedNetworks != nil {
			n.AllowedNetworks = append([]netip.Prefix(nil), (*p.AllowedNetworks)...)
		}
		if p.MinAppVersion != nil {
			n.MinAppVersion = *p.MinAppVersion
		}
		if p.MissingPolicy != nil {
			n.MissingPolicy = *p.MissingPolicy
		}
		if p.Keys != nil {
			n.Keys = *p.Keys
		}
		if p.AttestMaxAge != nil {
			n.AttestMaxAge = *p.AttestMaxAge
		}
		if p.AttestLegacy != nil {
			n.AttestLegacy = *p.AttestLegacy
		}
		normalizeTerminal(&n)
		if err := n.Validate(); err != nil {
			return nil, err
		}
		// Each claim (DUKPT device, device serial, SIM, IMEI) is checked when it
		// changes: a record stored before 6 December 2026 sharing one with another
		// is not refused its other changes (the start-up log lists such records).
		claims, was := ownClaims(&n), ownClaims(t)
		if err := r.claimedElsewhere(n.ID, &claims, &was); err != nil {
			return nil, err
		}
		n.UpdatedAt, n.Version = now, t.Version+1
		return []effect{{tBefore: t, tAfter: &n}}, nil
	case OpTerminalActivate:
		return terminalTransition([]TerminalStatus{TerminalPending}, TerminalActive)
	case OpTerminalSuspend:
		return terminalTransition([]TerminalStatus{TerminalActive, TerminalPending}, TerminalSuspended)
	case OpTerminalResume:
		return terminalTransition([]TerminalStatus{TerminalSuspended}, TerminalActive)
	case OpTerminalClose:
		return terminalTransition([]TerminalStatus{TerminalPending, TerminalActive, TerminalSuspended}, TerminalClosed)
	case OpAlertRulePut:
		if c.AlertRule == nil {
			return nil, invalidf("%s: no alert rule given", c.Op)
		}
		ar := *c.AlertRule
		if err := r.alerts.checkRule(&ar); err != nil {
			return nil, err
		}
		ar.UpdatedBy, ar.UpdatedAt = c.RequestedBy, now
		return []effect{{rAfter: &ar}}, nil
	}
	if effs, ok, err := r.computeExt(c); ok {
		return effs, err
	}
	return nil, invalidf("unknown operation %q", c.Op)
}

// isUnknownOp reports whether err is compute's answer to an operation it does not know.
func isUnknownOp(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "unknown operation")
}

// normalizeLanguage is a merchant's name language as the registry stores it: ISO
// 639-1 in lower case, as the standard writes it ("ZH" is stored "zh"); a QR code's
// language template (ID 64) upper-cases it when it is made.
func normalizeLanguage(code string) string {
	return strings.ToLower(strings.TrimSpace(code))
}

// normalizeTerminal fills defaults: the decline policy, a MAC requirement for
// SoftPOS, and the conventional key references "<terminal ID>.TAK" and
// "<terminal ID>.TPK" when a MAC or TPK PIN mode needs one and none is given;
// writes a DUKPT device in its stored form (normalizeDUKPTDevice); and trims the
// binding's serial, SIM and IMEI, which a transaction's DI, SI and IM must equal
// exactly (an API's " SN-1" was stored with its space and never matched).
func normalizeTerminal(t *Terminal) {
	t.Binding.DeviceSerial = normalizeClaim(t.Binding.DeviceSerial)
	t.Binding.ICCID = normalizeClaim(t.Binding.ICCID)
	t.Binding.IMEI = normalizeClaim(t.Binding.IMEI)
	if t.MissingPolicy == "" {
		t.MissingPolicy = PolicyDecline
	}
	if t.Kind == KindSoftPOS {
		t.Keys.MACRequired = true
	}
	if t.Keys.MACRequired && t.Keys.TAK == "" && t.ID != "" {
		t.Keys.TAK = t.ID + ".TAK"
	}
	if t.Keys.PINMode == PINModeTPK && t.Keys.TPK == "" && t.ID != "" {
		t.Keys.TPK = t.ID + ".TPK"
	}
	t.Keys.DUKPTDevice = normalizeDUKPTDevice(t.Keys.DUKPTDevice)
	if len(t.AllowedNetworks) == 0 {
		t.AllowedNetworks = nil
	}
}

func (e effect) changeEffect(hookKey []byte) ChangeEffect {
	if e.xAfter != nil {
		return *e.xAfter
	}
	if e.rAfter != nil {
		// Shown in previews and written to the oplog: webhook URLs redacted.
		ce := ChangeEffect{Type: "alert-rule", ID: e.rAfter.ID, After: rawJSON(redactedRule(hookKey, e.rAfter))}
		if e.rBefore != nil {
			ce.Before = rawJSON(redactedRule(hookKey, e.rBefore))
		}
		return ce
	}
	if e.mAfter != nil {
		ce := ChangeEffect{Type: "merchant", ID: e.mAfter.ID, After: rawJSON(e.mAfter)}
		if e.mBefore != nil {
			ce.Before = rawJSON(e.mBefore)
		}
		return ce
	}
	ce := ChangeEffect{Type: "terminal", ID: e.tAfter.ID, After: rawJSON(e.tAfter)}
	if e.tBefore != nil {
		ce.Before = rawJSON(e.tBefore)
	}
	return ce
}

// importEffects are the effects of an import (op) of recs, what they are in errors
// ("terminals"): mk makes each record's effect and ID, refusing one whose ID is in
// seen (an earlier row of the import) or already exists. Every record's refusal is
// reported together, and then nothing is created.
func importEffects[T any](op Op, what string, recs []T, mk func(T, map[string]bool) (effect, string, error)) ([]effect, error) {
	if len(recs) == 0 {
		return nil, invalidf("%s: no %s given", op, what)
	}
	seen := map[string]bool{}
	var out []effect
	var errs []string
	for _, rec := range recs {
		e, id, err := mk(rec, seen)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		seen[id] = true
		out = append(out, e)
	}
	if len(errs) > 0 {
		return nil, conflictf("%s: %d of %d %s cannot be created: %s", op, len(errs), len(recs), what, strings.Join(errs, "; "))
	}
	return out, nil
}
