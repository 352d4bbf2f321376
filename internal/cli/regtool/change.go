package regtool

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/switchyard/switchyard/internal/actorname"
	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/internal/currency"
	"github.com/switchyard/switchyard/switch/registry"
)

func (t *tool) change(args []string) error {
	if len(args) == 0 {
		return usagef("change: want list, show, approve, reject or cancel")
	}
	sub, args := args[0], args[1:]
	f := t.newFlags("change " + sub)
	switch sub {
	case "list":
		status := f.String("status", "pending", "pending, expired (pending past registry.change_ttl: reject or cancel), approved, rejected, cancelled or all")
		target := f.String("target", "", "only changes of this merchant or terminal")
		if _, err := f.parseN(args, 0, "no arguments"); err != nil {
			return err
		}
		var cs []registry.Change
		if err := t.call("GET", "/api/v1/changes"+query("status", statusFilter(*status), "target", *target), nil, &cs); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(cs)
		}
		var rows [][]string
		for _, c := range cs {
			reviewed := "-"
			if c.ReviewedBy != "" {
				reviewed = c.ReviewedBy
			}
			rows = append(rows, []string{c.ID, string(c.Op), orDash(c.Target), string(c.Status), c.RequestedBy, t.when(c.RequestedAt), reviewed, orDash(c.Reason)})
		}
		t.table("ID\tOPERATION\tTARGET\tSTATUS\tREQUESTED BY\tREQUESTED AT\tREVIEWED BY\tREASON", rows)
		return nil
	case "show":
		pos, err := f.parseN(args, 1, "a change ID")
		if err != nil {
			return err
		}
		var pv registry.ChangePreview
		if err := t.call("GET", "/api/v1/changes/"+seg(pos[0]), nil, &pv); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(pv)
		}
		// The reasons, notes and entries (a merchant's name and address from an
		// onboarding file) are what others wrote: each is shown as
		// kit.ForTerminal makes it, so no escape sequence reaches the terminal.
		esc := kit.ForTerminal
		c := pv.Change
		fmt.Fprintf(t.out, "%s  %s %s  %s\nrequested by %s at %s", esc(c.ID), c.Op, esc(orDash(c.Target)), c.Status, esc(c.RequestedBy), t.when(c.RequestedAt))
		if c.Reason != "" {
			fmt.Fprintf(t.out, ": %s", esc(c.Reason))
		}
		fmt.Fprintln(t.out)
		if c.ReviewedBy != "" && c.ReviewedAt != nil {
			fmt.Fprintf(t.out, "%s by %s at %s %s\n", c.Status, esc(c.ReviewedBy), t.when(*c.ReviewedAt), esc(c.ReviewNote))
		}
		if pv.Error != "" {
			fmt.Fprintf(t.out, "cannot be approved now: %s\n", esc(pv.Error))
		}
		for _, w := range pv.Warnings {
			fmt.Fprintf(t.out, "look again: %s\n", esc(w))
		}
		for _, e := range pv.Effects {
			fmt.Fprintf(t.out, "%s %s:\n", esc(e.Type), esc(e.ID))
			for _, d := range Diff(e.Before, e.After) {
				fmt.Fprintf(t.out, "  %s\n", esc(d))
			}
		}
		return nil
	case "approve", "reject", "cancel":
		note := f.String("note", "", "review note")
		pos, err := f.parseN(args, 1, "a change ID")
		if err != nil {
			return err
		}
		var c registry.Change
		if err := t.call("POST", "/api/v1/changes/"+seg(pos[0])+"/"+sub, registry.ReasonRequest{Note: *note}, &c); err != nil {
			return err
		}
		return t.printChange(&c, *f.json)
	}
	return usagef("change %s: unknown subcommand (want list, show, approve, reject or cancel)", sub)
}

// Diff lists the top-level fields that differ between two JSON objects as
// "field: before -> after" lines (bookkeeping fields updated_at and version are
// left out). A nil before lists every field of after. A text that reads like the
// one before but is not (actorname.LookAlike) says by which characters.
func Diff(before, after json.RawMessage) []string {
	var b, a map[string]json.RawMessage
	_ = json.Unmarshal(before, &b)
	_ = json.Unmarshal(after, &a)
	keys := map[string]bool{}
	for k := range b {
		keys[k] = true
	}
	for k := range a {
		keys[k] = true
	}
	var names []string
	for k := range keys {
		if k != "updated_at" && k != "version" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	bcur, acur := limitsCurrency(b), limitsCurrency(a)
	var out []string
	for _, k := range names {
		bv, av := string(b[k]), string(a[k])
		if bv == av {
			continue
		}
		if before == nil {
			out = append(out, fmt.Sprintf("%s: %s", k, av)+limitsNote(k, nil, a[k], bcur, acur))
			continue
		}
		line := fmt.Sprintf("%s: %s -> %s", k, orDash(bv), orDash(av)) + limitsNote(k, b[k], a[k], bcur, acur)
		if k == "currency" && string(b["limits"]) == string(a["limits"]) {
			line += limitsReread(a["limits"], bcur, acur)
		}
		var bs, as string
		if json.Unmarshal(b[k], &bs) == nil && json.Unmarshal(a[k], &as) == nil {
			if la := actorname.LookAlike(bs, as); la != "" {
				// Two values that look the same (a merchant ID with 'I' for '1', a
				// name with a Cyrillic letter): say how they differ.
				line += " (reads like the value before, but is not: " + la + ")"
			}
		}
		out = append(out, line)
	}
	return out
}

// limitsNote is what Diff adds to the line of a merchant's limits (field
// "limits", stored in minor units): the limits as people read them, in the
// merchant's currency before and after (bcur, acur: its "currency", or the
// acquirer's for a merchant of any; docs/merchant-risk.md, "Currency of the
// limits"), before and after, or after alone for a new record (before nil):
// " (txn/day/month in 156: 500.00/-/- -> 1000.00/-/-)", or, when the change
// moves the merchant to another currency, " (txn/day/month: 500.00/-/- in 156 ->
// 100000/-/- in 392)". "" for another field or values that are not limits.
func limitsNote(field string, before, after json.RawMessage, bcur, acur string) string {
	if field != "limits" {
		return ""
	}
	var bl, al registry.Limits
	if json.Unmarshal(after, &al) != nil || (before != nil && json.Unmarshal(before, &bl) != nil) {
		return ""
	}
	switch {
	case before == nil:
		return fmt.Sprintf(" (txn/day/month in %s: %s)", acur, limitsText(al, acur))
	case bcur != acur:
		return fmt.Sprintf(" (txn/day/month: %s in %s -> %s in %s)", limitsText(bl, bcur), bcur, limitsText(al, acur), acur)
	}
	return fmt.Sprintf(" (txn/day/month in %s: %s -> %s)", acur, limitsText(bl, bcur), limitsText(al, acur))
}

// limitsReread is what Diff adds to the line of a merchant's currency when the
// change leaves its limits (limits, JSON) as they are: the same minor units read
// in the new currency, " (limits kept in minor units: 500.00/-/- in 156 now
// 50000/-/- in 392)", for the reviewer to see what they become; "" for a
// merchant without amount limits.
func limitsReread(limits json.RawMessage, bcur, acur string) string {
	var l registry.Limits
	if json.Unmarshal(limits, &l) != nil || l.PerTransaction == 0 && l.Daily == 0 && l.Monthly == 0 {
		return ""
	}
	return fmt.Sprintf(" (limits kept in minor units: txn/day/month %s in %s now %s in %s)", limitsText(l, bcur), bcur, limitsText(l, acur), acur)
}

// limitsCurrency is the currency a merchant's limits are in, from the merchant's
// JSON fields: its "currency", or the acquirer's (currency.Acquirer) when it has
// none (or the record is not a merchant's).
func limitsCurrency(fields map[string]json.RawMessage) string {
	var c string
	if raw, ok := fields["currency"]; ok && json.Unmarshal(raw, &c) == nil && c != "" {
		return c
	}
	return currency.Acquirer
}
