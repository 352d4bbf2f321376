package regtool

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/internal/currency"
	"github.com/switchyard/switchyard/switch/registry"
)

// merchantRisk runs the merchant risk subcommands: rating, report, webhook and
// notices. It reports false for another subcommand.
func (t *tool) merchantRisk(sub string, f *flags, args []string) (bool, error) {
	switch sub {
	case "rating":
		pin := f.String("pin", "", "pin this grade (A to E), with --reason; analysts")
		unpin := f.Bool("unpin", false, "remove the pin, with --reason; analysts")
		days := f.Int("days", 0, "a pin lapses for review after this many days (default: the policy's)")
		reason := f.String("reason", "", "why (required to pin or unpin)")
		pos, err := f.parseN(args, 1, "a merchant ID")
		if err != nil {
			return true, err
		}
		path := "/api/v1/merchants/" + seg(pos[0]) + "/rating"
		switch {
		case *pin != "":
			if err := t.call("POST", path+"/pin", map[string]any{"grade": *pin, "reason": *reason, "days": *days}, nil); err != nil {
				return true, err
			}
		case *unpin:
			if err := t.call("DELETE", path+"/pin", map[string]any{"reason": *reason}, nil); err != nil {
				return true, err
			}
		}
		var v ratingView
		if err := t.call("GET", path, nil, &v); err != nil {
			return true, err
		}
		if *f.json {
			return true, t.printJSON(v)
		}
		t.printRating(&v)
		return true, nil
	case "report":
		days := f.Int("days", 1, "the last 1, 7 or 30 days")
		pos, err := f.parseN(args, 1, "a merchant ID")
		if err != nil {
			return true, err
		}
		var v reportView
		if err := t.call("GET", fmt.Sprintf("/api/v1/merchants/%s/report?days=%d", seg(pos[0]), *days), nil, &v); err != nil {
			return true, err
		}
		if *f.json {
			return true, t.printJSON(v)
		}
		t.printReport(&v)
		return true, nil
	case "webhook":
		u := f.String("url", "", "the merchant's webhook URL (empty: remove it)")
		secretFile := f.String("secret-file", "", "file holding the HMAC secret of the signatures (at least 16 bytes)")
		reason := f.String("reason", "", "why")
		pos, err := f.parseN(args, 1, "a merchant ID")
		if err != nil {
			return true, err
		}
		secret := ""
		if *secretFile != "" {
			b, err := os.ReadFile(*secretFile)
			if err != nil {
				return true, usagef("--secret-file: %v", err)
			}
			secret = strings.TrimSpace(string(b))
		}
		var c registry.Change
		if err := t.call("PUT", "/api/v1/merchants/"+seg(pos[0])+"/webhook", map[string]string{"url": *u, "secret": secret, "reason": *reason}, &c); err != nil {
			return true, err
		}
		return true, t.printChange(&c, *f.json)
	case "notices":
		limit := f.Int("limit", 20, "delivered notices to show")
		pos, err := f.parseN(args, 1, "a merchant ID")
		if err != nil {
			return true, err
		}
		var raw json.RawMessage
		if err := t.call("GET", fmt.Sprintf("/api/v1/merchants/%s/notices?limit=%d", seg(pos[0]), *limit), nil, &raw); err != nil {
			return true, err
		}
		if *f.json { // the answer as it always was printed: a JSON object, keys sorted
			var v map[string]any
			if err := json.Unmarshal(raw, &v); err != nil {
				return true, fmt.Errorf("merchant notices: decode answer: %w", err)
			}
			return true, t.printJSON(v)
		}
		var v noticesView
		if err := json.Unmarshal(raw, &v); err != nil {
			return true, fmt.Errorf("merchant notices: decode answer: %w", err)
		}
		t.printNotices(&v, *limit)
		return true, nil
	}
	return false, nil
}

type ratingView struct {
	Merchant string `json:"merchant"`
	Grade    string `json:"grade"`
	Since    time.Time
	Computed struct {
		Grade string  `json:"grade"`
		Score float64 `json:"score"`
		Terms []struct {
			Fact   string  `json:"fact"`
			Value  float64 `json:"value"`
			Weight float64 `json:"weight"`
			Points float64 `json:"points"`
		} `json:"terms"`
	} `json:"computed"`
	At  time.Time `json:"computed_at"`
	Pin *struct {
		Grade, Reason, By string
		Until             time.Time `json:"review_by"`
	} `json:"pin"`
	Limits     map[string]int64  `json:"limits"`
	Why        string            `json:"why"`
	Policy     string            `json:"policy"`
	Thresholds map[string]string `json:"thresholds"`
	// Currency is the currency of the limits: the merchant's, or the acquirer's;
	// "" from a switch before merchants had one (the acquirer's).
	Currency string `json:"currency"`
}

func (t *tool) printRating(v *ratingView) {
	fmt.Fprintf(t.out, "merchant %s: grade %s in force since %s (%s)\n", kit.ForTerminal(v.Merchant), kit.ForTerminal(v.Grade), t.when(v.Since), kit.ForTerminal(v.Why))
	fmt.Fprintf(t.out, "computed %s: score %.2f, grade %s (policy %s)\n", t.when(v.At), v.Computed.Score, v.Computed.Grade, v.Policy)
	if v.Pin != nil {
		fmt.Fprintf(t.out, "pinned %s by %s until %s: %s\n", kit.ForTerminal(v.Pin.Grade), kit.ForTerminal(v.Pin.By), t.when(v.Pin.Until), kit.ForTerminal(v.Pin.Reason))
	}
	var rows [][]string
	for _, x := range v.Computed.Terms {
		rows = append(rows, []string{x.Fact, fmt.Sprintf("%g", x.Value), fmt.Sprintf("%g", x.Weight), fmt.Sprintf("%.2f", x.Points)})
	}
	t.table("FACT\tVALUE\tWEIGHT\tPOINTS", rows)
	var th []string
	for _, g := range []string{"A", "B", "C", "D", "E"} {
		th = append(th, g+": "+v.Thresholds[g])
	}
	fmt.Fprintf(t.out, "grades: %s\n", strings.Join(th, ", "))
	cur := v.Currency
	if cur == "" {
		cur = currency.Acquirer
	}
	var lim []string
	for _, k := range []string{"single", "daily", "monthly", "softpos"} {
		if n := v.Limits[k]; n > 0 {
			lim = append(lim, k+" "+currency.Format(n, cur)+" "+cur)
		}
	}
	if len(lim) == 0 {
		lim = []string{"none beyond the registry's and the tier's"}
	}
	fmt.Fprintf(t.out, "limits of grade %s: %s\n", v.Grade, strings.Join(lim, ", "))
}

type countView struct {
	Count           int              `json:"count"`
	Approved        int              `json:"approved"`
	ApprovedAmount  int64            `json:"approved_amount"`
	ApprovedAmounts map[string]int64 `json:"approved_amounts,omitempty"`
}

// amounts shows the approved amounts by currency, each in its decimals ("125.00
// 156, 1000 392"); from a switch that reports only the sum (before the third
// release of 6 December 2026), the sum with two decimals.
func (c countView) amounts() string {
	if c.ApprovedAmounts == nil {
		return currency.Format(c.ApprovedAmount, "")
	}
	return currency.FormatSums(c.ApprovedAmounts)
}

type reportView struct {
	Merchant     string               `json:"merchant"`
	Days         int                  `json:"days"`
	From         time.Time            `json:"from"`
	To           time.Time            `json:"to"`
	TimeZone     string               `json:"time_zone"`
	Transactions int                  `json:"transactions"`
	Approved     int                  `json:"approved"`
	ApprovalRate float64              `json:"approval_rate"`
	ByType       map[string]countView `json:"by_type"`
	Declines     map[string]int       `json:"declines_by_reason"`
	Hourly       [24]countView        `json:"hourly"`
	Rating       string               `json:"rating"`
}

func (t *tool) printReport(v *reportView) {
	fmt.Fprintf(t.out, "merchant %s, last %d day(s): %s to %s\n", kit.ForTerminal(v.Merchant), v.Days, t.when(v.From), t.when(v.To))
	fmt.Fprintf(t.out, "transactions %d, approved %d (%.1f%%), rating %s\n", v.Transactions, v.Approved, 100*v.ApprovalRate, v.Rating)
	var types []string
	for k := range v.ByType {
		types = append(types, k)
	}
	sort.Strings(types)
	var rows [][]string
	for _, k := range types {
		c := v.ByType[k]
		rows = append(rows, []string{k, fmt.Sprint(c.Count), fmt.Sprint(c.Approved), c.amounts()})
	}
	t.table("TYPE\tCOUNT\tAPPROVED\tAPPROVED AMOUNT", rows)
	rows = nil
	for h, c := range v.Hourly {
		if c.Count > 0 {
			rows = append(rows, []string{fmt.Sprintf("%02d:00", h), fmt.Sprint(c.Count), fmt.Sprint(c.Approved), c.amounts()})
		}
	}
	fmt.Fprintf(t.out, "hourly profile (%s):\n", v.TimeZone)
	t.table("HOUR\tCOUNT\tAPPROVED\tPURCHASES AMOUNT", rows)
	if len(v.Declines) > 0 {
		rows = nil
		for k, n := range v.Declines {
			rows = append(rows, []string{k, fmt.Sprint(n)})
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
		t.table("DECLINED (RC REASON)\tCOUNT", rows)
	}
}
