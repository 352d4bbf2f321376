package cases

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/switchyard/switchyard/switch/admin"
)

// AssignRequest is the body of POST /api/v1/cases/{id}/assign.
type AssignRequest struct {
	To   string `json:"to,omitempty"`   // the analyst; empty: the caller
	Note string `json:"note,omitempty"` // why
}

// DecideRequest is the body of POST /api/v1/cases/{id}/decide.
type DecideRequest struct {
	Verdict Verdict `json:"verdict"`        // confirmed-fraud or cleared
	Note    string  `json:"note,omitempty"` // what the analyst found
}

// NewAPI serves the review cases under the switch's admin API conventions: operators,
// reviewers and analysts read; analysts assign and decide (admin may do all).
//
//	GET  /api/v1/cases[?status=&action=&assigned_to=&tid=&mid=&rrn=&limit=]   cases, oldest first
//	GET  /api/v1/cases/{id}                                                   one case
//	POST /api/v1/cases/{id}/assign   AssignRequest                            open or assigned -> assigned
//	POST /api/v1/cases/{id}/decide   DecideRequest                            assigned -> decided
//
// Mount it at "/api/v1/cases" and "/api/v1/cases/".
func NewAPI(s *Store, auth *admin.Authenticator) http.Handler {
	h := &api{s}
	read := []admin.Role{admin.RoleOperator, admin.RoleReviewer, admin.RoleAnalyst}
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/cases", auth.Require(http.HandlerFunc(h.list), read...))
	mux.Handle("GET /api/v1/cases/{id}", auth.Require(http.HandlerFunc(h.get), read...))
	mux.Handle("POST /api/v1/cases/{id}/assign", auth.Require(http.HandlerFunc(h.assign), admin.RoleAnalyst))
	mux.Handle("POST /api/v1/cases/{id}/decide", auth.Require(http.HandlerFunc(h.decide), admin.RoleAnalyst))
	return mux
}

type api struct{ s *Store }

func writeErr(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, ErrForbidden):
		status = http.StatusForbidden
	}
	admin.WriteError(w, status, err)
}

func (h *api) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if rrn := q.Get("rrn"); rrn != "" {
		c, err := h.s.ByRRN(rrn)
		if errors.Is(err, ErrNotFound) {
			admin.WriteJSON(w, http.StatusOK, []*Case{})
			return
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		admin.WriteJSON(w, http.StatusOK, []*Case{c})
		return
	}
	f := Filter{Status: Status(q.Get("status")), Action: q.Get("action"), AssignedTo: q.Get("assigned_to"), TID: q.Get("tid"), MID: q.Get("mid")}
	switch f.Status {
	case "", StatusOpen, StatusAssigned, StatusDecided:
	default:
		writeErr(w, kindErrorf(ErrInvalid, "status %q: want open, assigned or decided", f.Status))
		return
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeErr(w, kindErrorf(ErrInvalid, "limit %q: want a whole number", s))
			return
		}
		f.Limit = n
	}
	out, err := h.s.List(f)
	if err != nil {
		writeErr(w, err)
		return
	}
	if out == nil {
		out = []*Case{}
	}
	admin.WriteJSON(w, http.StatusOK, out)
}

func (h *api) get(w http.ResponseWriter, r *http.Request) {
	c, err := h.s.Get(r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	admin.WriteJSON(w, http.StatusOK, c)
}

func principal(r *http.Request) admin.Principal {
	p, _ := admin.PrincipalFrom(r.Context())
	return p
}

func (h *api) assign(w http.ResponseWriter, r *http.Request) {
	var req AssignRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		writeErr(w, kindErrorf(ErrInvalid, "%v", err))
		return
	}
	c, err := h.s.Assign(principal(r), r.PathValue("id"), req.To, req.Note)
	if err != nil {
		writeErr(w, err)
		return
	}
	admin.WriteJSON(w, http.StatusOK, c)
}

func (h *api) decide(w http.ResponseWriter, r *http.Request) {
	var req DecideRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		writeErr(w, kindErrorf(ErrInvalid, "%v", err))
		return
	}
	c, err := h.s.Decide(principal(r), r.PathValue("id"), req.Verdict, req.Note)
	if err != nil {
		writeErr(w, err)
		return
	}
	admin.WriteJSON(w, http.StatusOK, c)
}
