// Package issuer routes authorizations to card issuers by BIN and keeps the links to
// them: connection pools over moov-io/iso8583-connection that sign on, echo when idle,
// reconnect with backoff, and match answers on the switch's own STAN and RRN.
package issuer

import (
	"fmt"
	"sort"
)

// Router maps PAN prefixes to issuer IDs by longest prefix.
type Router struct {
	routes  map[string]string
	lengths []int // distinct prefix lengths, longest first
}

// NewRouter builds a router from prefix -> issuer ID. A prefix must be 1 to 11 digits.
func NewRouter(routes map[string]string) (*Router, error) {
	r := &Router{routes: map[string]string{}}
	seen := map[int]bool{}
	for p, id := range routes {
		if len(p) < 1 || len(p) > 11 {
			return nil, fmt.Errorf("route %q: prefix must be 1 to 11 digits", p)
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return nil, fmt.Errorf("route %q: prefix must be digits", p)
			}
		}
		if id == "" {
			return nil, fmt.Errorf("route %q: no issuer", p)
		}
		r.routes[p] = id
		if !seen[len(p)] {
			seen[len(p)] = true
			r.lengths = append(r.lengths, len(p))
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(r.lengths)))
	return r, nil
}

// Route returns the issuer ID for a PAN, or false when no prefix matches.
func (r *Router) Route(pan string) (string, bool) {
	for _, n := range r.lengths {
		if n > len(pan) {
			continue
		}
		if id, ok := r.routes[pan[:n]]; ok {
			return id, true
		}
	}
	return "", false
}
