package console

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
)

// The transactions page: the journal's query (terminal, merchant, RRN, time
// range, response code), one transaction's timeline of states and its rule
// explanation (risk.Explain over the journal, as `switchyard rules explain`).

func (c *Console) transactions(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	now := c.o.Now()
	from, to := now.Add(-24*time.Hour), now.Add(time.Minute)
	var errMsg string
	if v := q.Get("from"); v != "" {
		t, err := time.ParseInLocation("2006-01-02T15:04", v, time.Local)
		if err != nil {
			errMsg = "from: want YYYY-MM-DDTHH:MM" // not v: a link may hold any text
		} else {
			from = t
		}
	}
	if v := q.Get("to"); v != "" {
		t, err := time.ParseInLocation("2006-01-02T15:04", v, time.Local)
		if err != nil {
			errMsg = "to: want YYYY-MM-DDTHH:MM"
		} else {
			to = t
		}
	}
	rc := strings.TrimSpace(q.Get("rc"))
	var out []*journal.Record
	if c.o.Journal != nil && errMsg == "" {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		jq := journal.Query{TID: strings.TrimSpace(q.Get("terminal")), MID: strings.TrimSpace(q.Get("merchant")), RRN: strings.TrimSpace(q.Get("rrn")), From: from, To: to}
		var err error
		out, err = newest(ctx, c.o.Journal, jq, 200, func(rec *journal.Record) bool { return rc == "" || rec.RC == rc })
		if err != nil {
			errMsg = err.Error()
		}
	}
	c.render(w, r, s, "transactions", map[string]any{"Records": out, "Terminal": q.Get("terminal"), "Merchant": q.Get("merchant"), "RRN": q.Get("rrn"),
		"RC": rc, "From": from.Local().Format("2006-01-02T15:04"), "To": to.Local().Format("2006-01-02T15:04"), "Error": errMsg})
}

func (c *Console) transaction(w http.ResponseWriter, r *http.Request, s *session) {
	if c.o.Journal == nil {
		c.renderError(w, r, s, http.StatusServiceUnavailable, "no journal in this process")
		return
	}
	rec, err := c.o.Journal.Get(r.PathValue("rrn"))
	if err != nil {
		c.renderError(w, r, s, http.StatusNotFound, notFound("transaction", r.PathValue("rrn"), err))
		return
	}
	var ex *risk.Explanation
	var exErr string
	if c.o.History != nil && c.o.Risk != nil && len(rec.Facts) > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		ex, err = risk.Explain(ctx, c.o.History, c.o.Risk.RuleSet(), rec.RRN, -1)
		if err != nil {
			exErr = err.Error()
		}
	}
	c.render(w, r, s, "transaction", map[string]any{"R": rec, "Explain": ex, "ExplainError": exErr})
}
