package regtool

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/registry"
)

func (t *tool) alert(args []string) error {
	if len(args) == 0 {
		return usagef("alert: want list, show or ack")
	}
	sub, args := args[0], args[1:]
	f := t.newFlags("alert " + sub)
	switch sub {
	case "list":
		status := f.String("status", "open", "open, acknowledged, recovered or all")
		rule := f.String("rule", "", "only this rule")
		terminal := f.String("terminal", "", "only this terminal")
		if _, err := f.parseN(args, 0, "no arguments"); err != nil {
			return err
		}
		var as []registry.Alert
		if err := t.call("GET", "/api/v1/alerts"+query("status", statusFilter(*status), "rule", *rule, "terminal", *terminal), nil, &as); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(as)
		}
		var rows [][]string
		for _, a := range as {
			seen := "never"
			if a.LastSeen != nil {
				seen = t.when(a.LastSeen.Time)
			}
			var acts []string
			for _, r := range a.Actions {
				s := r.Type
				if !r.OK {
					s += "(failed)"
				}
				acts = append(acts, s)
			}
			rows = append(rows, []string{a.ID, t.when(a.Time), a.RuleID, a.TerminalID, a.MerchantID, seen,
				time.Duration(a.OfflineFor).Round(time.Minute).String(), string(a.Status), orDash(strings.Join(acts, ","))})
		}
		t.table("ID\tTIME\tRULE\tTERMINAL\tMERCHANT\tLAST SEEN\tOFFLINE FOR\tSTATUS\tACTIONS", rows)
		return nil
	case "show":
		pos, err := f.parseN(args, 1, "an alert ID")
		if err != nil {
			return err
		}
		var a registry.Alert
		if err := t.call("GET", "/api/v1/alerts/"+seg(pos[0]), nil, &a); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(a)
		}
		t.printAlert(&a)
		return nil
	case "ack", "acknowledge":
		note := f.String("note", "", "note")
		pos, err := f.parseN(args, 1, "an alert ID")
		if err != nil {
			return err
		}
		var a registry.Alert
		if err := t.call("POST", "/api/v1/alerts/"+seg(pos[0])+"/ack", registry.ReasonRequest{Note: *note}, &a); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(a)
		}
		fmt.Fprintf(t.out, "%s %s\n", a.ID, a.Status)
		return nil
	}
	return usagef("alert %s: unknown subcommand (want list, show or ack)", sub)
}

// --- alert rules ---

type multiFlag []string

// String returns the values, comma-separated.
func (m *multiFlag) String() string { return strings.Join(*m, ",") }

// Set adds a value.
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func (t *tool) alertRule(args []string) error {
	if len(args) == 0 {
		return usagef("alert-rule: want list, set or delete")
	}
	sub, args := args[0], args[1:]
	f := t.newFlags("alert-rule " + sub)
	switch sub {
	case "list":
		if _, err := f.parseN(args, 0, "no arguments"); err != nil {
			return err
		}
		var rules []registry.AlertRule
		if err := t.call("GET", "/api/v1/alert-rules", nil, &rules); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(rules)
		}
		var rows [][]string
		for _, r := range rules {
			var acts []string
			for _, a := range r.Actions {
				s := a.Type
				if a.URL != "" {
					s += "=" + a.URL
				}
				acts = append(acts, s)
			}
			state := "enabled"
			if r.Disabled {
				state = "disabled"
			}
			rows = append(rows, []string{r.ID, time.Duration(r.Threshold).String(), filterText(r.Filter), strings.Join(acts, ","), state})
		}
		t.table("ID\tTHRESHOLD\tFILTER\tACTIONS\tSTATE", rows)
		return nil
	case "set":
		threshold := f.Duration("threshold", registry.DefaultOfflineThreshold, "silence before an alert")
		merchants := f.String("merchant", "", "merchant IDs, comma-separated")
		regions := f.String("region", "", "regions, comma-separated")
		kinds := f.String("kind", "", "kinds, comma-separated")
		statuses := f.String("status", "", "terminal statuses, comma-separated (default active)")
		desc := f.String("description", "", "description")
		disabled := f.Bool("disabled", false, "keep the rule but do not run it")
		reason := f.String("reason", "", "reason of the change request (a rule with the suspend action is reviewed)")
		var actions multiFlag
		f.Var(&actions, "action", "log, suspend or webhook=URL (repeatable; default log)")
		pos, err := f.parseN(args, 1, "a rule ID")
		if err != nil {
			return err
		}
		rule := registry.AlertRule{ID: pos[0], Description: *desc, Threshold: registry.Duration(*threshold), Disabled: *disabled,
			Filter: registry.AlertFilter{Merchants: splitList(*merchants), Regions: splitList(*regions)}}
		for _, k := range splitList(*kinds) {
			rule.Filter.Kinds = append(rule.Filter.Kinds, registry.TerminalKind(k))
		}
		for _, s := range splitList(*statuses) {
			rule.Filter.Statuses = append(rule.Filter.Statuses, registry.TerminalStatus(s))
		}
		for _, a := range actions {
			typ, u, _ := strings.Cut(a, "=")
			rule.Actions = append(rule.Actions, registry.AlertAction{Type: typ, URL: u})
		}
		// A rule that suspends terminals comes back as a change request (202), any
		// other as the saved rule.
		var raw json.RawMessage
		body := struct {
			registry.AlertRule
			Reason string `json:"reason,omitempty"`
		}{rule, *reason}
		if err := t.call("PUT", "/api/v1/alert-rules/"+seg(rule.ID), body, &raw); err != nil {
			return err
		}
		var probe struct {
			Op registry.Op `json:"op"`
		}
		if err := json.Unmarshal(raw, &probe); err == nil && probe.Op != "" {
			var c registry.Change
			if err := json.Unmarshal(raw, &c); err != nil {
				return fmt.Errorf("alert-rule set: decode change: %w", err)
			}
			return t.printChange(&c, *f.json)
		}
		var out registry.AlertRule
		if err := json.Unmarshal(raw, &out); err != nil {
			return fmt.Errorf("alert-rule set: decode rule: %w", err)
		}
		if *f.json {
			return t.printJSON(out)
		}
		fmt.Fprintf(t.out, "alert rule %s saved: after %v silence, %s\n", out.ID, time.Duration(out.Threshold), filterText(out.Filter))
		return nil
	case "delete":
		pos, err := f.parseN(args, 1, "a rule ID")
		if err != nil {
			return err
		}
		if err := t.call("DELETE", "/api/v1/alert-rules/"+seg(pos[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(t.out, "alert rule %s deleted\n", pos[0])
		return nil
	}
	return usagef("alert-rule %s: unknown subcommand (want list, set or delete)", sub)
}

func filterText(f registry.AlertFilter) string {
	var parts []string
	add := func(name string, vals []string) {
		if len(vals) > 0 {
			parts = append(parts, name+"="+strings.Join(vals, ","))
		}
	}
	add("merchant", f.Merchants)
	add("region", f.Regions)
	var ks, ss []string
	for _, k := range f.Kinds {
		ks = append(ks, string(k))
	}
	for _, s := range f.Statuses {
		ss = append(ss, string(s))
	}
	add("kind", ks)
	if len(ss) == 0 {
		ss = []string{"active"}
	}
	add("status", ss)
	return strings.Join(parts, " ")
}
