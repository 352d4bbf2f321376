package server

import (
	"net/http"
	"time"
)

// adminBodyTimeout is how long the body of an admin request may take to arrive
// until its caller is known (boundBodies).
var adminBodyTimeout = 30 * time.Second

// boundBodies gives the body of every admin request that has one a read deadline
// of adminBodyTimeout from its start. The admin server has no ReadTimeout (it
// would cut the dashboard's event stream, the journal's JSON lines and a paced
// cluster import), and Go reads up to 256 KB of a body its handler left unread
// before it answers, with no bound of its own: without this, anyone could open
// connections that send a request's headers and never its body, each held for
// ever, even by a route that answers 401 at once, and use up the file
// descriptors the terminal listeners share. The deadline is lifted once the
// caller is known: a valid bearer token (admin.Authenticator.Require) or a live
// console session (switch/console), so an authenticated upload may take its
// time; the console's login bounds its own body. A request without a body (a
// terminal's package download, a profile) keeps no deadline: a read deadline
// passing while its handler runs would cancel its context.
func boundBodies(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(adminBodyTimeout))
		}
		h.ServeHTTP(w, r)
	})
}
