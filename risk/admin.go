package risk

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/switch/admin"
)

// RulesInfo is the answer of GET /risk/rules.
type RulesInfo struct {
	Version    string        `json:"version"`            // content hash of the rule set in force
	Dir        string        `json:"dir"`                // rules directory
	TimeZone   string        `json:"timezone"`           // of txn.local_hour and friends
	LoadedAt   time.Time     `json:"loaded_at"`          // when the set in force was loaded
	LastReload ReloadStatus  `json:"last_reload"`        // the last attempt, refused or not
	Files      []string      `json:"files"`              // rule files in load order
	Rules      []*Rule       `json:"rules"`              // in load order
	Counters   []*Counter    `json:"counters"`           // declared velocity counters
	Thresholds []*Thresholds `json:"thresholds"`         // per file, null where none
	Warnings   []Problem     `json:"warnings,omitempty"` // lint findings
	Stats      Stats         `json:"stats"`              // running totals
}

// ReloadAnswer is the answer of POST /risk/rules/reload.
type ReloadAnswer struct {
	Version  string    `json:"version"`            // now in force
	Previous string    `json:"previous"`           // in force before
	Rules    int       `json:"rules"`              // how many rules
	Warnings []Problem `json:"warnings,omitempty"` // lint findings
}

// ReloadRefused is the error answer of POST /risk/rules/reload when the files
// have problems: the previous rules stay in force.
type ReloadRefused struct {
	Error       string    `json:"error"`        // all problems as text
	KeptVersion string    `json:"kept_version"` // still in force
	Problems    []Problem `json:"problems"`     // each with file:line
}

// AddListEntry is the body of POST /risk/lists.
type AddListEntry struct {
	List  string `json:"list"`  // deny, allow or another list
	Kind  string `json:"kind"`  // bin, card, terminal, merchant or country
	Value string `json:"value"` // see ListEntry.Value
	// ExpiresAt (RFC 3339) or TTL (a duration like 24h or 30d) bound the entry.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	TTL       string    `json:"ttl,omitempty"`  // e.g. 24h or 30d
	Note      string    `json:"note,omitempty"` // why
}

// RemoveAnswer is the answer of DELETE /risk/lists/{list}/{kind}/{value}.
type RemoveAnswer struct {
	Removed bool `json:"removed"` // always true: an absent entry gives 404
}

// NewAdminHandler serves the risk admin API under /risk/ (mount it at
// "/risk/"), with the switch's bearer-token roles: operators and reviewers
// read, analysts also reload rules and edit lists (admin may do all).
//
//	GET    /risk/rules                      rule set in force, last reload, counters, stats
//	POST   /risk/rules/reload               reload the rule files (422 with file:line problems)
//	GET    /risk/lists[?list=&kind=]        list entries
//	POST   /risk/lists                      add an entry (AddListEntry)
//	DELETE /risk/lists/{list}/{kind}/{value} remove an entry
//	GET    /risk/lists/audit[?since=&limit=] who changed the lists, when, what
//
// e may be nil to serve only the lists; lists nil means e.Lists().
func NewAdminHandler(auth *admin.Authenticator, e *Engine, lists *Lists) http.Handler {
	if lists == nil && e != nil {
		lists = e.Lists()
	}
	h := &adminHandler{e: e, lists: lists}
	read := []admin.Role{admin.RoleOperator, admin.RoleReviewer, admin.RoleAnalyst}
	edit := []admin.Role{admin.RoleAnalyst}
	mux := http.NewServeMux()
	mux.Handle("GET /risk/rules", auth.Require(http.HandlerFunc(h.rules), read...))
	mux.Handle("POST /risk/rules/reload", auth.Require(http.HandlerFunc(h.reload), edit...))
	mux.Handle("GET /risk/lists", auth.Require(http.HandlerFunc(h.listEntries), read...))
	mux.Handle("POST /risk/lists", auth.Require(http.HandlerFunc(h.addEntry), edit...))
	mux.Handle("DELETE /risk/lists/{list}/{kind}/{value}", auth.Require(http.HandlerFunc(h.removeEntry), edit...))
	mux.Handle("GET /risk/lists/audit", auth.Require(http.HandlerFunc(h.audit), read...))
	return mux
}

type adminHandler struct {
	e     *Engine
	lists *Lists
}

var errNoEngine = errors.New("the risk engine is not running in this process")

func (h *adminHandler) rules(w http.ResponseWriter, r *http.Request) {
	if h.e == nil {
		admin.WriteError(w, http.StatusServiceUnavailable, errNoEngine)
		return
	}
	rs := h.e.RuleSet()
	admin.WriteJSON(w, http.StatusOK, RulesInfo{Version: rs.Version, Dir: rs.Dir, TimeZone: rs.TimeZone, LoadedAt: rs.LoadedAt,
		LastReload: h.e.LastReload(), Files: rs.Files, Rules: rs.Rules, Counters: rs.Counters,
		Thresholds: rs.Thresholds, Warnings: rs.Warnings, Stats: h.e.Stats()})
}

func (h *adminHandler) reload(w http.ResponseWriter, r *http.Request) {
	if h.e == nil {
		admin.WriteError(w, http.StatusServiceUnavailable, errNoEngine)
		return
	}
	prev := h.e.RuleSet().Version
	rs, err := h.e.Reload()
	if err != nil {
		ans := ReloadRefused{Error: err.Error(), KeptVersion: prev}
		var le *LoadError
		if errors.As(err, &le) {
			ans.Problems = le.Problems
		}
		admin.WriteJSON(w, http.StatusUnprocessableEntity, ans)
		return
	}
	admin.WriteJSON(w, http.StatusOK, ReloadAnswer{Version: rs.Version, Previous: prev, Rules: len(rs.Rules), Warnings: rs.Warnings})
}

func (h *adminHandler) listEntries(w http.ResponseWriter, r *http.Request) {
	list, kind := r.URL.Query().Get("list"), r.URL.Query().Get("kind")
	out := []ListEntry{}
	for _, e := range h.lists.Entries() {
		if (list == "" || e.List == list) && (kind == "" || e.Kind == kind) {
			out = append(out, e)
		}
	}
	admin.WriteJSON(w, http.StatusOK, out)
}

func who(r *http.Request) string {
	p, _ := admin.PrincipalFrom(r.Context())
	return p.Name
}

func (h *adminHandler) addEntry(w http.ResponseWriter, r *http.Request) {
	var req AddListEntry
	if err := admin.ReadJSON(r, &req); err != nil {
		admin.WriteError(w, http.StatusBadRequest, err)
		return
	}
	e := ListEntry{List: req.List, Kind: req.Kind, Value: req.Value, ExpiresAt: req.ExpiresAt, Note: req.Note}
	if req.TTL != "" {
		if !req.ExpiresAt.IsZero() {
			admin.WriteError(w, http.StatusBadRequest, errors.New("give expires_at or ttl, not both"))
			return
		}
		d, err := parseWindow(req.TTL)
		if err != nil {
			admin.WriteError(w, http.StatusBadRequest, fmt.Errorf("ttl %v", err))
			return
		}
		e.ExpiresAt = time.Now().UTC().Add(d)
	}
	added, err := h.lists.Add(who(r), e)
	if err != nil {
		admin.WriteError(w, http.StatusBadRequest, err)
		return
	}
	admin.WriteJSON(w, http.StatusOK, added)
}

func (h *adminHandler) removeEntry(w http.ResponseWriter, r *http.Request) {
	ok, err := h.lists.Remove(who(r), r.PathValue("list"), r.PathValue("kind"), r.PathValue("value"))
	if err != nil {
		admin.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if !ok {
		admin.WriteError(w, http.StatusNotFound, fmt.Errorf("%s/%s/%s is not on the lists", r.PathValue("list"), r.PathValue("kind"), r.PathValue("value")))
		return
	}
	admin.WriteJSON(w, http.StatusOK, RemoveAnswer{Removed: true})
}

func (h *adminHandler) audit(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if s := r.URL.Query().Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			admin.WriteError(w, http.StatusBadRequest, fmt.Errorf("since %q: want RFC 3339 like 2025-06-01T00:00:00Z", s))
			return
		}
		since = t
	}
	limit := 0
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			admin.WriteError(w, http.StatusBadRequest, fmt.Errorf("limit %q: want a whole number", s))
			return
		}
		limit = n
	}
	out, err := h.lists.Audit(since, limit)
	if err != nil {
		admin.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	if out == nil {
		out = []AuditEntry{}
	}
	admin.WriteJSON(w, http.StatusOK, out)
}
