package keys

import (
	"time"

	"github.com/switchyard/switchyard/hsm"
)

// Dual control of key components (PCI PIN): a key formed from clear components is
// entered by as many custodians as it has components, each authenticated as a
// different person, each typing one component and the check value printed on its
// form. The switch keeps the components in memory only, combines them once all are
// there and confirmed, and wipes them; one person entering every component is
// refused outside demo mode. "A different person" is a custodian whose console
// account (of the admin token's name) no account has held together with an
// earlier custodian's (created them or reset their passwords), as in the
// registry's two-person review (registry.Registry.HeldBoth).
//
//	POST /api/v1/keys/components   ComponentRequest -> ComponentResponse
//
// ("components" cannot be a key ID.) The ceremony is per key ID and per switch node:
// every custodian must use the same node. A ceremony not completed within the
// ceremony timeout (30 minutes) is dropped and its components wiped.
//
// A ceremony holds its key ID: a component asked for another key (type, algorithm,
// owner, activation, expiry, grace, number of components) is refused (409, naming
// who started the ceremony, when, how far it is, when it is dropped and who may
// cancel it). So that a stray or hostile start cannot block the real custodians for
// the whole timeout, a ceremony can be cancelled before its time:
//
//	POST /api/v1/keys/{id}/cancel-ceremony   CancelCeremonyRequest -> CancelCeremonyResponse
//
// by one of its custodians at any time, or, while one component only is in (entered,
// or taken for an export), by any admin who could be its next custodian (one who
// passes the dual-control check against the first). A cancel forms, reveals and
// hands out nothing: it wipes the components and is audited (action
// "cancel-ceremony": who, the reason, whose ceremony, how far it was) before it
// takes effect; without the audit entry the ceremony stays.

// ComponentRequest is one custodian's component of a key.
type ComponentRequest struct {
	SpecRequest
	// Components is how many components the key is formed from (2 or 3); every
	// custodian of the ceremony gives the same.
	Components int `json:"components"`
	// Component is this custodian's clear component, hex.
	Component string `json:"component"`
	// KCV is the component's check value as printed on its form: the switch refuses
	// the component unless it computes the same (a typing error, or a wrong form).
	KCV string `json:"kcv"`
}

// ComponentResponse says where the ceremony stands after a component.
type ComponentResponse struct {
	ID         string   `json:"id"`         // the key ID
	Entered    int      `json:"entered"`    // components entered so far
	Of         int      `json:"of"`         // components the key needs
	Custodians []string `json:"custodians"` // who entered them, in order
	KCV        string   `json:"kcv"`        // the check value of this component
	// Expires is when the ceremony is dropped unless completed (zero once the key
	// is formed).
	Expires time.Time `json:"expires,omitzero"`
	// Result is the key formed when this was the last component; nil while the
	// ceremony waits for other custodians.
	Result *hsm.KeyResult `json:"result,omitempty"`
}

// Exports in components are the same ceremony the other way:
//
//	POST /api/v1/keys/{id}/export-components   ExportComponentsRequest -> ExportComponentResponse
//
// The first custodian's call splits the key (version 0: current) into N random
// components in the HSM; each call, from a different custodian outside demo mode,
// hands out the next component once and wipes it.

// ExportComponentsRequest asks for this custodian's component of a key.
type ExportComponentsRequest struct {
	Version    int `json:"version,omitempty"` // default: current
	Components int `json:"components"`        // 2 or 3, the same for every custodian
}

// ExportComponentResponse is one custodian's component.
type ExportComponentResponse struct {
	Key        hsm.KeyRef `json:"key"`        // the key split
	KeyKCV     string     `json:"key_kcv"`    // the key's KCV, for the receiving party
	Index      int        `json:"index"`      // which component (1-based)
	Of         int        `json:"of"`         // how many
	Component  string     `json:"component"`  // this custodian's clear component, hex
	KCV        string     `json:"kcv"`        // its KCV
	Custodians []string   `json:"custodians"` // who took components so far
}

// CancelCeremonyRequest asks to end a ceremony of a key ID before its time.
type CancelCeremonyRequest struct {
	// Kind is "import" (components entered) or "export" (an export in components).
	Kind string `json:"kind"`
	// Reason is why, for the audit log (required; a card number in it is masked).
	Reason string `json:"reason"`
}

// CancelCeremonyResponse says what a cancel ended.
type CancelCeremonyResponse struct {
	ID          string    `json:"id"`           // the key ID
	Kind        string    `json:"kind"`         // import or export
	Started     time.Time `json:"started"`      // when its first component came in
	StartedBy   string    `json:"started_by"`   // whose component that was
	Done        int       `json:"done"`         // components entered (import) or taken (export)
	Of          int       `json:"of"`           // components of the ceremony
	Custodians  []string  `json:"custodians"`   // who entered or took them, in order
	CancelledBy string    `json:"cancelled_by"` // the admin who cancelled it
}
