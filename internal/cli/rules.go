package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/internal/cli/ruletool"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/rules"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/server"
)

func init() {
	registerTool("rules", "risk rules: check, test, backtest on the journal, explain a decision, deny/allow lists", "",
		[]string{"check", "test", "backtest", "explain", "lists"}, runRules)
}

// apiHistory reads the journal through the admin API, for backtest and explain.
type apiHistory struct{ c *apiclient.Client }

func (h apiHistory) Range(ctx context.Context, from, to time.Time, fn func(risk.Record) error) error {
	q := url.Values{"limit": {"0"}}
	if !from.IsZero() {
		q.Set("from", from.Format(time.RFC3339Nano))
	}
	if !to.IsZero() {
		q.Set("to", to.Format(time.RFC3339Nano))
	}
	return streamJournal(ctx, h.c, q, func(r *journal.Record) error {
		if rec, ok := server.ReplayRecord(r); ok {
			return fn(rec)
		}
		return nil
	})
}

func (h apiHistory) ByRRN(ctx context.Context, rrn string) (risk.Record, error) {
	var r journal.Record
	if err := h.c.Do(ctx, "GET", "/api/v1/journal/"+url.PathEscape(rrn), nil, &r); err != nil {
		var ae *apiclient.APIError
		if errors.As(err, &ae) && ae.Status == 404 {
			return risk.Record{}, fmt.Errorf("%w: RRN %s", risk.ErrNotFound, rrn)
		}
		return risk.Record{}, err
	}
	rec, ok := server.RiskRecord(&r)
	if !ok {
		return risk.Record{}, &risk.NotEvaluatedError{RRN: rrn, ResponseCode: r.RC, DecidedBy: r.DecidedBy, Reason: r.Reason}
	}
	return rec, nil
}

func runRules(env *Env, args []string) int {
	// check and test need no switch; the others read the journal and the lists.
	local := len(args) > 0 && (args[0] == "check" || args[0] == "test")
	tz := env.Getenv("SWITCHYARD_TIMEZONE")
	if tz == "" {
		tz = config.Demo().Timezone
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return fail(env, "rules: SWITCHYARD_TIMEZONE: %v", err)
	}
	te := ruletool.ToolEnv{Location: loc, RulesDir: "rules", Fallback: rules.Files}
	rest := args
	if !local {
		c, r, done, err := adminClient(env, args)
		if err != nil {
			return fail(env, "rules: %v", err)
		}
		defer done()
		rest = r
		te.Admin, te.History = c, apiHistory{c}
		// The journal's commands read dates in the switch's timezone (switchZone),
		// asked once their flags are parsed.
		te.Zone = func() (*time.Location, string, error) { return switchZone(env, c) }
	}
	return ruletool.Run(env.Ctx, rest, te, env.Stdout, env.Stderr)
}
