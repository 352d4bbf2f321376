// The bodies of the review cases' admin API routes (served by switch/api).

package cases

// AssignRequest is the body of POST /api/v1/cases/{id}/assign.
type AssignRequest struct {
	To   string `json:"to,omitempty"`   // the analyst; empty: the caller
	Note string `json:"note,omitempty"` // why
}

// DecideRequest is the body of POST /api/v1/cases/{id}/decide.
type DecideRequest struct {
	Verdict Verdict `json:"verdict"`        // confirmed-fraud or cleared
	Note    string  `json:"note,omitempty"` // what the analyst found
}
