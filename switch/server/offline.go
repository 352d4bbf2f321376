package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/cases"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

// OfflineToken is the bearer token of the in-process admin API that tools use with
// --data DIR (a stopped switch's data directory).
const OfflineToken = "offline"

// Offline is the admin API over a stopped switch's data directory, for the command-line
// tools' --data mode. Every call acts as actor, with the admin role.
type Offline struct {
	Handler http.Handler
	Journal *journal.Store
	close   []func() error
}

// OpenOffline opens dir (which no running switch may hold) and serves the admin API on
// it in-process.
//
// The key API is served too when the LMK can be had: from lmk (a file or an
// environment variable), or for a demo data directory the public demo LMK.
func OpenOffline(dir, actor, tz string, lmk keys.LMKSource) (*Offline, error) {
	db, err := OpenDB(dir, zerolog.Nop())
	if err != nil {
		return nil, err
	}
	o := &Offline{close: []func() error{db.Close}}
	reg, err := registry.New(db, nil, registry.Options{Logger: zerolog.Nop()})
	if err != nil {
		o.Close()
		return nil, fmt.Errorf("registry: %w", err)
	}
	o.close = append([]func() error{reg.Close}, o.close...)
	j, err := journal.Open(db, journal.Options{Dir: JournalDir(dir)})
	if err != nil {
		o.Close()
		return nil, err
	}
	o.Journal = j
	o.close = append([]func() error{j.Close}, o.close...)
	auth, err := admin.NewAuthenticator([]admin.Token{{Token: OfflineToken, Principal: admin.Principal{Name: actor, Role: admin.RoleAdmin}}})
	if err != nil {
		o.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", registry.NewAPI(reg, auth))
	demo := lmk.File == "" && lmk.Env == ""
	lmk.Demo = demo
	if key, err := keys.LoadLMK(lmk); err == nil {
		nop := zerolog.Nop()
		store, err := keys.NewStore(db, keys.Options{Demo: demo, Log: &nop})
		if err != nil {
			o.Close()
			return nil, err
		}
		h, err := hsm.NewSoftware(context.Background(), store, key, hsm.Options{Log: &nop})
		clear(key)
		if err != nil {
			o.Close()
			return nil, err
		}
		api := keys.NewAPI(store, h, auth)
		mux.Handle("/api/v1/keys", api)
		mux.Handle("/api/v1/keys/", api)
	}
	mux.Handle("GET /api/v1/journal", auth.Require(journalAPI{j}, admin.RoleAdmin))
	mux.Handle("GET /api/v1/journal/{rrn}", auth.Require(journalAPI{j}, admin.RoleAdmin))
	mux.Handle("GET /api/v1/settlement", auth.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			admin.WriteError(w, http.StatusBadRequest, err)
			return
		}
		rep, err := Settle(r.Context(), j, r.URL.Query().Get("date"), loc)
		if err != nil {
			admin.WriteError(w, http.StatusBadRequest, err)
			return
		}
		admin.WriteJSON(w, http.StatusOK, rep)
	}), admin.RoleAdmin))
	lists, err := risk.NewLists(db)
	if err != nil {
		o.Close()
		return nil, err
	}
	mux.Handle("/risk/", risk.NewAdminHandler(auth, nil, lists))
	cs, err := cases.New(db, cases.Options{Lists: lists, Registry: reg})
	if err != nil {
		o.Close()
		return nil, err
	}
	o.close = append([]func() error{cs.Close}, o.close...)
	caseAPI := cases.NewAPI(cs, auth)
	mux.Handle("/api/v1/cases", caseAPI)
	mux.Handle("/api/v1/cases/", caseAPI)
	o.Handler = mux
	return o, nil
}

// Close closes what OpenOffline opened.
func (o *Offline) Close() error {
	var first error
	for _, f := range o.close {
		if err := f(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
