package regtool

import (
	"fmt"
	"io"
	"strings"

	"github.com/switchyard/switchyard/internal/currency"
	"github.com/switchyard/switchyard/risk/profile"

	"github.com/switchyard/switchyard/switch/registry"
)

func merchantFlags(f *flags) func() (registry.MerchantPatch, error) {
	name := f.String("name", "", "merchant name")
	latin := f.String("name-latin", "", "ASCII name (1 to 25 printable ASCII characters) for a name in another script: a QR code's merchant name (EMVCo ID 59); \"\" for none")
	lang := f.String("name-language", "", "the name's language, ISO 639-1 (zh, ja, ko, ru...; stored in lower case): a QR code's language template (ID 64); \"\" to derive it from the name's script")
	mcc := f.String("mcc", "", "merchant category code")
	region := f.String("region", "", "region")
	group := f.String("group", "", "merchant group (chain, parent company); \"\" for none")
	cur := f.String("currency", "", "the currency the merchant transacts in, ISO 4217 numeric (156 CNY, 840 USD, 392 JPY): transactions in another are declined 58, its limits are minor units of it; \"\" for any currency")
	tier := f.String("tier", "", "tier")
	rating := f.String("rating", "", "risk rating: low, medium or high")
	lTxn := f.Int64("limit-txn", 0, "per-transaction limit in minor units of the merchant's currency (0: none)")
	lDay := f.Int64("limit-daily", 0, "daily limit in minor units of the merchant's currency (0: none)")
	lMon := f.Int64("limit-monthly", 0, "monthly limit in minor units of the merchant's currency (0: none)")
	lCnt := f.Int64("limit-count", 0, "most approved purchases and pre-authorizations in 24 hours (0: none)")
	return func() (registry.MerchantPatch, error) {
		var p registry.MerchantPatch
		str := func(flagName string, v *string) *string {
			if f.set(flagName) {
				return v
			}
			return nil
		}
		p.Name, p.MCC, p.Region, p.Tier, p.Rating = str("name", name), str("mcc", mcc), str("region", region), str("tier", tier), str("rating", rating)
		p.Group = str("group", group)
		if p.Currency = str("currency", cur); p.Currency != nil && *p.Currency != "" {
			if err := currency.CheckPayable(*p.Currency); err != nil {
				return p, usagef("--currency: %v, or \"\" for any currency", err)
			}
		}
		p.NameLatin, p.NameLanguage = str("name-latin", latin), str("name-language", lang)
		if f.set("limit-txn") || f.set("limit-daily") || f.set("limit-monthly") || f.set("limit-count") {
			p.Limits = &registry.Limits{PerTransaction: *lTxn, Daily: *lDay, Monthly: *lMon, DailyCount: *lCnt}
		}
		return p, nil
	}
}

func (t *tool) merchant(args []string) error {
	if len(args) == 0 {
		return usagef("merchant: want list, show, profile, register, change, activate, freeze, unfreeze, close or import")
	}
	sub, args := args[0], args[1:]
	f := t.newFlags("merchant " + sub)
	switch sub {
	case "list":
		status := f.String("status", "", "only this status")
		region := f.String("region", "", "only this region")
		tier := f.String("tier", "", "only this tier")
		asCSV := f.Bool("csv", false, "write the merchants as the CSV that merchant import reads")
		excel := f.Bool("excel", false, "with --csv: begin with a UTF-8 byte order mark, so that Excel opens the file as UTF-8 (Chinese names readable) rather than in the code page of Windows (GBK)")
		if _, err := f.parseN(args, 0, "no arguments"); err != nil {
			return err
		}
		if *asCSV && *f.json {
			return usagef("merchant list: --csv or --json, not both")
		}
		if *excel && !*asCSV {
			return usagef("merchant list: --excel is for --csv")
		}
		var ms []registry.Merchant
		if err := t.call("GET", "/api/v1/merchants"+query("status", *status, "region", *region, "tier", *tier), nil, &ms); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(ms)
		}
		if *asCSV {
			ps := make([]*registry.Merchant, len(ms))
			for i := range ms {
				ps[i] = &ms[i]
			}
			if *excel {
				if _, err := io.WriteString(t.out, utf8BOM); err != nil {
					return err
				}
			}
			return registry.WriteMerchantsCSV(t.out, ps)
		}
		var rows [][]string
		for _, m := range ms {
			rows = append(rows, []string{m.ID, m.Name, m.MCC, m.Region, m.Tier, m.Rating, string(m.Status), orDash(m.Currency),
				m.LimitsCurrency() + " " + limitsText(m.Limits, m.LimitsCurrency())})
		}
		t.table("ID\tNAME\tMCC\tREGION\tTIER\tRATING\tSTATUS\tCURRENCY\tLIMITS (txn/day/month)", rows)
		return nil
	case "show":
		pos, err := f.parseN(args, 1, "a merchant ID")
		if err != nil {
			return err
		}
		var m registry.Merchant
		if err := t.call("GET", "/api/v1/merchants/"+seg(pos[0]), nil, &m); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(m)
		}
		t.printMerchant(&m)
		return nil
	case "profile":
		refresh := f.Bool("refresh", false, "recompute every merchant's profile from the journal first (operators)")
		pos, err := f.parseN(args, 1, "a merchant ID")
		if err != nil {
			return err
		}
		return t.merchantProfile(pos[0], *refresh, *f.json)
	case "register":
		patch := merchantFlags(f)
		pending := f.Bool("pending", false, "register as pending (activate later)")
		reason := f.String("reason", "", "why")
		pos, err := f.parseN(args, 1, "a merchant ID")
		if err != nil {
			return err
		}
		p, err := patch()
		if err != nil {
			return err
		}
		m := registry.Merchant{ID: pos[0], Rating: registry.RatingMedium, Status: registry.MerchantActive}
		for _, x := range []struct {
			dst *string
			v   *string
		}{{&m.Name, p.Name}, {&m.NameLatin, p.NameLatin}, {&m.NameLanguage, p.NameLanguage}, {&m.MCC, p.MCC}, {&m.Region, p.Region},
			{&m.Group, p.Group}, {&m.Currency, p.Currency}, {&m.Tier, p.Tier}, {&m.Rating, p.Rating}} {
			if x.v != nil {
				*x.dst = *x.v
			}
		}
		if p.Limits != nil {
			m.Limits = *p.Limits
		}
		if *pending {
			m.Status = registry.MerchantPending
		}
		var c registry.Change
		if err := t.call("POST", "/api/v1/merchants", registry.MerchantRequest{Merchant: m, Reason: *reason}, &c); err != nil {
			return err
		}
		return t.printChange(&c, *f.json)
	case "change":
		patch := merchantFlags(f)
		reason := f.String("reason", "", "why")
		pos, err := f.parseN(args, 1, "a merchant ID")
		if err != nil {
			return err
		}
		p, err := patch()
		if err != nil {
			return err
		}
		if p == (registry.MerchantPatch{}) {
			return usagef("merchant change: nothing to change (give --name, --name-latin, --name-language, --mcc, --region, --group, --currency, --tier, --rating or --limit-*)")
		}
		var c registry.Change
		if err := t.call("PATCH", "/api/v1/merchants/"+seg(pos[0]), registry.MerchantPatchRequest{MerchantPatch: p, Reason: *reason}, &c); err != nil {
			return err
		}
		return t.printChange(&c, *f.json)
	case "activate", "freeze", "unfreeze", "close":
		reason := f.String("reason", "", "why")
		pos, err := f.parseN(args, 1, "a merchant ID")
		if err != nil {
			return err
		}
		var c registry.Change
		if err := t.call("POST", "/api/v1/merchants/"+seg(pos[0])+"/"+sub, registry.ReasonRequest{Reason: *reason}, &c); err != nil {
			return err
		}
		return t.printChange(&c, *f.json)
	case "import":
		return t.importCSV(f, "merchant", args)
	}
	if handled, err := t.merchantRisk(sub, f, args); handled {
		return err
	}
	return usagef("merchant %s: unknown subcommand (want list, show, register, change, activate, freeze, unfreeze, close, import, rating, report, webhook or notices)", sub)
}

// limitsText is a merchant's amount limits for a table, per transaction, day and
// month, in the decimals of the currency cur (the column's header names it):
// "1000.00/10000.00/-", "none" without limits.
func limitsText(l registry.Limits, cur string) string {
	if l == (registry.Limits{}) {
		return "none"
	}
	amt := func(v int64) string {
		if v == 0 {
			return "-"
		}
		return currency.Format(v, cur)
	}
	return amt(l.PerTransaction) + "/" + amt(l.Daily) + "/" + amt(l.Monthly)
}

// merchantProfile shows what the rules see as merchant.profile for one merchant.
func (t *tool) merchantProfile(id string, refresh, asJSON bool) error {
	if refresh {
		if err := t.call("POST", "/api/v1/risk/profiles/refresh", nil, nil); err != nil {
			return err
		}
	}
	var v profile.View
	if err := t.call("GET", "/api/v1/merchants/"+seg(id)+"/profile", nil, &v); err != nil {
		return err
	}
	if asJSON {
		return t.printJSON(v)
	}
	p := v.Profile
	computed := "never (every merchant has its tier's defaults)"
	if !v.ComputedAt.IsZero() {
		computed = fmt.Sprintf("%s, window %s to %s", t.when(v.ComputedAt), t.when(v.From), t.when(v.To))
	}
	source := v.Source
	if v.ComputedAt.IsZero() {
		source = fmt.Sprintf("%s of tier %s (no profiles computed yet)", v.Source, v.Tier)
	} else if !p.Learned {
		source = fmt.Sprintf("%s of tier %s (learned from %d days and %d attempts; needs %d and %d)", v.Source, v.Tier, p.Days, p.Transactions, v.MinDays, v.MinTransactions)
	}
	pct := func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }
	hourly := make([]string, 24)
	for h, n := range p.Hourly {
		hourly[h] = fmt.Sprintf("%.1f", n)
	}
	rows := [][]string{
		{"merchant", v.Merchant}, {"tier", v.Tier}, {"source", source}, {"computed", computed},
		{"learned", fmt.Sprint(p.Learned)}, {"days", fmt.Sprint(p.Days)}, {"transactions", fmt.Sprint(p.Transactions)},
		{"p50_amount", fmt.Sprint(p.P50Amount)}, {"p90_amount", fmt.Sprint(p.P90Amount)}, {"p99_amount", fmt.Sprint(p.P99Amount)},
		{"daily_avg", fmt.Sprintf("%.1f", p.DailyAvg)}, {"hourly_avg", fmt.Sprintf("%.2f", p.HourlyAvg)},
		{"hourly (00..23)", strings.Join(hourly, " ")},
		{"new_card_share", pct(p.NewCardShare)}, {"inquiry_share", pct(p.InquiryShare)},
		{"decline_share", pct(p.DeclineShare)}, {"card_decline_share", pct(p.CardDeclineShare)},
		{"funds_decline_share", pct(p.FundsDeclineShare)}, {"risk_decline_share", pct(p.RiskDeclineShare)},
		{"other_decline_share", pct(p.OtherDeclineShare)}, {"refund_share", pct(p.RefundShare)}, {"void_share", pct(p.VoidShare)},
	}
	t.table("FIELD\tVALUE", rows)
	return nil
}

// utf8BOM is the UTF-8 byte order mark that list --csv --excel writes first: Excel
// reads a CSV file without it in the code page of Windows (GBK in mainland China),
// which garbles Chinese names; import takes it off again.
const utf8BOM = "\ufeff"
