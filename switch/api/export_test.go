package api

import "net/http"

// RoutePatterns returns the patterns of the routes that o serves through route
// (every route but the profiler's).
func RoutePatterns(o Options) []string {
	a := &api{o: o, mux: http.NewServeMux()}
	a.register()
	return a.patterns
}
