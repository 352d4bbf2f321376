package api

import (
	"errors"
	"net/http"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/cases"
)

// The review cases' routes: operators, reviewers and analysts read; analysts
// assign and decide.
//
//	GET  /api/v1/cases[?status=&action=&assigned_to=&tid=&mid=&rrn=&limit=]   cases, oldest first
//	GET  /api/v1/cases/{id}                                                   one case
//	POST /api/v1/cases/{id}/assign   cases.AssignRequest                      open or assigned -> assigned
//	POST /api/v1/cases/{id}/decide   cases.DecideRequest                      assigned -> decided
func (a *api) cases() {
	g := &casesAPI{a.o.Cases}
	analysts := []admin.Role{admin.RoleAnalyst}
	a.route("GET /api/v1/cases", readers, casesStatus, g.list)
	a.route("GET /api/v1/cases/{id}", readers, casesStatus, g.get)
	a.route("POST /api/v1/cases/{id}/assign", analysts, casesStatus, g.assign)
	a.route("POST /api/v1/cases/{id}/decide", analysts, casesStatus, g.decide)
}

var casesKindStatus = kindStatus(cases.ErrNotFound, cases.ErrInvalid, cases.ErrConflict, cases.ErrForbidden)

// casesStatus maps the cases' error kinds (a change that conflicted with changes
// on other nodes is a conflict, cases.ErrChanged), and 503 when the cluster could
// not order a change.
func casesStatus(err error) int {
	if errors.Is(err, statelog.ErrUnavailable) {
		return http.StatusServiceUnavailable
	}
	return casesKindStatus(err)
}

type casesAPI struct{ s *cases.Store }

func caseActor(p admin.Principal) cases.Actor {
	return cases.Actor{Name: p.Name, Role: string(p.Role)}
}

func (g *casesAPI) list(r *http.Request, _ admin.Principal) (any, error) {
	q := r.URL.Query()
	if rrn := q.Get("rrn"); rrn != "" {
		c, err := g.s.ByRRN(rrn)
		if errors.Is(err, cases.ErrNotFound) {
			return []*cases.Case{}, nil
		}
		if err != nil {
			return nil, err
		}
		return []*cases.Case{c}, nil
	}
	status, err := enumParam(r, "status", cases.StatusOpen, cases.StatusAssigned, cases.StatusDecided)
	if err != nil {
		return nil, err
	}
	f := cases.Filter{Status: status, Action: q.Get("action"), AssignedTo: q.Get("assigned_to"), TID: q.Get("tid"), MID: q.Get("mid")}
	if q.Get("limit") != "" {
		n, err := queryLimit(r)
		if err != nil {
			return nil, err
		}
		f.Limit = n
	}
	out, err := g.s.List(f)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []*cases.Case{}
	}
	return out, nil
}

func (g *casesAPI) get(r *http.Request, _ admin.Principal) (any, error) {
	return g.s.Get(r.PathValue("id"))
}

func (g *casesAPI) assign(r *http.Request, p admin.Principal) (any, error) {
	var req cases.AssignRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		return nil, badRequest("%v", err)
	}
	maskText(r, p, "case "+r.PathValue("id"), "note", &req.Note)
	return g.s.Assign(caseActor(p), r.PathValue("id"), req.To, req.Note)
}

func (g *casesAPI) decide(r *http.Request, p admin.Principal) (any, error) {
	var req cases.DecideRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		return nil, badRequest("%v", err)
	}
	maskText(r, p, "case "+r.PathValue("id"), "decision note", &req.Note)
	return g.s.Decide(caseActor(p), r.PathValue("id"), req.Verdict, req.Note)
}
