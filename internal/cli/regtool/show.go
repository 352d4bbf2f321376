package regtool

import (
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/currency"
	"github.com/switchyard/switchyard/switch/registry"
)

// The show commands print one record for people, as labelled lines with times in
// the acquirer's zone; --json prints the API's record as it is, for scripts.

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// okNot says whether a check passed.
func okNot(b bool) string {
	if b {
		return "ok"
	}
	return "NOT OK"
}

// withReason is a status with why it was last set, when said.
func withReason(status, reason string) string {
	if reason == "" {
		return status
	}
	return status + " (" + reason + ")"
}

// limitsLong says a merchant's limits in words, each amount in the decimals of
// the currency cur and followed by its code ("1000.00 156 a transaction"):
// "none" when it has none.
func limitsLong(l registry.Limits, cur string) string {
	var parts []string
	if l.PerTransaction > 0 {
		parts = append(parts, currency.Format(l.PerTransaction, cur)+" "+cur+" a transaction")
	}
	if l.Daily > 0 {
		parts = append(parts, currency.Format(l.Daily, cur)+" "+cur+" a day")
	}
	if l.Monthly > 0 {
		parts = append(parts, currency.Format(l.Monthly, cur)+" "+cur+" a month")
	}
	if l.DailyCount > 0 {
		parts = append(parts, fmt.Sprintf("%d transactions a day", l.DailyCount))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// merchantCurrency is a merchant's currency as show prints it: "392 (JPY)", or
// "any" for a merchant that takes any.
func merchantCurrency(m *registry.Merchant) string {
	if m.Currency == "" {
		return "any"
	}
	if a := currency.Alpha(m.Currency); a != "" {
		return m.Currency + " (" + a + ")"
	}
	return m.Currency
}

func (t *tool) printMerchant(m *registry.Merchant) {
	t.fields([][2]string{
		{"Merchant", m.ID},
		{"Name", m.Name},
		{"ASCII name", m.NameLatin},
		{"Name language", m.NameLanguage},
		{"MCC", m.MCC},
		{"Region", m.Region},
		{"Group", m.Group},
		{"Currency", merchantCurrency(m)},
		{"Tier", m.Tier},
		{"Rating", m.Rating},
		{"Status", withReason(string(m.Status), m.Note)},
		{"Limits", limitsLong(m.Limits, m.LimitsCurrency())},
		{"Created", t.when(m.CreatedAt)},
		{"Updated", t.when(m.UpdatedAt)},
		{"Version", fmt.Sprint(m.Version)},
	})
}

// point shows a WGS84 point as GL carries it.
func point(lat, lon float64) string { return fmt.Sprintf("%.6f,%.6f", lat, lon) }

func (t *tool) printTerminal(v *registry.TerminalView) {
	tm := v.Terminal
	if tm == nil {
		tm = &registry.Terminal{}
	}
	var binding []string
	for _, b := range []struct{ name, v string }{{"device serial", tm.Binding.DeviceSerial}, {"SIM ICCID", tm.Binding.ICCID}, {"IMEI", tm.Binding.IMEI}} {
		if b.v != "" {
			binding = append(binding, b.name+" "+b.v)
		}
	}
	if len(binding) == 0 {
		binding = []string{"none"}
	}
	location := "none"
	if d := tm.Location; d != nil {
		location = fmt.Sprintf("%s within %g m", point(d.Lat, d.Lon), d.RadiusM)
	}
	networks := "any"
	if len(tm.AllowedNetworks) > 0 {
		var ns []string
		for _, p := range tm.AllowedNetworks {
			ns = append(ns, p.String())
		}
		networks = strings.Join(ns, ", ")
	}
	var keyRefs []string
	for _, k := range []struct{ name, ref string }{{"TMK", tm.Keys.TMK}, {"TPK", tm.Keys.TPK}, {"TAK", tm.Keys.TAK}, {"BDK", tm.Keys.BDK}} {
		if k.ref != "" {
			keyRefs = append(keyRefs, k.name+" "+k.ref)
		}
	}
	if len(keyRefs) == 0 {
		keyRefs = []string{"none"}
	}
	seen := "never"
	if ls := v.LastSeen; ls != nil {
		seen = t.when(ls.Time)
		if ls.Address.IsValid() {
			seen += " from " + ls.Address.String()
		}
		if ls.Location != nil {
			seen += " at " + point(ls.Location.Lat, ls.Location.Lon)
		}
	}
	rows := [][2]string{
		{"Terminal", tm.ID},
		{"Merchant", tm.MerchantID},
		{"Kind", string(tm.Kind)},
		{"Model", tm.Model},
		{"Status", withReason(string(tm.Status), tm.Note)},
		{"Binding", strings.Join(binding, ", ")},
		{"Location", location},
		{"Networks", networks},
		{"Min app version", orDash(tm.MinAppVersion)},
		{"Missing policy", string(tm.MissingPolicy)},
		{"PIN mode", string(tm.Keys.PINMode)},
		{"Keys", strings.Join(keyRefs, ", ")},
		{"MAC required", yesNo(tm.MACRequired())},
	}
	if tm.Keys.PINMode == registry.PINModeDUKPT {
		dev := tm.Keys.DUKPTDevice
		if dev == "" {
			dev = "not bound (any KSN under the BDK's KSN prefix)"
		}
		rows = append(rows, [2]string{"DUKPT device", dev})
	}
	if tm.Kind == registry.KindSoftPOS || tm.AttestMaxAge != 0 || tm.AttestLegacy {
		att := "max age: the switch's default"
		if tm.AttestMaxAge != 0 {
			att = "max age " + time.Duration(tm.AttestMaxAge).String()
		}
		if tm.AttestLegacy {
			att += "; the unsigned AT tag accepted"
		}
		rows = append(rows, [2]string{"Attestation", att})
	}
	rows = append(rows,
		[2]string{"Last seen", seen},
		[2]string{"Created", t.when(tm.CreatedAt)},
		[2]string{"Activated", t.when(tm.ActivatedAt)},
		[2]string{"Updated", t.when(tm.UpdatedAt)},
		[2]string{"Version", fmt.Sprint(tm.Version)},
	)
	t.fields(rows)
}

// handled says who did what to an incident or alert, when and with what note.
func (t *tool) handled(by string, at *time.Time, note string) string {
	s := "by " + orDash(by)
	if at != nil {
		s += " at " + t.when(*at)
	}
	if note != "" {
		s += ": " + note
	}
	return s
}

func (t *tool) printIncident(i *registry.Incident) {
	rows := [][2]string{
		{"Incident", i.ID},
		{"Time", t.when(i.Time)},
		{"Reason", string(i.Reason)},
		{"Response code", i.ResponseCode},
		{"Terminal", i.TerminalID},
		{"Merchant", i.MerchantID},
		{"Status", string(i.Status)},
	}
	if i.AckBy != "" || i.AckAt != nil {
		rows = append(rows, [2]string{"Acknowledged", t.handled(i.AckBy, i.AckAt, i.AckNote)})
	}
	if i.ResolvedBy != "" || i.ResolvedAt != nil {
		rows = append(rows, [2]string{"Resolved", t.handled(i.ResolvedBy, i.ResolvedAt, i.ResolveNote)})
	}
	if i.Action != "" {
		rows = append(rows, [2]string{"Action", i.Action})
	}
	if i.Case != "" {
		rows = append(rows, [2]string{"Case", i.Case})
	}
	if i.Node != 0 {
		rows = append(rows, [2]string{"Node", fmt.Sprint(i.Node)})
	}
	// What the terminal sent.
	d := i.Device
	sentLoc := "-"
	if d.Location != nil {
		sentLoc = point(d.Location.Lat, d.Location.Lon)
	}
	rows = append(rows,
		[2]string{"Sent DE 42", d.MerchantID},
		[2]string{"Sent from", d.SourceIP},
		[2]string{"Sent DI/SI/IM", orDash(d.DeviceID) + " / " + orDash(d.SIM) + " / " + orDash(d.IMEI)},
		[2]string{"Sent GL", sentLoc},
		[2]string{"Sent cell", d.Cell},
		[2]string{"Sent app version", d.AppVersion},
		[2]string{"Sent findings", strings.Join(d.Findings, ",")},
	)
	if d.AttestationPresent || (i.Terminal != nil && i.Terminal.Kind == registry.KindSoftPOS) {
		att := "absent"
		if d.AttestationPresent {
			att = "present, " + okNot(d.AttestationOK)
			if d.AttestationTime != nil {
				att += ", made " + t.when(*d.AttestationTime)
			}
		}
		rows = append(rows, [2]string{"Attestation", att})
	}
	rows = append(rows, [2]string{"MAC verified", yesNo(d.MACVerified)})
	// What the checks found.
	f := i.Facts
	loc := "unknown (no GL)"
	if f.LocationKnown {
		loc = okNot(f.LocationOK)
		if f.DistanceM > 0 {
			loc += fmt.Sprintf(", %.0f m from the deployed place", f.DistanceM)
		}
	}
	rows = append(rows,
		[2]string{"Identity", fmt.Sprintf("device %s, SIM %s, IMEI %s; matched %s", okNot(f.DeviceOK), okNot(f.SIMOK), okNot(f.IMEIOK), orDash(f.IdentityMatched))},
		[2]string{"Missing", f.Missing},
		[2]string{"Location", loc},
		[2]string{"Network", okNot(f.NetworkOK)},
		[2]string{"App version", okNot(f.AppVersionOK)},
	)
	if f.Flagged {
		rows = append(rows, [2]string{"Flagged", orDash(f.FlagReason)})
	}
	t.fields(rows)
}

func (t *tool) printAlert(a *registry.Alert) {
	seen := "never"
	if a.LastSeen != nil {
		seen = t.when(a.LastSeen.Time)
		if a.LastSeen.Address.IsValid() {
			seen += " from " + a.LastSeen.Address.String()
		}
	}
	actions := "not run yet"
	if a.Acted || len(a.Actions) > 0 {
		var acts []string
		for _, r := range a.Actions {
			s := r.Type + " " + map[bool]string{true: "ok", false: "FAILED"}[r.OK]
			if r.Detail != "" {
				s += ": " + r.Detail
			}
			acts = append(acts, s)
		}
		actions = orDash(strings.Join(acts, "; "))
	}
	rows := [][2]string{
		{"Alert", a.ID},
		{"Time", t.when(a.Time)},
		{"Rule", fmt.Sprintf("%s (after %s of silence)", a.RuleID, time.Duration(a.Threshold))},
		{"Terminal", a.TerminalID + " (" + string(a.Kind) + ")"},
		{"Merchant", a.MerchantID},
		{"Region", a.Region},
		{"Last seen", seen},
		{"Offline for", fmt.Sprintf("%s (since %s)", time.Duration(a.OfflineFor).Round(time.Second), t.when(a.Reference))},
		{"Actions", actions},
		{"Status", string(a.Status)},
	}
	if a.AckBy != "" || a.AckAt != nil {
		rows = append(rows, [2]string{"Acknowledged", t.handled(a.AckBy, a.AckAt, a.AckNote)})
	}
	if a.RecoveredAt != nil {
		rows = append(rows, [2]string{"Recovered", t.when(*a.RecoveredAt)})
	}
	if len(a.Recovery) > 0 {
		var posts []string
		for _, r := range a.Recovery {
			posts = append(posts, map[bool]string{true: "ok", false: "FAILED"}[r.OK]+": "+r.Detail)
		}
		rows = append(rows, [2]string{"Recovery webhooks", strings.Join(posts, "; ")})
	}
	if a.Node != 0 {
		rows = append(rows, [2]string{"Node", fmt.Sprint(a.Node)})
	}
	t.fields(rows)
}

// noticesView is the answer of GET /api/v1/merchants/{id}/notices (notify.Log), as
// merchant notices prints it for people.
type noticesView struct {
	Merchant  string     `json:"merchant"`
	Webhook   string     `json:"webhook"`
	Pending   []delivery `json:"pending"`
	Delivered []delivery `json:"delivered"`
	Dropped   int64      `json:"dropped_since_start"`
	// PreviousSecretUntil: the notices are also signed with the replaced
	// secret until then (a rotation's overlap).
	PreviousSecretUntil *time.Time `json:"previous_secret_until"`
}

type delivery struct {
	Notice struct {
		Seq         uint64    `json:"seq"`
		Terminal    string    `json:"terminal"`
		Event       string    `json:"event"`
		RRN         string    `json:"rrn"`
		OriginalRRN string    `json:"original_rrn"`
		Amount      int64     `json:"amount"`
		Currency    string    `json:"currency"`
		PAN         string    `json:"pan"` // masked by the switch
		AuthCode    string    `json:"auth_code"`
		Time        time.Time `json:"time"`
	} `json:"notice"`
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"last_error"`
	LastAttempt *time.Time `json:"last_attempt"`
	DeliveredAt *time.Time `json:"delivered_at"`
}

func (t *tool) printNotices(v *noticesView, limit int) {
	if limit <= 0 {
		limit = 100 // the switch's default
	}
	webhook := "none (no notices are made before one is approved: switchyard merchant webhook)"
	if v.Webhook != "" {
		webhook = v.Webhook
	}
	rows := [][2]string{
		{"Merchant", v.Merchant},
		{"Webhook", webhook},
		{"Pending", fmt.Sprint(len(v.Pending))},
		{"Delivered", fmt.Sprintf("%d shown (the newest %d at most: --limit N for more)", len(v.Delivered), limit)},
	}
	if v.PreviousSecretUntil != nil {
		rows = append(rows, [2]string{"Previous secret", "also signs the notices (X-Switchyard-Signature-Previous) until " + t.when(*v.PreviousSecretUntil)})
	}
	if v.Dropped > 0 {
		rows = append(rows, [2]string{"Dropped", fmt.Sprintf("%d since the switch started, all merchants (queue full: left to the recovery at the next start)", v.Dropped)})
	}
	t.fields(rows)
	notice := func(d delivery) []string {
		n := d.Notice
		rrn := n.RRN
		if n.OriginalRRN != "" {
			rrn += " (of " + n.OriginalRRN + ")"
		}
		return []string{fmt.Sprint(n.Seq), t.when(n.Time), n.Event, n.Terminal, rrn, currency.Format(n.Amount, n.Currency), orDash(n.Currency), orDash(n.PAN), orDash(n.AuthCode)}
	}
	if len(v.Pending) > 0 {
		var rs [][]string
		for _, d := range v.Pending {
			last := "-"
			if d.LastAttempt != nil {
				last = t.when(*d.LastAttempt)
			}
			rs = append(rs, append(notice(d), fmt.Sprint(d.Attempts), last, orDash(d.LastError)))
		}
		fmt.Fprintln(t.out, "\nPending (sent in this order; attempts and errors are the first's):")
		t.table("SEQ\tTIME\tEVENT\tTERMINAL\tRRN\tAMOUNT\tCUR\tPAN\tAUTH\tATTEMPTS\tLAST ATTEMPT\tLAST ERROR", rs)
	}
	if len(v.Delivered) > 0 {
		var rs [][]string
		for _, d := range v.Delivered {
			at := "-"
			if d.DeliveredAt != nil {
				at = t.when(*d.DeliveredAt)
			}
			rs = append(rs, append(notice(d), fmt.Sprint(d.Attempts), at))
		}
		fmt.Fprintln(t.out, "\nDelivered (newest first):")
		t.table("SEQ\tTIME\tEVENT\tTERMINAL\tRRN\tAMOUNT\tCUR\tPAN\tAUTH\tATTEMPTS\tDELIVERED", rs)
	}
}
