package regtool

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/registry"
)

func (t *tool) oplog(args []string) error {
	if len(args) > 0 && args[0] == "verify" {
		f := t.newFlags("oplog verify")
		if _, err := f.parseN(args[1:], 0, "no arguments"); err != nil {
			return err
		}
		var vr registry.VerifyResult
		if err := t.call("GET", "/api/v1/oplog/verify", nil, &vr); err != nil {
			return err
		}
		if *f.json {
			_ = t.printJSON(vr)
		} else if vr.OK {
			fmt.Fprintf(t.out, "oplog intact: %d entries, hash chain verified\n", vr.Entries)
		}
		if !vr.OK {
			return fmt.Errorf("oplog verification failed after %d entries: %s", vr.Entries, vr.Error)
		}
		return nil
	}
	f := t.newFlags("oplog")
	since := f.String("since", "", "entries since (RFC 3339 time, YYYY-MM-DD, or a duration like 24h)")
	target := f.String("target", "", "only entries about this record")
	actor := f.String("actor", "", "only entries by this principal")
	action := f.String("action", "", "only this action (or a prefix ending in '.', e.g. terminal.)")
	limit := f.Int("limit", 100, "the newest this many")
	if _, err := f.parseN(args, 0, "no arguments"); err != nil {
		return err
	}
	if *since != "" {
		st, err := registry.ParseSince(*since, time.Now())
		if err != nil {
			return usagef("oplog --since %q: %v", *since, err)
		}
		*since = st.UTC().Format(time.RFC3339)
	}
	var es []registry.OpEntry
	if err := t.call("GET", "/api/v1/oplog"+query("since", *since, "target", *target, "actor", *actor, "action", *action, "limit", strconv.Itoa(*limit)), nil, &es); err != nil {
		return err
	}
	if *f.json {
		return t.printJSON(es)
	}
	var rows [][]string
	for _, e := range es {
		by := e.Actor
		if e.RequestedBy != "" {
			by += " (requested by " + e.RequestedBy + ")"
		}
		what := strings.Join(Diff(e.Before, e.After), "; ")
		if e.Before == nil && e.After != nil && strings.HasPrefix(e.Action, "change.") {
			what = "" // the requested change itself: see change show
		}
		if len(what) > 120 {
			what = what[:117] + "..."
		}
		rows = append(rows, []string{strconv.FormatUint(e.Seq, 10), t.when(e.Time), by, e.Action, e.Target, orDash(e.ChangeID), orDash(e.Reason), orDash(what)})
	}
	t.table("SEQ\tTIME\tWHO\tACTION\tTARGET\tCHANGE\tREASON\tBEFORE -> AFTER", rows)
	if len(es) == *limit { // the demo fleet alone writes 2,009 entries: say that older ones exist
		fmt.Fprintf(t.errw, "the newest %d entries; --limit N for more, --since or --target to narrow\n", *limit)
	}
	return nil
}
