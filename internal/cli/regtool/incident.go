package regtool

import (
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/registry"
)

func (t *tool) incident(args []string) error {
	if len(args) == 0 {
		return usagef("incident: want list, show, ack or resolve")
	}
	sub, args := args[0], args[1:]
	f := t.newFlags("incident " + sub)
	switch sub {
	case "list":
		status := f.String("status", "open", "open, acknowledged, resolved or all")
		terminal := f.String("terminal", "", "only this terminal")
		merchant := f.String("merchant", "", "only this merchant")
		reason := f.String("reason", "", "only this reason")
		since := f.String("since", "", "since (RFC 3339, YYYY-MM-DD or a duration like 24h)")
		if _, err := f.parseN(args, 0, "no arguments"); err != nil {
			return err
		}
		if *since != "" {
			st, err := registry.ParseSince(*since, time.Now())
			if err != nil {
				return usagef("incident list --since %q: %v", *since, err)
			}
			*since = st.UTC().Format(time.RFC3339)
		}
		var is []registry.Incident
		if err := t.call("GET", "/api/v1/incidents"+query("status", statusFilter(*status), "terminal", *terminal, "merchant", *merchant, "reason", *reason, "since", *since), nil, &is); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(is)
		}
		var rows [][]string
		for _, i := range is {
			rows = append(rows, []string{i.ID, t.when(i.Time), string(i.Reason), i.ResponseCode, i.TerminalID, orDash(i.MerchantID), string(i.Status), incidentDetail(&i)})
		}
		t.table("ID\tTIME\tREASON\tRC\tTERMINAL\tMERCHANT\tSTATUS\tDETAIL", rows)
		return nil
	case "show":
		pos, err := f.parseN(args, 1, "an incident ID")
		if err != nil {
			return err
		}
		var i registry.Incident
		if err := t.call("GET", "/api/v1/incidents/"+seg(pos[0]), nil, &i); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(i)
		}
		t.printIncident(&i)
		return nil
	case "ack", "acknowledge", "resolve":
		note := f.String("note", "", "note")
		pos, err := f.parseN(args, 1, "an incident ID")
		if err != nil {
			return err
		}
		action := sub
		if action == "acknowledge" {
			action = "ack"
		}
		var i registry.Incident
		if err := t.call("POST", "/api/v1/incidents/"+seg(pos[0])+"/"+action, registry.ReasonRequest{Note: *note}, &i); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(i)
		}
		fmt.Fprintf(t.out, "%s %s\n", i.ID, i.Status)
		return nil
	}
	return usagef("incident %s: unknown subcommand (want list, show, ack or resolve)", sub)
}

func incidentDetail(i *registry.Incident) string {
	var parts []string
	if i.Device.MerchantID != "" && i.Device.MerchantID != i.MerchantID {
		parts = append(parts, "DE42 "+i.Device.MerchantID)
	}
	if i.Facts.LocationKnown && i.Facts.DistanceM > 0 {
		parts = append(parts, fmt.Sprintf("%.0f m away", i.Facts.DistanceM))
	}
	if len(i.Device.Findings) > 0 {
		parts = append(parts, "findings "+strings.Join(i.Device.Findings, ","))
	}
	if i.Facts.Missing != "" {
		parts = append(parts, "missing "+i.Facts.Missing)
	}
	if i.Device.SourceIP != "" {
		parts = append(parts, "from "+i.Device.SourceIP)
	}
	if i.Action != "" {
		parts = append(parts, i.Action)
	}
	return orDash(strings.Join(parts, "; "))
}
