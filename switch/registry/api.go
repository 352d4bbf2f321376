package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/admin"
)

// TerminalView is a terminal with its last-seen data, as the API shows it.
type TerminalView struct {
	*Terminal
	LastSeen *LastSeen `json:"last_seen,omitempty"`
}

// MerchantRequest is the body of POST /api/v1/merchants: the merchant to register
// and the reason of the request.
type MerchantRequest struct {
	Merchant
	Reason string `json:"reason,omitempty"`
}

// TerminalRequest is the body of POST /api/v1/terminals.
type TerminalRequest struct {
	Terminal
	Reason string `json:"reason,omitempty"`
}

// MerchantPatchRequest is the body of PATCH /api/v1/merchants/{id}.
type MerchantPatchRequest struct {
	MerchantPatch
	Reason string `json:"reason,omitempty"`
}

// TerminalPatchRequest is the body of PATCH /api/v1/terminals/{id}.
type TerminalPatchRequest struct {
	TerminalPatch
	Reason string `json:"reason,omitempty"`
}

// ReasonRequest is the optional body of the state-change calls (freeze, suspend,
// ...), of approve, reject and cancel, and of acknowledging and resolving.
type ReasonRequest struct {
	Reason string `json:"reason,omitempty"`
	Note   string `json:"note,omitempty"`
}

func (r ReasonRequest) text() string {
	if r.Reason != "" {
		return r.Reason
	}
	return r.Note
}

// ImportRequest is the JSON form of POST /api/v1/terminals/import (the CLI's); the
// endpoint also takes a text/csv body with ?reason= and ?dry_run=1.
type ImportRequest struct {
	CSV    string `json:"csv"`
	Reason string `json:"reason,omitempty"`
	DryRun bool   `json:"dry_run,omitempty"`
}

// VerifyResult is the answer of GET /api/v1/oplog/verify.
type VerifyResult struct {
	OK      bool   `json:"ok"`
	Entries int    `json:"entries"`
	Error   string `json:"error,omitempty"`
}

// NewAPI returns the registry's admin API under /api/v1/: merchants, terminals,
// terminal import, changes (approve, reject, cancel), oplog, incidents, alerts and
// alert rules. Every call needs a bearer token (401 without); reading is open to
// every role, requesting changes and handling incidents and alerts to operators,
// approving and rejecting to reviewers, everything to admins (403 otherwise). A
// reviewer may not approve a change he requested. Saving an alert rule that
// suspends terminals requests a change (202) instead of saving it.
func NewAPI(reg *Registry, auth *admin.Authenticator) http.Handler {
	a := &api{reg: reg}
	mux := http.NewServeMux()
	read := []admin.Role{admin.RoleOperator, admin.RoleReviewer, admin.RoleAnalyst}
	op := []admin.Role{admin.RoleOperator}
	rev := []admin.Role{admin.RoleReviewer}
	h := func(pattern string, fn func(w http.ResponseWriter, r *http.Request, p admin.Principal) error, roles []admin.Role) {
		mux.Handle(pattern, auth.Require(a.wrap(fn), roles...))
	}
	h("GET /api/v1/merchants", a.listMerchants, read)
	h("POST /api/v1/merchants", a.registerMerchant, op)
	h("GET /api/v1/merchants/{id}", a.getMerchant, read)
	h("PATCH /api/v1/merchants/{id}", a.changeMerchant, op)
	h("POST /api/v1/merchants/{id}/{action}", a.merchantAction, op)
	h("GET /api/v1/terminals", a.listTerminals, read)
	h("POST /api/v1/terminals", a.registerTerminal, op)
	h("POST /api/v1/terminals/import", a.importTerminals, op)
	h("GET /api/v1/terminals/{id}", a.getTerminal, read)
	h("PATCH /api/v1/terminals/{id}", a.changeTerminal, op)
	h("POST /api/v1/terminals/{id}/{action}", a.terminalAction, op)
	h("GET /api/v1/changes", a.listChanges, read)
	h("GET /api/v1/changes/{id}", a.getChange, read)
	h("POST /api/v1/changes/{id}/approve", a.approve, rev)
	h("POST /api/v1/changes/{id}/reject", a.reject, rev)
	h("POST /api/v1/changes/{id}/cancel", a.cancel, op)
	h("GET /api/v1/oplog", a.oplog, read)
	h("GET /api/v1/oplog/verify", a.verifyOplog, read)
	h("GET /api/v1/incidents", a.listIncidents, read)
	h("GET /api/v1/incidents/{id}", a.getIncident, read)
	h("POST /api/v1/incidents/{id}/{action}", a.incidentAction, op)
	h("GET /api/v1/alerts", a.listAlerts, read)
	h("GET /api/v1/alerts/{id}", a.getAlert, read)
	h("POST /api/v1/alerts/{id}/ack", a.ackAlert, op)
	h("GET /api/v1/alert-rules", a.listRules, read)
	h("POST /api/v1/alert-rules", a.putRule, op)
	h("PUT /api/v1/alert-rules/{id}", a.putRule, op)
	h("DELETE /api/v1/alert-rules/{id}", a.deleteRule, op)
	h("GET /api/v1/reasons", a.reasons, read)
	return mux
}

type api struct{ reg *Registry }

type httpError struct {
	status int
	err    error
}

// Error returns the message.
func (e *httpError) Error() string { return e.err.Error() }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Errorf(format, args...)}
}

func (a *api) wrap(fn func(w http.ResponseWriter, r *http.Request, p admin.Principal) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := admin.PrincipalFrom(r.Context())
		if !ok {
			admin.WriteError(w, http.StatusUnauthorized, errors.New("no authenticated principal"))
			return
		}
		if err := fn(w, r, p); err != nil {
			var he *httpError
			status := http.StatusInternalServerError
			switch {
			case errors.As(err, &he):
				status = he.status
			case errors.Is(err, ErrNotFound):
				status = http.StatusNotFound
			case errors.Is(err, ErrInvalid):
				status = http.StatusBadRequest
			case errors.Is(err, ErrConflict):
				status = http.StatusConflict
			case errors.Is(err, ErrForbidden):
				status = http.StatusForbidden
			}
			if status == http.StatusInternalServerError {
				a.reg.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Str("principal", p.Name).Msg("admin API error")
			}
			admin.WriteError(w, status, err)
		}
	})
}

// readBody decodes an optional JSON body into v (an empty body leaves v alone).
func readBody(r *http.Request, v any) error {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		return badRequest("read request body: %v", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("request body: %v", err)
	}
	return nil
}

func queryInt(r *http.Request, name string) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, badRequest("query parameter %s=%q: want a non-negative integer", name, s)
	}
	return n, nil
}

func queryTime(r *http.Request, name string) (time.Time, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := ParseSince(s, time.Now())
	if err != nil {
		return time.Time{}, badRequest("query parameter %s=%q: %v", name, s, err)
	}
	return t, nil
}

// ParseSince reads a point in time as RFC 3339 ("2026-05-01T00:00:00Z"), a date
// ("2026-05-01", UTC) or a duration before now ("24h", "90m").
func ParseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("want RFC 3339 time, a date YYYY-MM-DD or a duration like 24h")
}

// --- merchants ---

func (a *api) listMerchants(w http.ResponseWriter, r *http.Request, _ admin.Principal) error {
	q := r.URL.Query()
	ms := a.reg.Merchants(MerchantFilter{Status: MerchantStatus(q.Get("status")), Region: q.Get("region"), Tier: q.Get("tier")})
	if ms == nil {
		ms = []*Merchant{}
	}
	admin.WriteJSON(w, http.StatusOK, ms)
	return nil
}

func (a *api) getMerchant(w http.ResponseWriter, r *http.Request, _ admin.Principal) error {
	m, ok := a.reg.Merchant(r.PathValue("id"))
	if !ok {
		return notFoundf("merchant %s does not exist", r.PathValue("id"))
	}
	admin.WriteJSON(w, http.StatusOK, m)
	return nil
}

func (a *api) request(w http.ResponseWriter, p admin.Principal, c Change) error {
	ch, err := a.reg.RequestChange(p, c)
	if err != nil {
		return err
	}
	admin.WriteJSON(w, http.StatusAccepted, ch)
	return nil
}

func (a *api) registerMerchant(w http.ResponseWriter, r *http.Request, p admin.Principal) error {
	var body MerchantRequest
	if err := readBody(r, &body); err != nil {
		return err
	}
	m := body.Merchant
	return a.request(w, p, Change{Op: OpMerchantRegister, Merchant: &m, Reason: body.Reason})
}

func (a *api) changeMerchant(w http.ResponseWriter, r *http.Request, p admin.Principal) error {
	var body MerchantPatchRequest
	if err := readBody(r, &body); err != nil {
		return err
	}
	patch := body.MerchantPatch
	return a.request(w, p, Change{Op: OpMerchantChange, Target: r.PathValue("id"), MerchantPatch: &patch, Reason: body.Reason})
}

func (a *api) merchantAction(w http.ResponseWriter, r *http.Request, p admin.Principal) error {
	return a.action(w, r, p, "merchant", map[string]Op{"activate": OpMerchantActivate, "freeze": OpMerchantFreeze, "unfreeze": OpMerchantUnfreeze, "close": OpMerchantClose},
		"activate, freeze, unfreeze or close")
}

// action requests the lifecycle change named by the path's action for the path's id.
func (a *api) action(w http.ResponseWriter, r *http.Request, p admin.Principal, kind string, ops map[string]Op, want string) error {
	o, ok := ops[r.PathValue("action")]
	if !ok {
		return &httpError{http.StatusNotFound, fmt.Errorf("%s action %q: want %s", kind, r.PathValue("action"), want)}
	}
	var body ReasonRequest
	if err := readBody(r, &body); err != nil {
		return err
	}
	return a.request(w, p, Change{Op: o, Target: r.PathValue("id"), Reason: body.text()})
}

// --- terminals ---

func (a *api) view(t *Terminal) TerminalView {
	v := TerminalView{Terminal: t}
	if ls, ok := a.reg.LastSeen(t.ID); ok {
		v.LastSeen = &ls
	}
	return v
}

func (a *api) listTerminals(w http.ResponseWriter, r *http.Request, _ admin.Principal) error {
	q := r.URL.Query()
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	ts := a.reg.Terminals(TerminalFilter{MerchantID: q.Get("merchant"), Status: TerminalStatus(q.Get("status")), Kind: TerminalKind(q.Get("kind"))})
	out := make([]TerminalView, 0, len(ts))
	after := q.Get("after")
	for _, t := range ts {
		if after != "" && t.ID <= after {
			continue
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		out = append(out, a.view(t))
	}
	admin.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) getTerminal(w http.ResponseWriter, r *http.Request, _ admin.Principal) error {
	t, ok := a.reg.Terminal(r.PathValue("id"))
	if !ok {
		return notFoundf("terminal %s does not exist", r.PathValue("id"))
	}
	admin.WriteJSON(w, http.StatusOK, a.view(t))
	return nil
}

func (a *api) registerTerminal(w http.ResponseWriter, r *http.Request, p admin.Principal) error {
	var body TerminalRequest
	if err := readBody(r, &body); err != nil {
		return err
	}
	t := body.Terminal
	return a.request(w, p, Change{Op: OpTerminalRegister, Terminal: &t, Reason: body.Reason})
}

func (a *api) changeTerminal(w http.ResponseWriter, r *http.Request, p admin.Principal) error {
	var body TerminalPatchRequest
	if err := readBody(r, &body); err != nil {
		return err
	}
	patch := body.TerminalPatch
	return a.request(w, p, Change{Op: OpTerminalChange, Target: r.PathValue("id"), TerminalPatch: &patch, Reason: body.Reason})
}

func (a *api) terminalAction(w http.ResponseWriter, r *http.Request, p admin.Principal) error {
	return a.action(w, r, p, "terminal", map[string]Op{"activate": OpTerminalActivate, "suspend": OpTerminalSuspend, "resume": OpTerminalResume, "close": OpTerminalClose},
		"activate, suspend, resume or close")
}

func (a *api) importTerminals(w http.ResponseWriter, r *http.Request, p admin.Principal) error {
	var in ImportRequest
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		if err := readBody(r, &in); err != nil {
			return err
		}
	} else {
		raw, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		if err != nil {
			return badRequest("read CSV body: %v", err)
		}
		in.CSV = string(raw)
		in.Reason = r.URL.Query().Get("reason")
		in.DryRun, _ = strconv.ParseBool(r.URL.Query().Get("dry_run"))
	}
	rep, err := a.reg.ImportTerminals(p, strings.NewReader(in.CSV), in.Reason, in.DryRun)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if rep.Change != nil {
		status = http.StatusAccepted
	}
	admin.WriteJSON(w, status, rep)
	return nil
}

// --- changes ---

func (a *api) listChanges(w http.ResponseWriter, r *http.Request, _ admin.Principal) error {
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	cs, err := a.reg.Changes(ChangeFilter{Status: ChangeStatus(q.Get("status")), Target: q.Get("target"), Limit: limit})
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []*Change{}
	}
	admin.WriteJSON(w, http.StatusOK, cs)
	return nil
}

func (a *api) getChange(w http.ResponseWriter, r *http.Request, _ admin.Principal) error {
	pv, err := a.reg.GetChange(r.PathValue("id"))
	if err != nil {
		return err
	}
	admin.WriteJSON(w, http.StatusOK, pv)
	return nil
}

func (a *api) review(w http.ResponseWriter, r *http.Request, p admin.Principal, fn func(admin.Principal, string, string) (*Change, error)) error {
	var body ReasonRequest
	if err := readBody(r, &body); err != nil {
		return err
	}
	c, err := fn(p, r.PathValue("id"), body.text())
	if err != nil {
		return err
	}
	admin.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (a *api) approve(w http.ResponseWriter, r *http.Request, p admin.Principal) error {
	return a.review(w, r, p, a.reg.Approve)
}

func (a *api) reject(w http.ResponseWriter, r *http.Request, p admin.Principal) error {
	return a.review(w, r, p, a.reg.Reject)
}

func (a *api) cancel(w http.ResponseWriter, r *http.Request, p admin.Principal) error {
	return a.review(w, r, p, a.reg.Cancel)
}

// --- oplog ---

func (a *api) oplog(w http.ResponseWriter, r *http.Request, _ admin.Principal) error {
	since, err := queryTime(r, "since")
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	after, err := queryInt(r, "after")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	es, err := a.reg.Oplog(OplogFilter{Since: since, After: uint64(after), Target: q.Get("target"), Actor: q.Get("actor"), Action: q.Get("action"), Limit: limit})
	if err != nil {
		return err
	}
	if es == nil {
		es = []OpEntry{}
	}
	admin.WriteJSON(w, http.StatusOK, es)
	return nil
}

func (a *api) verifyOplog(w http.ResponseWriter, _ *http.Request, _ admin.Principal) error {
	n, err := a.reg.VerifyOplog()
	res := VerifyResult{OK: err == nil, Entries: n}
	if err != nil {
		res.Error = err.Error()
	}
	admin.WriteJSON(w, http.StatusOK, res)
	return nil
}

// --- incidents ---

func (a *api) listIncidents(w http.ResponseWriter, r *http.Request, _ admin.Principal) error {
	since, err := queryTime(r, "since")
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	is, err := a.reg.Incidents(IncidentFilter{Status: IncidentStatus(q.Get("status")), TerminalID: q.Get("terminal"),
		MerchantID: q.Get("merchant"), Reason: Reason(q.Get("reason")), Since: since, Limit: limit})
	if err != nil {
		return err
	}
	if is == nil {
		is = []*Incident{}
	}
	admin.WriteJSON(w, http.StatusOK, is)
	return nil
}

func (a *api) getIncident(w http.ResponseWriter, r *http.Request, _ admin.Principal) error {
	inc, err := a.reg.GetIncident(r.PathValue("id"))
	if err != nil {
		return err
	}
	admin.WriteJSON(w, http.StatusOK, inc)
	return nil
}

func (a *api) incidentAction(w http.ResponseWriter, r *http.Request, p admin.Principal) error {
	var fn func(admin.Principal, string, string) (*Incident, error)
	switch r.PathValue("action") {
	case "ack", "acknowledge":
		fn = a.reg.AcknowledgeIncident
	case "resolve":
		fn = a.reg.ResolveIncident
	default:
		return &httpError{http.StatusNotFound, fmt.Errorf("incident action %q: want ack or resolve", r.PathValue("action"))}
	}
	var body ReasonRequest
	if err := readBody(r, &body); err != nil {
		return err
	}
	inc, err := fn(p, r.PathValue("id"), body.text())
	if err != nil {
		return err
	}
	admin.WriteJSON(w, http.StatusOK, inc)
	return nil
}

// --- alerts ---

func (a *api) listAlerts(w http.ResponseWriter, r *http.Request, _ admin.Principal) error {
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	as, err := a.reg.Alerts(AlertFilterQuery{Status: AlertStatus(q.Get("status")), RuleID: q.Get("rule"), TerminalID: q.Get("terminal"), Limit: limit})
	if err != nil {
		return err
	}
	if as == nil {
		as = []*Alert{}
	}
	admin.WriteJSON(w, http.StatusOK, as)
	return nil
}

func (a *api) getAlert(w http.ResponseWriter, r *http.Request, _ admin.Principal) error {
	al, err := a.reg.GetAlert(r.PathValue("id"))
	if err != nil {
		return err
	}
	admin.WriteJSON(w, http.StatusOK, al)
	return nil
}

func (a *api) ackAlert(w http.ResponseWriter, r *http.Request, p admin.Principal) error {
	var body ReasonRequest
	if err := readBody(r, &body); err != nil {
		return err
	}
	al, err := a.reg.AcknowledgeAlert(p, r.PathValue("id"), body.text())
	if err != nil {
		return err
	}
	admin.WriteJSON(w, http.StatusOK, al)
	return nil
}

func (a *api) listRules(w http.ResponseWriter, _ *http.Request, _ admin.Principal) error {
	admin.WriteJSON(w, http.StatusOK, a.reg.AlertRules())
	return nil
}

// alertRuleBody is the body of POST and PUT /api/v1/alert-rules: a rule whose
// threshold, when left out, is the default (an explicit zero is refused), and the
// reason of the change request a rule that suspends terminals becomes.
type alertRuleBody struct {
	AlertRule
	Threshold *Duration `json:"threshold,omitempty"`
	Reason    string    `json:"reason,omitempty"`
}

func (a *api) putRule(w http.ResponseWriter, r *http.Request, p admin.Principal) error {
	var body alertRuleBody
	if err := readBody(r, &body); err != nil {
		return err
	}
	ar := body.AlertRule
	ar.Threshold = Duration(DefaultOfflineThreshold)
	if body.Threshold != nil {
		ar.Threshold = *body.Threshold
	}
	if id := r.PathValue("id"); id != "" {
		if ar.ID != "" && ar.ID != id {
			return badRequest("alert rule ID %q in the body differs from %q in the path", ar.ID, id)
		}
		ar.ID = id
	}
	if ar.ChangesTerminals() {
		// Reviewed like the suspensions it will make: 202 with the change.
		return a.request(w, p, Change{Op: OpAlertRulePut, AlertRule: &ar, Reason: body.Reason})
	}
	out, err := a.reg.PutAlertRule(p, ar)
	if err != nil {
		return err
	}
	admin.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) deleteRule(w http.ResponseWriter, r *http.Request, p admin.Principal) error {
	if err := a.reg.DeleteAlertRule(p, r.PathValue("id")); err != nil {
		return err
	}
	admin.WriteJSON(w, http.StatusOK, map[string]string{"deleted": r.PathValue("id")})
	return nil
}

// ReasonInfo describes one decline reason (GET /api/v1/reasons).
type ReasonInfo struct {
	Reason       Reason `json:"reason"`
	ResponseCode string `json:"response_code"`
	Incident     bool   `json:"incident"`
}

func (a *api) reasons(w http.ResponseWriter, _ *http.Request, _ admin.Principal) error {
	out := make([]ReasonInfo, 0, len(Reasons))
	for _, x := range Reasons {
		out = append(out, ReasonInfo{x.Reason, x.ResponseCode, x.Incident})
	}
	admin.WriteJSON(w, http.StatusOK, out)
	return nil
}
