package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/registry"
)

// MerchantRisk is what the merchant risk routes ask the server: the ratings, the
// reports and the merchants' notice webhooks (the server's merchantrisk and notify
// services). Errors wrapping NotFound or Invalid (see MerchantRiskErrors) answer
// 404 and 400.
type MerchantRisk interface {
	Rating(ctx context.Context, merchant string) (any, error)
	PinRating(ctx context.Context, merchant, grade, reason, by string, days int) (any, error)
	UnpinRating(ctx context.Context, merchant, reason, by string) (any, error)
	RecomputeRatings(ctx context.Context) (any, error)
	Report(ctx context.Context, merchant string, days int) (any, error)
	// SetWebhook requests the merchant's webhook (or its removal) for review; it
	// returns the change (202).
	SetWebhook(ctx context.Context, merchant string, w WebhookRequest, by registry.Actor) (any, error)
	Notices(ctx context.Context, merchant string, limit int) (any, error)
}

// MerchantRiskErrors are the sentinel errors MerchantRisk wraps.
type MerchantRiskErrors struct{ NotFound, Invalid error }

// WebhookRequest requests (or, with an empty URL, requests the removal of) a
// merchant's webhook, a change for review.
type WebhookRequest struct {
	URL    string `json:"url"`
	Secret string `json:"secret"` // HMAC-SHA256 key of the signatures, at least 16 bytes
	Reason string `json:"reason"`
}

// merchantRiskRoutes:
//
//	GET    /api/v1/merchants/{id}/rating         the rating in force, its score and facts (readers)
//	POST   /api/v1/merchants/{id}/rating/pin     pin a grade {grade, reason, days} (analysts)
//	DELETE /api/v1/merchants/{id}/rating/pin     remove the pin {reason} (analysts)
//	POST   /api/v1/risk/ratings/recompute        run the daily computation now (operators)
//	GET    /api/v1/merchants/{id}/report?days=N  counts, amounts, approval rate, hourly profile (readers)
//	PUT    /api/v1/merchants/{id}/webhook        request the merchant's notice webhook, for review (operators; 202, a change)
//	GET    /api/v1/merchants/{id}/notices        the notices and their delivery log (readers)
func (a *api) merchantRiskRoutes() {
	m := a.o.MerchantRisk
	e := a.o.MerchantRiskErrors
	st := kindStatus(e.NotFound, e.Invalid, errNever, errNever)
	analysts := []admin.Role{admin.RoleAnalyst}
	operators := []admin.Role{admin.RoleOperator}
	a.route("GET /api/v1/merchants/{id}/rating", readers, st, func(r *http.Request, _ admin.Principal) (any, error) {
		return m.Rating(r.Context(), r.PathValue("id"))
	})
	a.route("POST /api/v1/merchants/{id}/rating/pin", analysts, st, func(r *http.Request, p admin.Principal) (any, error) {
		var b struct {
			Grade  string `json:"grade"`
			Reason string `json:"reason"`
			Days   int    `json:"days"`
		}
		if err := readBody(r, &b); err != nil {
			return nil, err
		}
		maskText(r, p, "merchant rating "+r.PathValue("id"), "reason", &b.Reason)
		return m.PinRating(r.Context(), r.PathValue("id"), b.Grade, b.Reason, p.Name, b.Days)
	})
	a.route("DELETE /api/v1/merchants/{id}/rating/pin", analysts, st, func(r *http.Request, p admin.Principal) (any, error) {
		var b struct {
			Reason string `json:"reason"`
		}
		if err := readBody(r, &b); err != nil {
			return nil, err
		}
		maskText(r, p, "merchant rating "+r.PathValue("id"), "reason", &b.Reason)
		return m.UnpinRating(r.Context(), r.PathValue("id"), b.Reason, p.Name)
	})
	a.route("POST /api/v1/risk/ratings/recompute", operators, st, func(r *http.Request, _ admin.Principal) (any, error) {
		return m.RecomputeRatings(r.Context())
	})
	a.route("GET /api/v1/merchants/{id}/report", readers, st, func(r *http.Request, _ admin.Principal) (any, error) {
		days, err := queryInt(r, "days")
		if err != nil {
			return nil, err
		}
		if days == 0 {
			days = 1
		}
		return m.Report(r.Context(), r.PathValue("id"), days)
	})
	// A webhook is a registry change: the registry's refusals (nothing to change,
	// a bad reason 400; another change pending 409; not an operator 403) answer as
	// on the registry's routes. Before, they were a 500.
	hook := func(err error) int {
		if code := registryStatus(err); code != http.StatusInternalServerError {
			return code
		}
		return st(err)
	}
	a.route("PUT /api/v1/merchants/{id}/webhook", operators, hook, func(r *http.Request, p admin.Principal) (any, error) {
		var b WebhookRequest
		if err := readBody(r, &b); err != nil {
			return nil, err
		}
		maskText(r, p, "change webhook.put "+r.PathValue("id"), "reason", &b.Reason)
		return requested(m.SetWebhook(r.Context(), r.PathValue("id"), b, actor(p)))
	})
	a.route("GET /api/v1/merchants/{id}/notices", readers, st, func(r *http.Request, _ admin.Principal) (any, error) {
		n, err := queryInt(r, "limit")
		if err != nil {
			return nil, err
		}
		return m.Notices(r.Context(), r.PathValue("id"), n)
	})
}

// errNever is a kind of error no library returns (for kindStatus).
var errNever = errors.New("never returned")
