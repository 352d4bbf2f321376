package api

import (
	"net/http"
	"time"
)

// RoutePatterns returns the patterns of the routes that o serves through route
// (every route but the profiler's).
func RoutePatterns(o Options) []string {
	a := &api{o: o, mux: http.NewServeMux()}
	a.register()
	return a.patterns
}

// NewWithCeremonyTimeout is New with key ceremonies that last timeout, expired
// being told of each one dropped at its timeout ("import ID", "export ID").
func NewWithCeremonyTimeout(o Options, timeout time.Duration, expired func(what string)) *http.ServeMux {
	a := &api{o: o, mux: http.NewServeMux(), ceremonyTimeout: timeout, ceremonyExpired: expired}
	a.register()
	return a.mux
}
