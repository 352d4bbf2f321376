// The bodies and answers of the registry's admin API routes (served by switch/api).

package registry

import (
	"errors"
	"time"
)

// TerminalView is a terminal with its last-seen data, as the API shows it.
type TerminalView struct {
	*Terminal
	LastSeen *LastSeen `json:"last_seen,omitempty"`
}

// MerchantRequest is the body of POST /api/v1/merchants: the merchant to register
// and the reason of the request.
type MerchantRequest struct {
	Merchant
	Reason string `json:"reason,omitempty"`
}

// TerminalRequest is the body of POST /api/v1/terminals.
type TerminalRequest struct {
	Terminal
	Reason string `json:"reason,omitempty"`
}

// MerchantPatchRequest is the body of PATCH /api/v1/merchants/{id}.
type MerchantPatchRequest struct {
	MerchantPatch
	Reason string `json:"reason,omitempty"`
}

// TerminalPatchRequest is the body of PATCH /api/v1/terminals/{id}.
type TerminalPatchRequest struct {
	TerminalPatch
	Reason string `json:"reason,omitempty"`
}

// ReasonRequest is the optional body of the state-change calls (freeze, suspend,
// ...), of approve, reject and cancel, and of acknowledging and resolving.
type ReasonRequest struct {
	Reason string `json:"reason,omitempty"`
	Note   string `json:"note,omitempty"`
}

// Text is the reason, or the note when no reason is given.
func (r ReasonRequest) Text() string {
	if r.Reason != "" {
		return r.Reason
	}
	return r.Note
}

// ImportRequest is the JSON form of POST /api/v1/terminals/import (the CLI's); the
// endpoint also takes a text/csv body with ?reason= and ?dry_run=1.
type ImportRequest struct {
	CSV    string `json:"csv"`
	Reason string `json:"reason,omitempty"`
	DryRun bool   `json:"dry_run,omitempty"`
}

// VerifyResult is the answer of GET /api/v1/oplog/verify.
type VerifyResult struct {
	OK      bool   `json:"ok"`
	Entries int    `json:"entries"`
	Error   string `json:"error,omitempty"`
}

// ParseSince reads a point in time as RFC 3339 ("2026-05-01T00:00:00Z"), a date
// ("2026-05-01", UTC) or a duration before now ("24h", "90m").
func ParseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("want RFC 3339 time, a date YYYY-MM-DD or a duration like 24h")
}

// ReasonInfo describes one decline reason (GET /api/v1/reasons).
type ReasonInfo struct {
	Reason       Reason `json:"reason"`
	ResponseCode string `json:"response_code"`
	Incident     bool   `json:"incident"`
}
