// The bodies and answers of the risk admin API routes (served by switch/api).

package risk

import (
	"errors"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/risk/ruleset"
)

// RulesInfo is the answer of GET /api/v1/risk/rules.
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

// ReloadAnswer is the answer of POST /api/v1/risk/rules/reload.
type ReloadAnswer struct {
	Version  string    `json:"version"`            // now in force
	Previous string    `json:"previous"`           // in force before
	Rules    int       `json:"rules"`              // how many rules
	Warnings []Problem `json:"warnings,omitempty"` // lint findings
}

// ReloadRefused is the error answer of POST /api/v1/risk/rules/reload when the files
// have problems: the previous rules stay in force.
type ReloadRefused struct {
	Error       string    `json:"error"`        // all problems as text
	KeptVersion string    `json:"kept_version"` // still in force
	Problems    []Problem `json:"problems"`     // each with file:line
}

// AddListEntry is the body of POST /api/v1/risk/lists.
type AddListEntry struct {
	List  string `json:"list"`  // deny, allow or another list
	Kind  string `json:"kind"`  // bin, card, terminal, merchant or country
	Value string `json:"value"` // see ListEntry.Value
	// ExpiresAt (RFC 3339) or TTL (a duration like 24h or 30d) bound the entry.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	TTL       string    `json:"ttl,omitempty"`  // e.g. 24h or 30d
	Note      string    `json:"note,omitempty"` // why
}

// RemoveAnswer is the answer of DELETE /api/v1/risk/lists/{list}/{kind}/{value}:
// removed at once (an allow-list entry), or a change requested for review (a
// deny-list entry or another list's: switch/listreview). An absent entry gives 404.
type RemoveAnswer struct {
	Removed bool `json:"removed"` // false while the removal waits for its review
	// PendingReview, Change and Why: the removal is registry change Change,
	// applied when a reviewer approves it, for the reason Why.
	PendingReview bool   `json:"pending_review,omitempty"`
	Change        string `json:"change,omitempty"`
	Why           string `json:"why,omitempty"`
}

// AddAnswer is the answer of POST /api/v1/risk/lists: the entry added (200), or
// with PendingReview the entry requested and the registry change that adds it
// when a reviewer approves it (202): an allow-list addition and the others that
// loosen the rules (switch/listreview).
type AddAnswer struct {
	ListEntry
	PendingReview bool   `json:"pending_review,omitempty"`
	Change        string `json:"change,omitempty"`
	Why           string `json:"why,omitempty"` // why the addition is reviewed
}

// Entry is the list entry the request asks for, its TTL (if given) counted from
// now. Giving both an expiry time and a TTL is an error.
func (req AddListEntry) Entry(now time.Time) (ListEntry, error) {
	e := ListEntry{List: req.List, Kind: req.Kind, Value: req.Value, ExpiresAt: req.ExpiresAt, Note: req.Note}
	if req.TTL != "" {
		if !req.ExpiresAt.IsZero() {
			return e, errors.New("give expires_at or ttl, not both")
		}
		d, err := ruleset.ParseWindow(req.TTL)
		if err != nil {
			return e, fmt.Errorf("ttl %v", err)
		}
		e.ExpiresAt = now.UTC().Add(d)
	}
	return e, nil
}
