package registry

import (
	"errors"
	"fmt"
)

// Demo limits and ratings by tier (amounts in fen, CNY minor units). The fleet
// spec fixes only the tiers; these values are this project's choice:
//
//	micro       per transaction 1,000.00  daily 10,000.00   monthly 100,000.00    rating medium
//	standard    per transaction 50,000.00 daily 500,000.00  monthly 5,000,000.00  rating low
//	enterprise  no limits                                                           rating low
var (
	DemoLimitsMicro    = Limits{PerTransaction: 100_000, Daily: 1_000_000, Monthly: 10_000_000}
	DemoLimitsStandard = Limits{PerTransaction: 5_000_000, Daily: 50_000_000, Monthly: 500_000_000}
)

// DemoLoadTerminals is how many LT terminals the demo fleet has by default
// (LT000001 ...): as many as `switchyard bench` drives. A demo configuration may ask for
// fewer or more (config demo_load_terminals, LoadDemoFleet).
const DemoLoadTerminals = 2000

// MaxDemoLoadTerminals is the most load terminals a demo fleet may have: their IDs
// have six digits.
const MaxDemoLoadTerminals = 999_999

// DemoBDKRef is the key reference of the demo DUKPT BDK (KSNs FFFF9876543210Exxxxx).
const DemoBDKRef = "BDK.FFFF9876543210E"

// DemoDUKPTDevice is T0000002's DUKPT device, its KSNs without the counter
// (FFFF9876543210Exxxxx, and FFFF9876543210Fxxxxx once the counter passes 0x100000).
const DemoDUKPTDevice = "FFFF9876543210E"

// DemoMerchants returns the merchants of the demo fleet (docs/demo-fleet.md).
func DemoMerchants() []Merchant {
	return []Merchant{
		{ID: "000000000000001", Name: "Demo Grocery", MCC: "5411", Region: "CN-BJ", Tier: TierStandard, Rating: RatingLow, Limits: DemoLimitsStandard, Status: MerchantActive},
		{ID: "000000000000002", Name: "Demo Noodle Stall", MCC: "5814", Region: "CN-SH", Tier: TierMicro, Rating: RatingMedium, Limits: DemoLimitsMicro, Status: MerchantActive},
		{ID: "000000000000003", Name: "Demo Load Merchant", MCC: "5311", Region: "CN-BJ", Tier: TierEnterprise, Rating: RatingLow, Status: MerchantActive},
		{ID: "000000000000009", Name: "Demo Closed Shop", MCC: "5999", Region: "CN-BJ", Tier: TierMicro, Rating: RatingMedium, Limits: DemoLimitsMicro, Status: MerchantFrozen, Note: "demo: frozen merchant"},
	}
}

// DemoTerminals returns the terminals of the demo fleet: T0000001 (pos, decline
// policy), T0000002 (softpos, MAC and DUKPT, flag policy: phones may withhold
// location), T0000003 (suspended), T0000009 (of the frozen merchant) and the
// unbound load terminals LT000001 to LT002000, whose PINs are under T0000001's TPK
// (and whose shared TMK LT.TMK lets them sign in over the cup dialect).
func DemoTerminals() []Terminal { return DemoFleetTerminals(DemoLoadTerminals) }

// DemoFleetTerminals is DemoTerminals with loadTerminals load terminals (LT000001 to
// LT followed by loadTerminals in six digits; none for 0).
func DemoFleetTerminals(loadTerminals int) []Terminal {
	beijing := func() *Deployment { return &Deployment{Lat: 39.904200, Lon: 116.407400, RadiusM: 1000} }
	posKeys := func(id string) KeyRefs {
		return KeyRefs{TMK: id + ".TMK", TPK: id + ".TPK", PINMode: PINModeTPK}
	}
	ts := []Terminal{
		{ID: "T0000001", MerchantID: "000000000000001", Kind: KindPOS, Status: TerminalActive, MissingPolicy: PolicyDecline,
			Binding:  Binding{DeviceSerial: "SN-T0000001", ICCID: "89860000000000000001", IMEI: "860000000000001"},
			Location: beijing(), Keys: posKeys("T0000001")},
		{ID: "T0000002", MerchantID: "000000000000002", Kind: KindSoftPOS, Status: TerminalActive, MissingPolicy: PolicyFlag,
			Binding:  Binding{DeviceSerial: "SP-T0000002", IMEI: "860000000000002"},
			Location: &Deployment{Lat: 31.230400, Lon: 121.473700, RadiusM: 5000},
			Keys:     KeyRefs{TAK: "T0000002.TAK", BDK: DemoBDKRef, DUKPTDevice: DemoDUKPTDevice, PINMode: PINModeDUKPT, MACRequired: true}},
		{ID: "T0000003", MerchantID: "000000000000001", Kind: KindPOS, Status: TerminalSuspended, MissingPolicy: PolicyDecline,
			Note:     "demo: suspended terminal",
			Binding:  Binding{DeviceSerial: "SN-T0000003", ICCID: "89860000000000000003", IMEI: "860000000000003"},
			Location: beijing(), Keys: posKeys("T0000003")},
		{ID: "T0000009", MerchantID: "000000000000009", Kind: KindPOS, Status: TerminalActive, MissingPolicy: PolicyDecline,
			Binding:  Binding{DeviceSerial: "SN-T0000009", ICCID: "89860000000000000009", IMEI: "860000000000009"},
			Location: beijing(), Keys: posKeys("T0000009")},
	}
	for i := 1; i <= loadTerminals; i++ {
		ts = append(ts, Terminal{ID: fmt.Sprintf("LT%06d", i), MerchantID: "000000000000003", Kind: KindPOS, Status: TerminalActive,
			MissingPolicy: PolicyDecline, Keys: KeyRefs{TMK: "LT.TMK", TPK: "LT.TPK", PINMode: PINModeTPK}})
	}
	return ts
}

// DemoAlertRule is the offline rule the demo loads: 24 h, log only, for the demo
// merchants' terminals other than the 2,000 load-test terminals.
func DemoAlertRule() AlertRule {
	return AlertRule{
		ID:          "offline-24h",
		Description: "demo: terminal silent for 24 hours",
		Threshold:   Duration(DefaultOfflineThreshold),
		Filter:      AlertFilter{Merchants: []string{"000000000000001", "000000000000002", "000000000000009"}},
		Actions:     []AlertAction{{Type: ActionLog}},
	}
}

// LoadDemo loads the demo fleet into reg without review (actor "demo" in the oplog).
// It is idempotent: records that already exist are left exactly as they are (so a
// demo terminal suspended at run time stays suspended across restarts); only
// missing ones are created. It returns how many records it created.
//
// In a cluster every node may run it at start, at the same moment: being
// idempotent, it is run again (up to 10 times) for as long as it meets another
// node's commit, where another write would report the conflict.
func LoadDemo(reg *Registry) (int, error) { return LoadDemoFleet(reg, DemoLoadTerminals) }

// LoadDemoFleet is LoadDemo with loadTerminals load terminals (0 to
// MaxDemoLoadTerminals) instead of DemoLoadTerminals. Load terminals already in the
// registry past that number are left as they are. The tests of the switch's packages
// load a few: the 2,000 of the full fleet made up most of the time of a test that
// starts a demo switch under the race detector (docs/performance.md Part 51).
func LoadDemoFleet(reg *Registry, loadTerminals int) (int, error) {
	if loadTerminals < 0 || loadTerminals > MaxDemoLoadTerminals {
		return 0, fmt.Errorf("demo fleet: %d load terminals: want 0 to %d", loadTerminals, MaxDemoLoadTerminals)
	}
	total := 0
	for i := 0; ; i++ {
		// loadDemo commits in chunks: what a try committed before its conflict
		// counts, whichever try it was (retry returns the last try's count only).
		_, err := retry(reg.store, func() (int, error) {
			n, err := loadDemo(reg, loadTerminals)
			total += n
			return n, err
		})
		if err == nil || reg.opts.Log == nil || !errors.Is(err, ErrConflict) || i == 9 {
			return total, err
		}
	}
}

func loadDemo(reg *Registry, loadTerminals int) (int, error) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	now := reg.now()
	var effs []effect
	for _, m := range DemoMerchants() {
		if _, ok := reg.Merchant(m.ID); ok {
			continue
		}
		m := m
		if err := m.Validate(); err != nil {
			return 0, fmt.Errorf("demo fleet: %w", err)
		}
		m.CreatedAt, m.UpdatedAt, m.Version = now, now, 1
		effs = append(effs, effect{mAfter: &m})
	}
	for _, t := range DemoFleetTerminals(loadTerminals) {
		if _, ok := reg.Terminal(t.ID); ok {
			continue
		}
		t := t
		normalizeTerminal(&t)
		if err := t.Validate(); err != nil {
			return 0, fmt.Errorf("demo fleet: %w", err)
		}
		t.CreatedAt, t.UpdatedAt, t.Version = now, now, 1
		if t.Status == TerminalActive || t.Status == TerminalSuspended {
			t.ActivatedAt = now
		}
		effs = append(effs, effect{tAfter: &t})
	}
	ruleNeeded := reg.rules[DemoAlertRule().ID] == nil
	created := 0
	for start := 0; start < len(effs) || (start == 0 && ruleNeeded); start += importChunk {
		chunk := effs[min(start, len(effs)):min(start+importChunk, len(effs))]
		b := reg.ops()
		for _, e := range chunk {
			ce := e.changeEffect(reg.hookKey)
			b.add(OpEntry{Time: now, Actor: "demo", Action: "demo.load", TargetType: ce.Type, Target: ce.ID, Reason: "demo fleet", After: ce.After})
		}
		var rule *AlertRule
		if ruleNeeded {
			ar := DemoAlertRule()
			if err := ar.Validate(); err != nil {
				return created, fmt.Errorf("demo fleet: %w", err)
			}
			ar.UpdatedBy, ar.UpdatedAt = "demo", now
			rule = &ar
			b.add(OpEntry{Time: now, Actor: "demo", Action: "alert-rule.put", TargetType: "alert-rule", Target: ar.ID, Reason: "demo fleet", After: rawJSON(redactedRule(reg.hookKey, rule))})
		}
		err := reg.commitLocked(func(txn *wtx) error {
			for _, e := range chunk {
				if e.mAfter != nil {
					if err := putJSON(txn, []byte(pfxMerchant+e.mAfter.ID), e.mAfter); err != nil {
						return err
					}
				} else if err := putJSON(txn, []byte(pfxTerminal+e.tAfter.ID), e.tAfter); err != nil {
					return err
				}
			}
			if rule != nil {
				if err := putJSON(txn, []byte(pfxRule+rule.ID), rule); err != nil {
					return err
				}
			}
			return b.write(txn)
		})
		if err != nil {
			return created, fmt.Errorf("demo fleet: store records %d to %d: %w", start+1, start+len(chunk), err)
		}
		b.done()
		if rule != nil {
			reg.rules[rule.ID] = rule
			ruleNeeded = false
		}
		var ts []*Terminal
		for _, e := range chunk {
			if e.mAfter != nil {
				reg.publishMerchant(e.mAfter)
			} else {
				ts = append(ts, e.tAfter)
			}
		}
		reg.publishTerminals(ts...)
		created += len(chunk)
	}
	return created, nil
}

// Demo admin tokens: public, for demo mode only (make run prints them).
const (
	DemoOperatorToken  = "demo-operator-7Kq2"
	DemoOperator2Token = "demo-operator2-Vb8n"
	DemoReviewerToken  = "demo-reviewer-3Xm9"
	DemoReviewer2Token = "demo-reviewer2-Lp4w"
	DemoAnalystToken   = "demo-analyst-8Rt5"
	DemoAdminToken     = "demo-admin-1Hz6"
)

// DemoToken is a demo admin API token and the actor it stands for.
type DemoToken struct {
	Token string
	Actor
}

// DemoTokens returns the demo admin API tokens: two operators and two reviewers
// (to show the two-person review), an analyst and an admin. The actor names are
// demo-operator, demo-operator2, demo-reviewer, demo-reviewer2, demo-analyst and
// demo-admin. switch/api turns them into the authenticator's tokens.
func DemoTokens() []DemoToken {
	tok := func(token, name, role string) DemoToken {
		return DemoToken{Token: token, Actor: Actor{Name: name, Role: role}}
	}
	return []DemoToken{
		tok(DemoOperatorToken, "demo-operator", RoleOperator),
		tok(DemoOperator2Token, "demo-operator2", RoleOperator),
		tok(DemoReviewerToken, "demo-reviewer", RoleReviewer),
		tok(DemoReviewer2Token, "demo-reviewer2", RoleReviewer),
		tok(DemoAnalystToken, "demo-analyst", "analyst"),
		tok(DemoAdminToken, "demo-admin", RoleAdmin),
	}
}
