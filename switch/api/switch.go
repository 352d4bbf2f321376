package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/saf"
)

// The switch's own routes, each served when its Options field is set: operators,
// analysts and reviewers read; the zone key change and the profiler take an admin.
//
//	GET  /api/v1/info                                       the switch's release and timezone (Info)
//	GET  /api/v1/journal?tid=&mid=&rrn=&from=&to=&limit=   records as JSON lines
//	GET  /api/v1/journal/{rrn}                              one record
//	GET  /api/v1/settlement[?date=YYYY-MM-DD]               the day's settlement report (default: the switch's yesterday)
//	GET  /api/v1/saf[?issuer=]                              store-and-forward items pending
//	GET  /api/v1/saf/parked[?issuer=]                       advices parked out of the queue (saf.park_after)
//	GET  /api/v1/saf/parked?state=resolved|requeued[&issuer=&after=&limit=]  the operators' actions on them, by id
//	POST /api/v1/saf/parked/{id}/requeue                    put a parked advice back in its queue, as a repeat (operators)
//	POST /api/v1/saf/parked/{id}/resolve                    {"note": "..."}: settled with the issuer out of band (operators)
//	POST /api/v1/issuers/{id}/key-change                    a new zone PIN key for an issuer
//	GET  /api/v1/cluster/status                             the cluster: nodes, streams, leases (404 alone)
//	POST /api/v1/cluster/compact                            compact the shared stores into snapshots now (404 alone)
//	POST /api/v1/cluster/peers/{server}/remove              remove a server that left for good from JetStream's meta group (404 alone)
//	GET  /api/v1/cluster/import/journal                     how far a single switch's journal is imported (404 alone)
//	POST /api/v1/cluster/import/journal                     import more of it: JournalImport (404 alone)
//	GET  /debug/pprof/...                                   the Go profiler
func (a *api) switchRoutes() {
	o := a.o
	// Always served: the CLI reads the switch's zone here to read dates as its days.
	a.route("GET /api/v1/info", readers, nil, func(*http.Request, admin.Principal) (any, error) {
		return InfoOf(o), nil
	})
	if o.Journal != nil {
		g := journalAPI{o.Journal, o.Location}
		a.route("GET /api/v1/journal", readers, nil, g.query)
		a.route("GET /api/v1/journal/{rrn}", readers, nil, g.get)
	}
	if o.Settle != nil {
		a.route("GET /api/v1/settlement", readers, nil, func(r *http.Request, _ admin.Principal) (any, error) {
			rep, err := o.Settle(r.Context(), r.URL.Query().Get("date"))
			if he := (*Error)(nil); err != nil && !errors.As(err, &he) {
				return nil, WithStatus(http.StatusBadRequest, err)
			}
			if err != nil {
				return nil, err // with the status Settle gave it
			}
			return rep, nil
		})
	}
	if o.SAF != nil {
		a.route("GET /api/v1/saf", readers, nil, func(r *http.Request, _ admin.Principal) (any, error) {
			return o.SAF(r.URL.Query().Get("issuer"))
		})
	}
	if o.SAFParked != nil {
		a.route("GET /api/v1/saf/parked", readers, kindStatus(nil, saf.ErrParkedInvalid, nil, nil), a.listParked)
	}
	if o.SAFRequeue != nil && o.SAFResolve != nil {
		a.parkedRoutes()
	}
	if o.ZoneKeyChange != nil {
		a.route("POST /api/v1/issuers/{id}/key-change", adminsOnly, nil, func(r *http.Request, p admin.Principal) (any, error) {
			return o.ZoneKeyChange(r.Context(), r.PathValue("id"), p.Name)
		})
	}
	// Always served, so that a switch that runs alone says so rather than
	// answering the mux's bare 404.
	a.route("GET /api/v1/cluster/status", readers, nil, func(r *http.Request, _ admin.Principal) (any, error) {
		if o.ClusterStatus == nil {
			return nil, ErrNotCluster
		}
		return o.ClusterStatus(r.Context())
	})
	a.route("POST /api/v1/cluster/compact", adminsOnly, nil, func(r *http.Request, _ admin.Principal) (any, error) {
		if o.ClusterCompact == nil {
			return nil, ErrNotCluster
		}
		return o.ClusterCompact(r.Context())
	})
	a.route("POST /api/v1/cluster/peers/{server}/remove", adminsOnly, nil, func(r *http.Request, p admin.Principal) (any, error) {
		if o.ClusterRemovePeer == nil {
			return nil, ErrNotCluster
		}
		return o.ClusterRemovePeer(r.Context(), r.PathValue("server"), p.Name)
	})
	a.route("GET /api/v1/cluster/import/journal", adminsOnly, nil, func(r *http.Request, _ admin.Principal) (any, error) {
		if o.ClusterImportState == nil {
			return nil, ErrNotCluster
		}
		return o.ClusterImportState(r.Context())
	})
	a.route("POST /api/v1/cluster/import/journal", adminsOnly, nil, func(r *http.Request, _ admin.Principal) (any, error) {
		if o.ClusterImport == nil {
			return nil, ErrNotCluster
		}
		var body JournalImport
		if err := readBody(r, &body); err != nil {
			return nil, err
		}
		return o.ClusterImport(r.Context(), body)
	})
	if o.Pprof {
		a.pprof()
	}
}

// listParked answers GET /api/v1/saf/parked: the advices parked now (state "" or
// parked), or the records of those resolved or requeued (state resolved, requeued:
// SAFActions, paged by after, the last id of the page before, and limit).
func (a *api) listParked(r *http.Request, _ admin.Principal) (any, error) {
	q := r.URL.Query()
	f := saf.ActionFilter{Issuer: q.Get("issuer")}
	switch st := q.Get("state"); st {
	case "", "parked":
		return a.o.SAFParked(f.Issuer)
	case "resolved":
		f.Action = saf.ActionResolve
	case "requeued":
		f.Action = saf.ActionRequeue
	default:
		return nil, badRequest("query parameter state=%q: want parked (the default), resolved or requeued", st)
	}
	if a.o.SAFActions == nil {
		return nil, WithStatus(http.StatusNotFound, errors.New("the records of the actions on parked advices are not served here"))
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return nil, err
	}
	after, err := strconv.ParseUint(q.Get("after"), 10, 64)
	if err != nil && q.Get("after") != "" {
		return nil, badRequest("query parameter after=%q: want the last id of the page before", q.Get("after"))
	}
	f.After, f.Limit = after, limit
	return a.o.SAFActions(f)
}

// ResolveParked is the body of POST /api/v1/saf/parked/{id}/resolve.
type ResolveParked struct {
	// Note says how the advice was settled with the issuer (required; card numbers
	// in it are masked).
	Note string `json:"note"`
}

// parkedRoutes serves the operators' actions on the parked advices: money-moving,
// each recorded in the oplog with its actor (and the resolve's note) by the server.
func (a *api) parkedRoutes() {
	o := a.o
	operators := []admin.Role{admin.RoleOperator}
	statusOf := kindStatus(saf.ErrParkedNotFound, saf.ErrParkedInvalid, saf.ErrParkedConflict, nil)
	id := func(r *http.Request) (uint64, error) {
		n, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
		if err != nil || n == 0 {
			return 0, badRequest("parked advice id %q: want its sequence number, as GET /api/v1/saf/parked lists it", r.PathValue("id"))
		}
		return n, nil
	}
	a.route("POST /api/v1/saf/parked/{id}/requeue", operators, statusOf, func(r *http.Request, p admin.Principal) (any, error) {
		n, err := id(r)
		if err != nil {
			return nil, err
		}
		return o.SAFRequeue(r.Context(), n, p)
	})
	a.route("POST /api/v1/saf/parked/{id}/resolve", operators, statusOf, func(r *http.Request, p admin.Principal) (any, error) {
		n, err := id(r)
		if err != nil {
			return nil, err
		}
		var req ResolveParked
		if err := readBody(r, &req); err != nil {
			return nil, err
		}
		if strings.TrimSpace(req.Note) == "" {
			return nil, badRequest("resolve parked advice %d: a note is required: how it was settled with the issuer", n)
		}
		if err := noteError("note", req.Note); err != nil {
			return nil, err
		}
		maskText(r, p, "parked advice "+r.PathValue("id"), "note", &req.Note)
		return o.SAFResolve(r.Context(), n, p, req.Note)
	})
}

// JournalImport is the body of POST /api/v1/cluster/import/journal: part of a stopped
// single switch's journal, its terminals' last batch closes and records in ascending
// RRN order after the last one imported (at most 8 MB of JSON a request).
type JournalImport struct {
	// Source identifies the single switch imported (the tool keeps a random one
	// in its data directory): an import goes on only from the same switch.
	Source string `json:"source"`
	// After is the last RRN imported as the caller last read it (GET, or the
	// previous POST's last_rrn; "" before the first): when the import stands
	// elsewhere, another import moved it, and the request is refused (409).
	After  string        `json:"after"`
	Closes []ImportClose `json:"closes,omitempty"`
	// Records are journal records in their binary form (journal.Record.AppendBinary,
	// base64 in JSON): what the journal stores, field for field.
	Records [][]byte `json:"records,omitempty"`
}

// ImportClose is a terminal's last batch close in a JournalImport.
type ImportClose struct {
	TID string    `json:"tid"`
	At  time.Time `json:"at"`
}

// Info is the answer of GET /api/v1/info: what a client needs to know of the switch
// to talk to it in its terms.
type Info struct {
	// Version is the switch's release ("dev" for a build without one).
	Version string `json:"version"`
	// Timezone is the switch's configured timezone (IANA name): the acquirer's
	// days (settlement, rule hours without timezone:, the journal's dates) are
	// its days, and the CLI reads dates given without a zone in it.
	Timezone string `json:"timezone"`
}

// InfoOf is the Info o serves.
func InfoOf(o Options) Info {
	in := Info{Version: o.Version, Timezone: "UTC"}
	if in.Version == "" {
		in.Version = "dev"
	}
	if o.Location != nil {
		in.Timezone = o.Location.String()
	}
	return in
}

// ErrNotCluster answers GET /api/v1/cluster/status on a switch that runs alone.
var ErrNotCluster = WithStatus(http.StatusNotFound, errors.New("not a cluster node: this switch runs alone (no cluster: section in its configuration)"))

type journalAPI struct {
	j   *journal.Store
	loc *time.Location // the acquirer's zone: a date in a query is one of its days
}

func (g journalAPI) get(r *http.Request, _ admin.Principal) (any, error) {
	rec, err := g.j.Get(r.PathValue("rrn"))
	if errors.Is(err, journal.ErrNotFound) {
		return nil, WithStatus(http.StatusNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// query streams the matching records as JSON lines; an error after the first line
// is the last line, {"error": "..."}.
func (g journalAPI) query(r *http.Request, _ admin.Principal) (any, error) {
	q, err := QueryFromValues(r.URL.Query().Get, time.Now(), g.loc)
	if err != nil {
		return nil, WithStatus(http.StatusBadRequest, err)
	}
	return stream(func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		err := g.j.Scan(r.Context(), q, func(rec *journal.Record) bool { return enc.Encode(rec) == nil })
		if recs, rest := journal.Unreadables(err); recs != nil && rest == nil {
			// Every other record was sent: the last line names those skipped.
			_ = enc.Encode(UnreadableLine{Error: carddata.MaskField(err.Error()), Unreadable: recs})
		} else if err != nil {
			_ = enc.Encode(admin.ErrorBody{Error: carddata.MaskField(err.Error())})
		}
	}), nil
}

// UnreadableLine is the last line of a journal query's answer that went past
// records it could not read (their frames in the log damaged), after every other
// record: an error line (admin.ErrorBody's "error") that names them. Any other
// failure ends the answer with a plain error line.
type UnreadableLine struct {
	Error      string               `json:"error"`
	Unreadable []journal.Unreadable `json:"unreadable"`
}

// QueryFromValues builds a journal query from named values (tid, mid, rrn, from, to,
// limit); a date in from or to is a day of loc, the acquirer's zone.
func QueryFromValues(get func(string) string, now time.Time, loc *time.Location) (journal.Query, error) {
	q := journal.Query{TID: get("tid"), MID: get("mid"), RRN: get("rrn")}
	var err error
	if q.From, err = journal.ParseTime(get("from"), now, loc); err != nil {
		return q, err
	}
	if q.To, err = journal.ParseTime(get("to"), now, loc); err != nil {
		return q, err
	}
	if l := get("limit"); l != "" {
		if q.Limit, err = strconv.Atoi(l); err != nil || q.Limit < 0 {
			return q, errors.New("limit: not a non-negative number")
		}
	}
	return q, nil
}

// pprof serves the Go profiler under /debug/pprof/. A profile or heap dump of the
// process that holds the LMK and the working keys is as sensitive as the keys
// themselves, so it takes an admin token, unless PprofOpen (demo mode: its admin
// token is public anyway, and the bench harness profiles the demo switch without
// one). These are the API's only handlers that do not answer JSON.
func (a *api) pprof() {
	guard := func(h http.HandlerFunc) http.Handler {
		if a.o.PprofOpen {
			return h
		}
		return a.o.Auth.Require(h, adminsOnly...)
	}
	a.mux.Handle("/debug/pprof/", guard(pprof.Index))
	a.mux.Handle("/debug/pprof/profile", guard(pprof.Profile))
	a.mux.Handle("/debug/pprof/trace", guard(pprof.Trace))
}
