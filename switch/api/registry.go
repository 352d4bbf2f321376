package api

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

	"github.com/switchyard/switchyard/internal/kvjson"
	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/registry"
)

// The registry's routes: merchants, terminals, merchant and terminal import, changes (approve,
// reject, cancel), oplog, incidents, alerts and alert rules. Reading is open to
// every role, requesting changes and handling incidents and alerts to operators,
// approving and rejecting to reviewers (403 otherwise). A reviewer may not approve
// a change he requested (the registry refuses). Saving an alert rule that suspends
// terminals requests a change (202) instead of saving it.
func (a *api) registry() {
	g := &registryAPI{reg: a.o.Registry}
	op := []admin.Role{admin.RoleOperator}
	rev := []admin.Role{admin.RoleReviewer}
	h := func(pattern string, roles []admin.Role, fn handlerFunc) {
		a.route(pattern, roles, registryStatus, fn)
	}
	h("GET /api/v1/merchants", readers, g.listMerchants)
	h("POST /api/v1/merchants", op, g.registerMerchant)
	h("GET /api/v1/merchants/{id}", readers, g.getMerchant)
	if a.o.Profiles != nil {
		h("GET /api/v1/merchants/{id}/profile", readers, func(r *http.Request, _ admin.Principal) (any, error) {
			m, ok := g.reg.Merchant(r.PathValue("id"))
			if !ok {
				return nil, errorf(http.StatusNotFound, "merchant %s does not exist", r.PathValue("id"))
			}
			return a.o.Profiles.View(m.ID, m.Tier), nil
		})
	}
	h("PATCH /api/v1/merchants/{id}", op, g.changeMerchant)
	h("POST /api/v1/merchants/{id}/{action}", op, g.merchantAction)
	h("GET /api/v1/terminals", readers, g.listTerminals)
	h("POST /api/v1/terminals", op, g.registerTerminal)
	h("POST /api/v1/terminals/import", op, g.importTerminals)
	h("POST /api/v1/merchants/import", op, g.importMerchants)
	h("GET /api/v1/terminals/{id}", readers, g.getTerminal)
	h("PATCH /api/v1/terminals/{id}", op, g.changeTerminal)
	h("POST /api/v1/terminals/{id}/{action}", op, g.terminalAction)
	h("GET /api/v1/changes", readers, g.listChanges)
	h("GET /api/v1/changes/{id}", readers, g.getChange)
	h("POST /api/v1/changes/{id}/approve", rev, g.approve)
	h("POST /api/v1/changes/{id}/reject", rev, g.reject)
	h("POST /api/v1/changes/{id}/cancel", op, g.cancel)
	h("GET /api/v1/oplog", readers, g.oplog)
	h("GET /api/v1/oplog/verify", readers, g.verifyOplog)
	h("GET /api/v1/incidents", readers, g.listIncidents)
	h("GET /api/v1/incidents/{id}", readers, g.getIncident)
	h("POST /api/v1/incidents/{id}/{action}", op, g.incidentAction)
	h("GET /api/v1/alerts", readers, g.listAlerts)
	h("GET /api/v1/alerts/{id}", readers, g.getAlert)
	h("POST /api/v1/alerts/{id}/ack", op, g.ackAlert)
	h("GET /api/v1/alert-rules", readers, g.listRules)
	h("POST /api/v1/alert-rules", op, g.putRule)
	h("PUT /api/v1/alert-rules/{id}", op, g.putRule)
	h("DELETE /api/v1/alert-rules/{id}", op, g.deleteRule)
	h("GET /api/v1/reasons", readers, g.reasons)
}

var registryKinds = kindStatus(registry.ErrNotFound, registry.ErrInvalid, registry.ErrConflict, registry.ErrForbidden)

// registryStatus maps the registry's errors to HTTP statuses. In a cluster, a
// write another node's beat twice is a registry.ErrConflict (409: reload and
// retry), and one whose ordering is unknown for want of a quorum is 503: it may
// still take effect, the client should look before it retries.
func registryStatus(err error) int {
	switch {
	case errors.Is(err, statelog.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, registry.ErrExpired):
		return http.StatusGone // a change past registry.change_ttl: reject it, request it again
	}
	return registryKinds(err)
}

type registryAPI struct{ reg *registry.Registry }

// actor is the registry's view of the caller.
func actor(p admin.Principal) registry.Actor {
	return registry.Actor{Name: p.Name, Role: string(p.Role)}
}

// maxBody is the largest JSON body readBody takes.
const maxBody = 8 << 20

// readBody decodes an optional JSON body into v (an empty body leaves v alone). A
// body over maxBody is refused whole (413), never cut short.
func readBody(r *http.Request, v any) error {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return badRequest("read request body: %v", err)
	}
	if len(raw) > maxBody {
		return WithStatus(http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d MB", maxBody>>20))
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	if err := admin.ValidUTF8(raw); err != nil {
		return WithStatus(http.StatusBadRequest, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("request body: %v", err)
	}
	if err := admin.OneValue(dec); err != nil {
		return WithStatus(http.StatusBadRequest, err)
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

// queryLimit reads the limit query parameter of a list read whole into memory
// (oplog, changes, incidents, alerts, cases, key audit): at most kvjson.MaxLimit,
// so that no caller has the switch read millions of records at once.
func queryLimit(r *http.Request) (int, error) {
	n, err := queryInt(r, "limit")
	if err != nil {
		return 0, err
	}
	if n > kvjson.MaxLimit {
		return 0, badRequest("query parameter limit=%d: at most %d at a time (narrow the query: since, after, target, status)", n, kvjson.MaxLimit)
	}
	return n, nil
}

func queryTime(r *http.Request, name string) (time.Time, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := registry.ParseSince(s, time.Now())
	if err != nil {
		return time.Time{}, badRequest("query parameter %s=%q: %v", name, s, err)
	}
	return t, nil
}

// --- merchants ---

func (g *registryAPI) listMerchants(r *http.Request, _ admin.Principal) (any, error) {
	q := r.URL.Query()
	status, err := enumParam(r, "status", registry.MerchantPending, registry.MerchantActive, registry.MerchantFrozen, registry.MerchantClosed)
	if err != nil {
		return nil, err
	}
	ms := g.reg.Merchants(registry.MerchantFilter{Status: status, Region: q.Get("region"), Tier: q.Get("tier")})
	if ms == nil {
		ms = []*registry.Merchant{}
	}
	return ms, nil
}

func (g *registryAPI) getMerchant(r *http.Request, _ admin.Principal) (any, error) {
	m, ok := g.reg.Merchant(r.PathValue("id"))
	if !ok {
		return nil, errorf(http.StatusNotFound, "merchant %s does not exist", r.PathValue("id"))
	}
	return m, nil
}

// request asks for change c as p: 202 with the pending change.
func (g *registryAPI) request(r *http.Request, p admin.Principal, c registry.Change) (any, error) {
	obj := "change " + string(c.Op)
	if c.Target != "" {
		obj += " " + c.Target
	}
	maskText(r, p, obj, "reason", &c.Reason)
	ch, err := g.reg.RequestChange(actor(p), c)
	if err != nil {
		return nil, err
	}
	return withStatus(http.StatusAccepted, ch), nil
}

func (g *registryAPI) registerMerchant(r *http.Request, p admin.Principal) (any, error) {
	var body registry.MerchantRequest
	if err := readBody(r, &body); err != nil {
		return nil, err
	}
	m := body.Merchant
	return g.request(r, p, registry.Change{Op: registry.OpMerchantRegister, Merchant: &m, Reason: body.Reason})
}

func (g *registryAPI) changeMerchant(r *http.Request, p admin.Principal) (any, error) {
	var body registry.MerchantPatchRequest
	if err := readBody(r, &body); err != nil {
		return nil, err
	}
	patch := body.MerchantPatch
	return g.request(r, p, registry.Change{Op: registry.OpMerchantChange, Target: r.PathValue("id"), MerchantPatch: &patch, Reason: body.Reason})
}

func (g *registryAPI) merchantAction(r *http.Request, p admin.Principal) (any, error) {
	return g.action(r, p, "merchant", map[string]registry.Op{"activate": registry.OpMerchantActivate, "freeze": registry.OpMerchantFreeze,
		"unfreeze": registry.OpMerchantUnfreeze, "close": registry.OpMerchantClose}, "activate, freeze, unfreeze or close")
}

// action requests the lifecycle change named by the path's action for the path's id.
func (g *registryAPI) action(r *http.Request, p admin.Principal, kind string, ops map[string]registry.Op, want string) (any, error) {
	o, ok := ops[r.PathValue("action")]
	if !ok {
		return nil, errorf(http.StatusNotFound, "%s action %q: want %s", kind, r.PathValue("action"), want)
	}
	var body registry.ReasonRequest
	if err := readBody(r, &body); err != nil {
		return nil, err
	}
	return g.request(r, p, registry.Change{Op: o, Target: r.PathValue("id"), Reason: body.Text()})
}

// --- terminals ---

func (g *registryAPI) view(t *registry.Terminal) registry.TerminalView {
	v := registry.TerminalView{Terminal: t}
	if ls, ok := g.reg.LastSeen(t.ID); ok {
		v.LastSeen = &ls
	}
	return v
}

func (g *registryAPI) listTerminals(r *http.Request, _ admin.Principal) (any, error) {
	q := r.URL.Query()
	limit, err := queryInt(r, "limit")
	if err != nil {
		return nil, err
	}
	status, err := enumParam(r, "status", registry.TerminalPending, registry.TerminalActive, registry.TerminalSuspended, registry.TerminalClosed)
	if err != nil {
		return nil, err
	}
	kind, err := enumParam(r, "kind", registry.KindPOS, registry.KindMPOS, registry.KindSoftPOS)
	if err != nil {
		return nil, err
	}
	ts := g.reg.Terminals(registry.TerminalFilter{MerchantID: q.Get("merchant"), Status: status, Kind: kind})
	out := make([]registry.TerminalView, 0, len(ts))
	after := q.Get("after")
	for _, t := range ts {
		if after != "" && t.ID <= after {
			continue
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		out = append(out, g.view(t))
	}
	return out, nil
}

func (g *registryAPI) getTerminal(r *http.Request, _ admin.Principal) (any, error) {
	t, ok := g.reg.Terminal(r.PathValue("id"))
	if !ok {
		return nil, errorf(http.StatusNotFound, "terminal %s does not exist", r.PathValue("id"))
	}
	return g.view(t), nil
}

func (g *registryAPI) registerTerminal(r *http.Request, p admin.Principal) (any, error) {
	var body registry.TerminalRequest
	if err := readBody(r, &body); err != nil {
		return nil, err
	}
	t := body.Terminal
	return g.request(r, p, registry.Change{Op: registry.OpTerminalRegister, Terminal: &t, Reason: body.Reason})
}

func (g *registryAPI) changeTerminal(r *http.Request, p admin.Principal) (any, error) {
	var body registry.TerminalPatchRequest
	if err := readBody(r, &body); err != nil {
		return nil, err
	}
	patch := body.TerminalPatch
	return g.request(r, p, registry.Change{Op: registry.OpTerminalChange, Target: r.PathValue("id"), TerminalPatch: &patch, Reason: body.Reason})
}

func (g *registryAPI) terminalAction(r *http.Request, p admin.Principal) (any, error) {
	return g.action(r, p, "terminal", map[string]registry.Op{"activate": registry.OpTerminalActivate, "suspend": registry.OpTerminalSuspend,
		"resume": registry.OpTerminalResume, "close": registry.OpTerminalClose}, "activate, suspend, resume or close")
}

// maxCSVBody is the largest text/csv import body: the largest file an import
// reads.
const maxCSVBody = registry.MaxImportBytes

// importTerminals and importMerchants take the CLI's JSON ImportRequest, or a
// text/csv body (at most maxCSVBody) with ?reason= and ?dry_run=1.
func (g *registryAPI) importTerminals(r *http.Request, p admin.Principal) (any, error) {
	return importCSV(r, p, g.reg.ImportTerminals)
}

func (g *registryAPI) importMerchants(r *http.Request, p admin.Principal) (any, error) {
	return importCSV(r, p, g.reg.ImportMerchants)
}

func importCSV(r *http.Request, p admin.Principal, imp func(registry.Actor, io.Reader, string, bool) (*registry.ImportReport, error)) (any, error) {
	var in registry.ImportRequest
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		if err := readBody(r, &in); err != nil {
			return nil, err
		}
	} else {
		raw, err := io.ReadAll(io.LimitReader(r.Body, maxCSVBody+1))
		if err != nil {
			return nil, badRequest("read CSV body: %v", err)
		}
		if len(raw) > maxCSVBody {
			// Refused whole: cut short, its last rows would be dropped, or the
			// last one imported with a field cut in two.
			return nil, WithStatus(http.StatusRequestEntityTooLarge, fmt.Errorf("CSV body over %d MB: split the import", maxCSVBody>>20))
		}
		in.CSV = string(raw)
		in.Reason = r.URL.Query().Get("reason")
		in.DryRun, _ = strconv.ParseBool(r.URL.Query().Get("dry_run"))
	}
	maskText(r, p, "import", "reason", &in.Reason)
	rep, err := imp(actor(p), strings.NewReader(in.CSV), in.Reason, in.DryRun)
	if err != nil {
		return nil, err
	}
	if rep.Change != nil {
		return withStatus(http.StatusAccepted, rep), nil
	}
	return rep, nil
}

// --- changes ---

func (g *registryAPI) listChanges(r *http.Request, _ admin.Principal) (any, error) {
	limit, err := queryLimit(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	status, err := enumParam(r, "status", registry.ChangePending, registry.ChangeApproved, registry.ChangeRejected, registry.ChangeCancelled, registry.ChangeExpired)
	if err != nil {
		return nil, err
	}
	cs, err := g.reg.Changes(registry.ChangeFilter{Status: status, Target: q.Get("target"), Limit: limit})
	if err != nil {
		return nil, err
	}
	if cs == nil {
		cs = []*registry.Change{}
	}
	return cs, nil
}

func (g *registryAPI) getChange(r *http.Request, _ admin.Principal) (any, error) {
	return g.reg.GetChange(r.PathValue("id"))
}

func (g *registryAPI) review(r *http.Request, p admin.Principal, fn func(registry.Actor, string, string) (*registry.Change, error)) (any, error) {
	var body registry.ReasonRequest
	if err := readBody(r, &body); err != nil {
		return nil, err
	}
	text := body.Text()
	maskText(r, p, "change "+r.PathValue("id"), "review note", &text)
	return fn(actor(p), r.PathValue("id"), text)
}

func (g *registryAPI) approve(r *http.Request, p admin.Principal) (any, error) {
	return g.review(r, p, g.reg.Approve)
}

func (g *registryAPI) reject(r *http.Request, p admin.Principal) (any, error) {
	return g.review(r, p, g.reg.Reject)
}

func (g *registryAPI) cancel(r *http.Request, p admin.Principal) (any, error) {
	return g.review(r, p, g.reg.Cancel)
}

// --- oplog ---

func (g *registryAPI) oplog(r *http.Request, _ admin.Principal) (any, error) {
	since, err := queryTime(r, "since")
	if err != nil {
		return nil, err
	}
	limit, err := queryLimit(r)
	if err != nil {
		return nil, err
	}
	after, err := queryInt(r, "after")
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	es, err := g.reg.Oplog(registry.OplogFilter{Since: since, After: uint64(after), Target: q.Get("target"), Actor: q.Get("actor"), Action: q.Get("action"), Limit: limit})
	if err != nil {
		return nil, err
	}
	if es == nil {
		es = []registry.OpEntry{}
	}
	return es, nil
}

func (g *registryAPI) verifyOplog(_ *http.Request, _ admin.Principal) (any, error) {
	n, err := g.reg.VerifyOplog()
	res := registry.VerifyResult{OK: err == nil, Entries: n}
	if err != nil {
		res.Error = err.Error()
	}
	return res, nil
}

// --- incidents ---

func (g *registryAPI) listIncidents(r *http.Request, _ admin.Principal) (any, error) {
	since, err := queryTime(r, "since")
	if err != nil {
		return nil, err
	}
	limit, err := queryLimit(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	status, err := enumParam(r, "status", registry.IncidentOpen, registry.IncidentAcknowledged, registry.IncidentResolved)
	if err != nil {
		return nil, err
	}
	is, err := g.reg.Incidents(registry.IncidentFilter{Status: status, TerminalID: q.Get("terminal"),
		MerchantID: q.Get("merchant"), Reason: registry.Reason(q.Get("reason")), Since: since, Limit: limit})
	if err != nil {
		return nil, err
	}
	if is == nil {
		is = []*registry.Incident{}
	}
	return is, nil
}

func (g *registryAPI) getIncident(r *http.Request, _ admin.Principal) (any, error) {
	return g.reg.GetIncident(r.PathValue("id"))
}

func (g *registryAPI) incidentAction(r *http.Request, p admin.Principal) (any, error) {
	var fn func(registry.Actor, string, string) (*registry.Incident, error)
	switch r.PathValue("action") {
	case "ack", "acknowledge":
		fn = g.reg.AcknowledgeIncident
	case "resolve":
		fn = g.reg.ResolveIncident
	default:
		return nil, errorf(http.StatusNotFound, "incident action %q: want ack or resolve", r.PathValue("action"))
	}
	var body registry.ReasonRequest
	if err := readBody(r, &body); err != nil {
		return nil, err
	}
	text := body.Text()
	maskText(r, p, "incident "+r.PathValue("id"), "note", &text)
	return fn(actor(p), r.PathValue("id"), text)
}

// --- alerts ---

func (g *registryAPI) listAlerts(r *http.Request, _ admin.Principal) (any, error) {
	limit, err := queryLimit(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	status, err := enumParam(r, "status", registry.AlertOpen, registry.AlertAcknowledged, registry.AlertRecovered)
	if err != nil {
		return nil, err
	}
	as, err := g.reg.Alerts(registry.AlertFilterQuery{Status: status, RuleID: q.Get("rule"), TerminalID: q.Get("terminal"), Limit: limit})
	if err != nil {
		return nil, err
	}
	if as == nil {
		as = []*registry.Alert{}
	}
	return as, nil
}

func (g *registryAPI) getAlert(r *http.Request, _ admin.Principal) (any, error) {
	return g.reg.GetAlert(r.PathValue("id"))
}

func (g *registryAPI) ackAlert(r *http.Request, p admin.Principal) (any, error) {
	var body registry.ReasonRequest
	if err := readBody(r, &body); err != nil {
		return nil, err
	}
	text := body.Text()
	maskText(r, p, "alert "+r.PathValue("id"), "note", &text)
	return g.reg.AcknowledgeAlert(actor(p), r.PathValue("id"), text)
}

func (g *registryAPI) listRules(_ *http.Request, _ admin.Principal) (any, error) {
	return g.reg.AlertRules(), nil
}

// alertRuleBody is the body of POST and PUT /api/v1/alert-rules: a rule whose
// threshold, when left out, is the default (an explicit zero is refused), and the
// reason of the change request a rule that suspends terminals becomes.
type alertRuleBody struct {
	registry.AlertRule
	Threshold *registry.Duration `json:"threshold,omitempty"`
	Reason    string             `json:"reason,omitempty"`
}

func (g *registryAPI) putRule(r *http.Request, p admin.Principal) (any, error) {
	var body alertRuleBody
	if err := readBody(r, &body); err != nil {
		return nil, err
	}
	ar := body.AlertRule
	ar.Threshold = registry.Duration(registry.DefaultOfflineThreshold)
	if body.Threshold != nil {
		ar.Threshold = *body.Threshold
	}
	if id := r.PathValue("id"); id != "" {
		if ar.ID != "" && ar.ID != id {
			return nil, badRequest("alert rule ID %q in the body differs from %q in the path", ar.ID, id)
		}
		ar.ID = id
	}
	if g.reg.AlertRuleNeedsChange(&ar) {
		// Reviewed like the suspensions it will make (or stop): 202 with the change.
		return g.request(r, p, registry.Change{Op: registry.OpAlertRulePut, AlertRule: &ar, Reason: body.Reason})
	}
	return g.reg.PutAlertRule(actor(p), ar)
}

func (g *registryAPI) deleteRule(r *http.Request, p admin.Principal) (any, error) {
	if err := g.reg.DeleteAlertRule(actor(p), r.PathValue("id")); err != nil {
		return nil, err
	}
	return map[string]string{"deleted": r.PathValue("id")}, nil
}

func (g *registryAPI) reasons(_ *http.Request, _ admin.Principal) (any, error) {
	out := make([]registry.ReasonInfo, 0, len(registry.Reasons))
	for _, x := range registry.Reasons {
		out = append(out, registry.ReasonInfo{Reason: x.Reason, ResponseCode: x.ResponseCode, Incident: x.Incident})
	}
	return out, nil
}
