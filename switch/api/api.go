// Package api is the switch's admin HTTP API: every route of the admin port
// (registry, review cases, keys, risk rules and lists, journal, settlement,
// store-and-forward queue, zone key change, profiler) lives here, the way
// Prometheus keeps its HTTP API in web/api/v1 apart from the storage and rule
// engines it serves. The libraries it serves (registry, cases, keys, risk, journal)
// know nothing of HTTP: they expose Go methods and define the request and answer
// types of their routes; this package turns requests into calls and results into
// JSON. switch/admin holds what it builds on: bearer-token authentication with
// roles (admin.Authenticator) and the JSON helpers.
//
// # One handler style
//
// Every route is a function of one shape, handlerFunc:
//
//	func(r *http.Request, p admin.Principal) (any, error)
//
// registered with route(pattern, roles, fn), which wraps it in the one adapter:
//   - the caller needs a bearer token of one of the route's roles
//     (admin.Authenticator.Require: 401 without or with an unknown token, 403 for
//     another role; the admin role may do everything);
//   - the result is written as JSON with 200, or with the status of an answer made
//     by withStatus (201 created, 202 a change requested for review, 422 a refused
//     rule reload with its problems); a stream (the journal query's JSON lines)
//     writes itself;
//   - every answer the adapter serves says Cache-Control: no-store and
//     X-Content-Type-Options: nosniff (journal records, bindings, key inventories
//     and users are kept by no cache, and free text is read as JSON only);
//   - an error is written as {"error": "..."} with its status: an *Error carries
//     its own, the served library's error kinds map through the route group's
//     statusOf (registry.ErrNotFound 404, ErrInvalid 400, ErrConflict 409,
//     ErrForbidden 403, and likewise for cases, keys and the journal); anything
//     else is a 500, logged with the route and the principal.
//
// The profiler (net/http/pprof) is the one route that is not JSON: its handlers
// sit behind the same role check.
//
// # Paths
//
// Every route is /api/v1/{resource}[/{id}[/{action}]] (the risk engine's under
// /api/v1/risk/), except the profiler's, at Go's usual /debug/pprof/; see the route
// tables in registry.go, cases.go, keys.go, risk.go and switch.go.
// TestEveryRouteNeedsAToken holds every route to this.
//
// # Loggers (the switch's one convention)
//
// A component takes its zerolog.Logger as a value in the Logger field of its
// Options (the zero value logs nothing). Whoever wires it (server.New, OpenOffline)
// tags it once with log.With().Str("component", name).Logger(); a component
// neither makes its own logger nor tags itself (switch/server's package doc has the
// whole convention and its exceptions). This API logs as "api".
package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/risk/profile"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/apps"
	"github.com/switchyard/switchyard/switch/cases"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/listreview"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/saf"
	"github.com/switchyard/switchyard/switch/sched"
)

// Options says what the API serves. A nil store leaves its routes out (the
// offline --data mode has no queue, no issuer links and maybe no LMK).
type Options struct {
	// Auth checks the bearer tokens and their roles; required.
	Auth *admin.Authenticator
	// Logger receives the 500 answers (tag it with component=api).
	Logger zerolog.Logger

	// Registry serves merchants, terminals, changes, the oplog, incidents, alerts
	// and alert rules.
	Registry *registry.Registry
	// Cases serves the review cases.
	Cases *cases.Store
	// Keys and HSM serve key management; both or neither.
	Keys *keys.Store
	HSM  hsm.HSM
	// Risk serves the rules (nil: they answer 503, the engine runs only in the
	// switch); Lists the deny and allow lists (nil: Risk's).
	Risk  *risk.Engine
	Lists *risk.Lists
	// ListReview requests the list edits that need a second person's review
	// (allow-list additions, deny-list removals: switch/listreview). Nil: they
	// are refused (503).
	ListReview *listreview.Review
	// Journal serves the transaction journal; a date in its queries (from, to) is a
	// day of Location, the acquirer's zone (nil: UTC).
	Journal  *journal.Store
	Location *time.Location
	// Version is the switch's release (GET /api/v1/info); "" answers "dev".
	Version string
	// Settle builds the settlement report of a local day (YYYY-MM-DD; "": the
	// switch's yesterday, in its timezone); its errors are the caller's (400).
	Settle func(ctx context.Context, date string) (any, error)
	// SAF lists the store-and-forward queue's pending items of an issuer ("" all).
	SAF func(issuer string) (any, error)
	// SAFParked lists the advices parked out of the queue (saf.Options.ParkAfter)
	// of an issuer ("" all).
	SAFParked func(issuer string) (any, error)
	// SAFActions lists the records of the operators' actions on parked advices
	// as f selects them (GET /api/v1/saf/parked?state=resolved|requeued; its
	// errors wrapping saf.ErrParkedInvalid are 400). Nil: those states answer 404.
	SAFActions func(f saf.ActionFilter) (any, error)
	// SAFRequeue puts the parked advice id back in its issuer's queue as actor;
	// SAFResolve takes it out of the parked list for good, settled out of band by
	// actor with note (POST /api/v1/saf/parked/{id}/requeue and /resolve,
	// operators). Their errors wrap saf.ErrParkedNotFound (404),
	// saf.ErrParkedInvalid (400) or saf.ErrParkedConflict (409), or are made with
	// WithStatus.
	SAFRequeue func(ctx context.Context, id uint64, actor admin.Principal) (any, error)
	SAFResolve func(ctx context.Context, id uint64, actor admin.Principal, note string) (any, error)
	// CardHashKey returns the running switch's card hash key as a TR-31 block
	// under its LMK (keys.CardHashKeyBlock), audited as the actor in ctx (POST
	// /api/v1/keys/card-hash-key/export, admins); return errors made with
	// WithStatus for answers other than 500. Nil where the switch's configuration
	// is not at hand (the tools' --data mode), which answers 404.
	CardHashKey func(ctx context.Context) (any, error)
	// ZoneKeyChange gives an issuer a new zone PIN key as actor; return errors
	// made with WithStatus for answers other than 500.
	ZoneKeyChange func(ctx context.Context, issuer, actor string) (any, error)
	// ClusterStatus reports the cluster as this node sees it (the server
	// returns its cluster.Report); nil on a switch that runs alone, whose
	// GET /api/v1/cluster/status then answers 404 "not a cluster node".
	ClusterStatus func(ctx context.Context) (any, error)
	// ClusterCompact compacts the STATE stream's stores into snapshots now
	// (POST /api/v1/cluster/compact, admins); nil on a switch that runs alone,
	// which answers 404 "not a cluster node".
	ClusterCompact func(ctx context.Context) (any, error)
	// ClusterRemovePeer removes a server that left for good from JetStream's
	// meta group (POST /api/v1/cluster/peers/{server}/remove, admins), as actor;
	// nil on a switch that runs alone, which answers 404 "not a cluster node".
	// Return errors made with WithStatus for answers other than 500.
	ClusterRemovePeer func(ctx context.Context, server, actor string) (any, error)
	// ClusterImportState and ClusterImport read and extend the import of a stopped
	// single switch's journal into the cluster (GET and POST
	// /api/v1/cluster/import/journal, admins); nil on a switch that runs alone,
	// which answers 404 "not a cluster node". Return errors made with WithStatus for
	// answers other than 500.
	ClusterImportState func(ctx context.Context) (any, error)
	ClusterImport      func(ctx context.Context, body JournalImport) (any, error)
	// Profiles serve GET /api/v1/merchants/{id}/profile (with Registry: the
	// merchant's tier); nil leaves the route out.
	Profiles *profile.Set
	// RefreshProfiles recomputes the merchant profiles now (POST
	// /api/v1/risk/profiles/refresh, operators); nil leaves the route out.
	RefreshProfiles func(ctx context.Context) (any, error)
	// MerchantRisk serves the merchant ratings, reports and notice webhooks
	// (merchantrisk.go); nil leaves the routes out.
	MerchantRisk       MerchantRisk
	MerchantRiskErrors MerchantRiskErrors
	// Pprof serves the Go profiler under /debug/pprof/, to admins only unless
	// PprofOpen (demo mode, whose tokens are public anyway).
	Pprof, PprofOpen bool
	// Apps serves terminal application management (apps.go); nil leaves it out.
	Apps *apps.Manager
	// Tasks serves the scheduled tasks (apps.go); nil leaves them out.
	Tasks *sched.Scheduler
}

// New returns a mux that serves the API.
func New(o Options) *http.ServeMux {
	mux := http.NewServeMux()
	Register(mux, o)
	return mux
}

// Register adds the API's routes to mux.
func Register(mux *http.ServeMux, o Options) {
	a := &api{o: o, mux: mux}
	a.register()
}

func (a *api) register() {
	o := a.o
	if o.Registry != nil {
		a.registry()
		a.users()
	}
	if o.Cases != nil {
		a.cases()
	}
	if o.Keys != nil && o.HSM != nil {
		a.keys()
	}
	if o.Risk != nil || o.Lists != nil {
		a.risk()
	}
	if o.RefreshProfiles != nil {
		a.profileRoutes()
	}
	if o.Apps != nil {
		a.appRoutes()
	}
	if o.Tasks != nil {
		a.taskRoutes()
	}
	if o.MerchantRisk != nil {
		a.merchantRiskRoutes()
	}
	a.switchRoutes()
}

// DemoTokens returns the registry's public demo tokens as the authenticator's.
func DemoTokens() []admin.Token {
	var out []admin.Token
	for _, t := range registry.DemoTokens() {
		out = append(out, admin.Token{Token: t.Token, Principal: admin.Principal{Name: t.Name, Role: admin.Role(t.Role)}})
	}
	return out
}

type api struct {
	o        Options
	mux      *http.ServeMux
	patterns []string // what route registered, for the tests
	// ceremonyTimeout replaces ceremonyTimeout and ceremonyExpired is told of
	// each ceremony dropped at its timeout (the tests' NewWithCeremonyTimeout).
	ceremonyTimeout time.Duration
	ceremonyExpired func(what string)
}

// handlerFunc is the one shape of a route: it reads r, acts as p, and returns
// what to answer (see the package doc).
type handlerFunc func(r *http.Request, p admin.Principal) (any, error)

// The role sets of the routes. RoleAdmin is always allowed.
var (
	readers    = []admin.Role{admin.RoleOperator, admin.RoleReviewer, admin.RoleAnalyst}
	adminsOnly []admin.Role
)

// route registers fn for pattern, for callers of roles, its library errors mapped
// by statusOf.
func (a *api) route(pattern string, roles []admin.Role, statusOf func(error) int, fn handlerFunc) {
	a.patterns = append(a.patterns, pattern)
	a.mux.Handle(pattern, a.o.Auth.Require(a.adapt(statusOf, fn), roles...))
}

// adapt is the one adapter from handlerFunc to http.Handler.
func (a *api) adapt(statusOf func(error) int, fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The answers hold what no cache should keep (journal records with
		// their masked PANs and card hashes, terminal bindings, key
		// inventories, users) and data a client typed (merchant names), which
		// no browser should read as anything but JSON.
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		p, ok := admin.PrincipalFrom(r.Context())
		if !ok {
			admin.WriteError(w, http.StatusUnauthorized, errors.New("no authenticated principal"))
			return
		}
		r, m := a.withMasked(r)
		v, err := fn(r, p)
		m.setHeader(w)
		if err != nil {
			status := http.StatusInternalServerError
			var he *Error
			if errors.As(err, &he) {
				status = he.Status
			} else if statusOf != nil {
				status = statusOf(err)
			}
			if status == http.StatusInternalServerError {
				a.o.Logger.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Str("principal", p.Name).Msg("admin API error")
			}
			admin.WriteError(w, status, err)
			return
		}
		switch v := v.(type) {
		case answer:
			admin.WriteJSON(w, v.status, v.body)
		case stream:
			v(w)
		default:
			admin.WriteJSON(w, http.StatusOK, v)
		}
	})
}

// answer is a result written with a status other than 200.
type answer struct {
	status int
	body   any
}

func withStatus(status int, body any) answer { return answer{status, body} }

// stream is a result that writes itself (JSON lines).
type stream func(w http.ResponseWriter)

// Error is an error answered with its own status; its message is the error's.
type Error struct {
	Status int
	Err    error
}

// Error returns the message.
func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the error.
func (e *Error) Unwrap() error { return e.Err }

// WithStatus makes err answer with status, for the operations a caller injects
// through Options (the server's zone key change).
func WithStatus(status int, err error) error { return &Error{status, err} }

func errorf(status int, format string, args ...any) error {
	return &Error{status, fmt.Errorf(format, args...)}
}

func badRequest(format string, args ...any) error {
	return errorf(http.StatusBadRequest, format, args...)
}

// enumParam reads the query parameter name of r, a filter that must be empty or
// "all" (no filter: "" is returned) or one of valid; anything else is a 400 naming
// the values. Until 7 December 2026 a mistyped status (change list --status pendng)
// answered an empty list, which a reviewer reads as "nothing pending".
func enumParam[T ~string](r *http.Request, name string, valid ...T) (T, error) {
	v := r.URL.Query().Get(name)
	if v == "" || v == "all" {
		return "", nil
	}
	names := make([]string, len(valid))
	for i, x := range valid {
		if string(x) == v {
			return x, nil
		}
		names[i] = string(x)
	}
	return "", badRequest("query parameter %s=%q: want %s or all", name, v, strings.Join(names, ", "))
}

// kindStatus maps a library's four error kinds (not found, invalid, conflict,
// forbidden) to their statuses.
func kindStatus(notFound, invalid, conflict, forbidden error) func(error) int {
	return func(err error) int {
		switch {
		case errors.Is(err, notFound):
			return http.StatusNotFound
		case errors.Is(err, invalid):
			return http.StatusBadRequest
		case errors.Is(err, conflict):
			return http.StatusConflict
		case errors.Is(err, forbidden):
			return http.StatusForbidden
		}
		return http.StatusInternalServerError
	}
}
