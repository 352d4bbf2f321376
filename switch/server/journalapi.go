package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/journal"
)

// journalAPI serves GET /api/v1/journal?tid=&mid=&rrn=&from=&to=&limit= as JSON lines,
// and GET /api/v1/journal/{rrn} as one JSON record.
type journalAPI struct{ j *journal.Store }

func (a journalAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rrn := r.PathValue("rrn"); rrn != "" {
		rec, err := a.j.Get(rrn)
		if errors.Is(err, journal.ErrNotFound) {
			admin.WriteError(w, http.StatusNotFound, err)
			return
		}
		if err != nil {
			admin.WriteError(w, http.StatusInternalServerError, err)
			return
		}
		admin.WriteJSON(w, http.StatusOK, rec)
		return
	}
	q, err := QueryFromValues(r.URL.Query().Get, time.Now())
	if err != nil {
		admin.WriteError(w, http.StatusBadRequest, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	err = a.j.Scan(r.Context(), q, func(rec *journal.Record) bool { return enc.Encode(rec) == nil })
	if err != nil {
		_ = enc.Encode(admin.ErrorBody{Error: err.Error()})
	}
}

// QueryFromValues builds a journal query from named values (tid, mid, rrn, from, to, limit).
func QueryFromValues(get func(string) string, now time.Time) (journal.Query, error) {
	q := journal.Query{TID: get("tid"), MID: get("mid"), RRN: get("rrn")}
	var err error
	if q.From, err = journal.ParseTime(get("from"), now); err != nil {
		return q, err
	}
	if q.To, err = journal.ParseTime(get("to"), now); err != nil {
		return q, err
	}
	if l := get("limit"); l != "" {
		if q.Limit, err = strconv.Atoi(l); err != nil || q.Limit < 0 {
			return q, errors.New("limit: not a non-negative number")
		}
	}
	return q, nil
}
