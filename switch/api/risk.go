package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/listreview"
)

// The risk engine's routes: operators and reviewers read, analysts also reload
// rules and edit lists.
//
//	GET    /api/v1/risk/rules                      rule set in force, last reload, counters, stats
//	POST   /api/v1/risk/rules/reload               reload the rule files (422 with file:line problems)
//	GET    /api/v1/risk/lists[?list=&kind=]        list entries
//	POST   /api/v1/risk/lists                      add an entry (risk.AddListEntry; 202 and a change for review: below)
//	DELETE /api/v1/risk/lists/{list}/{kind}/{value} remove an entry (likewise)
//
// An edit that loosens the rules (an allow-list addition, a deny-list removal,
// any edit of another list: switch/listreview) is not made at once: it is a
// registry change the analyst requests and a reviewer approves; the answer is
// 202 with pending_review and the change's ID.
//
//	GET    /api/v1/risk/lists/audit[?since=&limit=] who changed the lists, when, what
//	POST   /api/v1/risk/profiles/refresh           recompute the merchant profiles now (operators)
func (a *api) risk() {
	g := &riskAPI{e: a.o.Risk, lists: a.o.Lists, review: a.o.ListReview}
	if g.lists == nil {
		g.lists = g.e.Lists()
	}
	edit := []admin.Role{admin.RoleAnalyst}
	a.route("GET /api/v1/risk/rules", readers, nil, g.rules)
	a.route("POST /api/v1/risk/rules/reload", edit, nil, g.reload)
	a.route("GET /api/v1/risk/lists", readers, nil, g.listEntries)
	a.route("POST /api/v1/risk/lists", edit, nil, g.addEntry)
	a.route("DELETE /api/v1/risk/lists/{list}/{kind}/{value}", edit, nil, g.removeEntry)
	a.route("GET /api/v1/risk/lists/audit", readers, nil, g.audit)
}

// profileRoutes: POST /api/v1/risk/profiles/refresh recomputes the merchant
// profiles now (operators); it answers when the new table is in force.
func (a *api) profileRoutes() {
	refresh := a.o.RefreshProfiles
	a.route("POST /api/v1/risk/profiles/refresh", []admin.Role{admin.RoleOperator}, nil, func(r *http.Request, _ admin.Principal) (any, error) {
		return refresh(r.Context())
	})
}

type riskAPI struct {
	e      *risk.Engine
	lists  *risk.Lists
	review *listreview.Review // nil: the edits that need a review are refused
}

// errNoListReview refuses an edit that needs a review where no registry runs.
var errNoListReview = errors.New("this list edit needs a second person's review, and no registry runs in this process")

var errNoEngine = errors.New("the risk engine is not running in this process")

func (g *riskAPI) rules(_ *http.Request, _ admin.Principal) (any, error) {
	if g.e == nil {
		return nil, WithStatus(http.StatusServiceUnavailable, errNoEngine)
	}
	rs := g.e.RuleSet()
	return risk.RulesInfo{Version: rs.Version, Dir: rs.Dir, TimeZone: rs.TimeZone, LoadedAt: rs.LoadedAt,
		LastReload: g.e.LastReload(), Files: rs.Files, Rules: rs.Rules, Counters: rs.Counters,
		Thresholds: rs.Thresholds, Warnings: rs.Warnings, Stats: g.e.Stats()}, nil
}

// reload answers a refused reload with 422 and the problems, the previous rules
// staying in force.
func (g *riskAPI) reload(_ *http.Request, _ admin.Principal) (any, error) {
	if g.e == nil {
		return nil, WithStatus(http.StatusServiceUnavailable, errNoEngine)
	}
	prev := g.e.RuleSet().Version
	rs, err := g.e.Reload()
	if err != nil {
		ans := risk.ReloadRefused{Error: err.Error(), KeptVersion: prev}
		var le *risk.LoadError
		if errors.As(err, &le) {
			ans.Problems = le.Problems
		}
		return withStatus(http.StatusUnprocessableEntity, ans), nil
	}
	return risk.ReloadAnswer{Version: rs.Version, Previous: prev, Rules: len(rs.Rules), Warnings: rs.Warnings}, nil
}

func (g *riskAPI) listEntries(r *http.Request, _ admin.Principal) (any, error) {
	list, kind := r.URL.Query().Get("list"), r.URL.Query().Get("kind")
	out := []risk.ListEntry{}
	for _, e := range g.lists.Entries() {
		if (list == "" || e.List == list) && (kind == "" || e.Kind == kind) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (g *riskAPI) addEntry(r *http.Request, p admin.Principal) (any, error) {
	var req risk.AddListEntry
	if err := admin.ReadJSON(r, &req); err != nil {
		return nil, WithStatus(http.StatusBadRequest, err)
	}
	if err := noteError("list entry "+req.List+"/"+req.Kind+": note", req.Note); err != nil {
		return nil, err
	}
	maskText(r, p, "list entry "+req.List+"/"+req.Kind, "note", &req.Note)
	e, err := req.Entry(time.Now())
	if err != nil {
		return nil, WithStatus(http.StatusBadRequest, err)
	}
	if err := e.Normalize(); err != nil {
		return nil, WithStatus(http.StatusBadRequest, err)
	}
	if err := e.CheckNew(); err != nil {
		return nil, WithStatus(http.StatusBadRequest, err)
	}
	if why := listreview.AddNeedsReview(g.lists, e, time.Now()); why != "" {
		if g.review == nil {
			return nil, WithStatus(http.StatusServiceUnavailable, errNoListReview)
		}
		ch, err := g.review.RequestAdd(actor(p), e, why)
		if err != nil {
			return nil, WithStatus(registryStatus(err), err)
		}
		return withStatus(http.StatusAccepted, risk.AddAnswer{ListEntry: e, PendingReview: true, Change: ch.ID, Why: why}), nil
	}
	added, err := g.lists.Add(p.Name, e)
	if err != nil {
		return nil, WithStatus(listsStatus(err), err)
	}
	return risk.AddAnswer{ListEntry: added}, nil
}

func (g *riskAPI) removeEntry(r *http.Request, p admin.Principal) (any, error) {
	if why := listreview.RemoveNeedsReview(r.PathValue("list")); why != "" {
		if g.review == nil {
			return nil, WithStatus(http.StatusServiceUnavailable, errNoListReview)
		}
		ch, err := g.review.RequestRemove(actor(p), r.PathValue("list"), r.PathValue("kind"), r.PathValue("value"), why)
		if err != nil {
			return nil, WithStatus(registryStatus(err), err)
		}
		return withStatus(http.StatusAccepted, risk.RemoveAnswer{PendingReview: true, Change: ch.ID, Why: why}), nil
	}
	ok, err := g.lists.Remove(p.Name, r.PathValue("list"), r.PathValue("kind"), r.PathValue("value"))
	if err != nil {
		return nil, WithStatus(listsStatus(err), err)
	}
	if !ok {
		return nil, errorf(http.StatusNotFound, "%s/%s/%s is not on the lists", r.PathValue("list"), r.PathValue("kind"), r.PathValue("value"))
	}
	return risk.RemoveAnswer{Removed: true}, nil
}

func (g *riskAPI) audit(r *http.Request, _ admin.Principal) (any, error) {
	var since time.Time
	if s := r.URL.Query().Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return nil, badRequest("since %q: want RFC 3339 like 2025-06-01T00:00:00Z", s)
		}
		since = t
	}
	limit := 0
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, badRequest("limit %q: want a whole number", s)
		}
		limit = n
	}
	out, err := g.lists.Audit(since, limit)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []risk.AuditEntry{}
	}
	return out, nil
}

// listsStatus maps a refused list change: 409 when it conflicted with changes on
// other nodes of the cluster, 503 when the cluster could not order it, else 400.
func listsStatus(err error) int {
	switch {
	case errors.Is(err, risk.ErrListsConflict):
		return http.StatusConflict
	case errors.Is(err, statelog.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}
