package server

import (
	"net/http"
	"net/http/pprof"

	"github.com/switchyard/switchyard/switch/admin"
)

// mountPprof serves the Go profiler under /debug/pprof/ on the admin mux. A profile
// or heap dump of the process that holds the LMK and the working keys is as
// sensitive as the keys themselves, so outside demo mode it takes an admin token.
// Demo mode leaves it open: its admin token is public anyway, and the bench harness
// profiles the demo switch without one.
func mountPprof(mux *http.ServeMux, auth *admin.Authenticator, demo bool) {
	guard := func(h http.HandlerFunc) http.Handler {
		if demo {
			return h
		}
		return auth.Require(h, admin.RoleAdmin)
	}
	mux.Handle("/debug/pprof/", guard(pprof.Index))
	mux.Handle("/debug/pprof/profile", guard(pprof.Profile))
	mux.Handle("/debug/pprof/trace", guard(pprof.Trace))
}
