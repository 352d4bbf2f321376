package console

import (
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/registry"
)

// The incidents page: binding and integrity incidents (relocation, swapped
// terminals, device or SIM mismatch, confirmed fraud), offline alerts and the
// alert rules, with the same registry calls as the API's routes.

func (c *Console) incidents(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	incs, err := c.o.Registry.Incidents(registry.IncidentFilter{Status: registry.IncidentStatus(q.Get("status")), TerminalID: q.Get("terminal"),
		MerchantID: q.Get("merchant"), Reason: registry.Reason(q.Get("reason")), Limit: 200})
	if err != nil {
		c.renderError(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	sort.Slice(incs, func(i, j int) bool { return incs[i].Seq > incs[j].Seq })
	alerts, err := c.o.Registry.Alerts(registry.AlertFilterQuery{Status: registry.AlertStatus(q.Get("alert_status")), Limit: 200})
	if err != nil {
		c.renderError(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	sort.Slice(alerts, func(i, j int) bool { return alerts[i].Seq > alerts[j].Seq })
	var reasons []string
	for _, x := range registry.Reasons {
		if x.Incident {
			reasons = append(reasons, string(x.Reason))
		}
	}
	var edit *registry.AlertRule
	for _, ar := range c.o.Registry.AlertRules() {
		if ar.ID == q.Get("edit") {
			edit = &ar
		}
	}
	c.render(w, r, s, "incidents", map[string]any{"Incidents": incs, "Alerts": alerts, "Rules": c.o.Registry.AlertRules(), "Edit": edit,
		"Reasons": reasons, "Status": q.Get("status"), "Reason": q.Get("reason"), "Terminal": q.Get("terminal"), "Warnings": c.stats.warnings()})
}

func (c *Console) incidentAction(w http.ResponseWriter, r *http.Request, s *session) {
	id, note := r.PathValue("id"), r.PostFormValue("note")
	var err error
	switch r.PathValue("action") {
	case "ack":
		_, err = c.o.Registry.AcknowledgeIncident(s.actor(), id, note)
	case "resolve":
		_, err = c.o.Registry.ResolveIncident(s.actor(), id, note)
	default:
		c.renderError(w, r, s, http.StatusNotFound, "incident action "+r.PathValue("action")+": want ack or resolve")
		return
	}
	done(w, r, Prefix+"incidents", "saved", err)
}

func (c *Console) ackAlert(w http.ResponseWriter, r *http.Request, s *session) {
	_, err := c.o.Registry.AcknowledgeAlert(s.actor(), r.PathValue("id"), r.PostFormValue("note"))
	done(w, r, Prefix+"incidents", "saved", err)
}

// putAlertRule saves a rule from the form: its ID, description, threshold, the
// target filter (comma-separated merchants, regions, kinds) and actions (log,
// webhook URL, suspend). One that suspends terminals becomes a change for
// review, as in the API.
func (c *Console) putAlertRule(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostFormValue
	ar := registry.AlertRule{ID: strings.TrimSpace(f("id")), Description: f("description"), Disabled: f("disabled") == "on",
		Threshold: registry.Duration(registry.DefaultOfflineThreshold)}
	if th := strings.TrimSpace(f("threshold")); th != "" {
		d, err := time.ParseDuration(th)
		if err != nil {
			done(w, r, Prefix+"incidents", "", err)
			return
		}
		ar.Threshold = registry.Duration(d)
	}
	ar.Filter.Merchants = fields(f("merchants"))
	ar.Filter.Regions = fields(f("regions"))
	for _, k := range fields(f("kinds")) {
		ar.Filter.Kinds = append(ar.Filter.Kinds, registry.TerminalKind(k))
	}
	if f("log") == "on" {
		ar.Actions = append(ar.Actions, registry.AlertAction{Type: registry.ActionLog})
	}
	if u := strings.TrimSpace(f("webhook")); u != "" {
		ar.Actions = append(ar.Actions, registry.AlertAction{Type: registry.ActionWebhook, URL: u})
	}
	if f("suspend") == "on" {
		ar.Actions = append(ar.Actions, registry.AlertAction{Type: registry.ActionSuspend})
	}
	if c.o.Registry.AlertRuleNeedsChange(&ar) {
		ch, err := c.o.Registry.RequestChange(s.actor(), registry.Change{Op: registry.OpAlertRulePut, AlertRule: &ar, Reason: f("reason")})
		if err != nil {
			done(w, r, Prefix+"incidents", "", err)
			return
		}
		done(w, r, Prefix+"changes/"+ch.ID, "requested", nil)
		return
	}
	_, err := c.o.Registry.PutAlertRule(s.actor(), ar)
	done(w, r, Prefix+"incidents", "saved", err)
}

func (c *Console) deleteAlertRule(w http.ResponseWriter, r *http.Request, s *session) {
	err := c.o.Registry.DeleteAlertRule(s.actor(), r.PathValue("id"))
	done(w, r, Prefix+"incidents", "saved", err)
}

// fields splits a comma- or space-separated list.
func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}
