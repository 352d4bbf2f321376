package keys

import (
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/hsm"
)

// The bodies and answers of the key-management admin API, served by switch/api under /api/v1/keys (every route
// needs the admin role):
//
//	GET  /api/v1/keys                   list every key version (KeyList)
//	GET  /api/v1/keys/{id}              the versions of one key (KeyList)
//	GET  /api/v1/keys/{id}/kcv          recompute the KCV (?version=N) (hsm.KeyCheck)
//	POST /api/v1/keys/generate          GenerateRequest -> hsm.KeyResult
//	POST /api/v1/keys/form              FormRequest (clear components) -> hsm.KeyResult
//	POST /api/v1/keys/import            ImportRequest (under a KEK) -> hsm.KeyResult
//	POST /api/v1/keys/{id}/rotate       RotateRequest -> hsm.KeyResult (new version)
//	POST /api/v1/keys/{id}/export       ExportRequest -> ExportResponse
//	POST /api/v1/keys/components        ComponentRequest -> ComponentResponse (dual control, ceremony.go)
//	POST /api/v1/keys/{id}/export-components ExportComponentsRequest -> ExportComponentResponse
//	POST /api/v1/keys/{id}/cancel-ceremony CancelCeremonyRequest -> CancelCeremonyResponse
//	POST /api/v1/keys/{id}/status       StatusRequest -> KeyInfo (revoke)
//	GET  /api/v1/keys/audit             the audit log (?from=N&limit=M) (AuditList)
//	GET  /api/v1/keys/audit/verify      VerifyLogResponse
//
// Answers never contain key material other than what an export asks for (a key
// under a KEK), and the components of an export in components to their custodians.
// "audit", "generate", "form", "import" and "components" cannot be key IDs.

// KeyInfo is what the API shows of a key version: metadata, never key material.
type KeyInfo struct {
	ID           string           `json:"id"`                      // key ID
	Version      int              `json:"version"`                 // key version
	Type         hsm.KeyType      `json:"type"`                    // key type
	Algorithm    hsm.Algorithm    `json:"algorithm"`               // cipher and length
	MACAlgorithm hsm.MACAlgorithm `json:"mac_algorithm,omitempty"` // TAK/ZAK: retail or cmac
	Owner        string           `json:"owner,omitempty"`         // terminal, issuer, or KSN prefix
	KCV          string           `json:"kcv"`                     // 6 hex digits
	KCVMethod    string           `json:"kcv_method"`              // how KCV was computed
	Status       hsm.Status       `json:"status"`                  // active, superseded or revoked
	ActivateAt   time.Time        `json:"activate_at"`             // usable from
	ExpiresAt    time.Time        `json:"expires_at,omitzero"`     // usable until
	GraceUntil   time.Time        `json:"grace_until,omitzero"`    // superseded: inbound use until
	CreatedAt    time.Time        `json:"created_at"`              // when stored
	CreatedBy    string           `json:"created_by"`              // who stored it
}

// KeyList is the answer of the list routes.
type KeyList struct {
	Keys []KeyInfo `json:"keys"` // sorted by ID and version
}

// SpecRequest describes a new key in API requests.
type SpecRequest struct {
	ID           string    `json:"id"`                      // key ID
	Type         string    `json:"type"`                    // TMK, ZMK, TPK, ZPK, TAK, ZAK, BDK, CVK, DEK
	Algorithm    string    `json:"algorithm,omitempty"`     // default TDES-2KEY
	MACAlgorithm string    `json:"mac_algorithm,omitempty"` // TAK/ZAK: retail or cmac
	Owner        string    `json:"owner,omitempty"`         // terminal, issuer, or KSN prefix (BDK)
	ActivateAt   time.Time `json:"activate_at,omitzero"`    // default now
	ExpiresAt    time.Time `json:"expires_at,omitzero"`     // default never
	// Grace is a Go duration ("24h") for which the superseded version stays usable
	// for decryption and verification.
	Grace string `json:"grace,omitempty"`
}

// ExportTarget names a KEK and a format ("tr31" or "ecb") to export a key under.
type ExportTarget struct {
	KEK        string `json:"kek"`                   // KEK ID
	KEKVersion int    `json:"kek_version,omitempty"` // default: current
	Format     string `json:"format,omitempty"`      // default tr31
}

// GenerateRequest asks for a random key, optionally exported at once.
type GenerateRequest struct {
	SpecRequest
	Export *ExportTarget `json:"export,omitempty"` // also export the new key
}

// FormRequest asks for a key formed from 2 or 3 clear hex components.
type FormRequest struct {
	SpecRequest
	Components []string `json:"components"` // clear components, hex
}

// ImportRequest asks for a key encrypted under a KEK to be imported.
type ImportRequest struct {
	SpecRequest
	KEK        string `json:"kek"`                   // KEK ID
	KEKVersion int    `json:"kek_version,omitempty"` // default: current
	TR31       string `json:"tr31,omitempty"`        // a TR-31 key block, or
	ECB        string `json:"ecb,omitempty"`         // HEXKEY[:KCV] ECB under the KEK
	KCV        string `json:"kcv,omitempty"`         // expected KCV
}

// RotateRequest asks for a new version of a key of the same type, algorithm and
// owner.
type RotateRequest struct {
	Grace      string        `json:"grace,omitempty"`      // old version usable inbound this long
	ActivateAt time.Time     `json:"activate_at,omitzero"` // default now
	ExpiresAt  time.Time     `json:"expires_at,omitzero"`  // default never
	Export     *ExportTarget `json:"export,omitempty"`     // also export the new version
}

// ExportRequest asks for a key (version 0: current) to be exported under a KEK.
type ExportRequest struct {
	Version int `json:"version,omitempty"` // default: current
	ExportTarget
}

// ExportResponse is an exported key.
type ExportResponse struct {
	Key    hsm.KeyRef `json:"key"`    // the exported key
	KEK    hsm.KeyRef `json:"kek"`    // the KEK it is under
	Format string     `json:"format"` // tr31 or ecb
	Block  string     `json:"block"`  // the key under the KEK
}

// StatusRequest changes the status of one key version ("revoked", or "active").
type StatusRequest struct {
	Version int    `json:"version"`          // the version to change
	Status  string `json:"status"`           // revoked or active
	Reason  string `json:"reason,omitempty"` // for the audit log
}

// AuditList is a page of the audit log.
type AuditList struct {
	Entries []AuditEntry `json:"entries"` // in sequence order
}

// VerifyLogResponse is the result of checking the audit log chain.
type VerifyLogResponse struct {
	OK       bool   `json:"ok"`                  // the whole chain verifies
	Entries  int    `json:"entries"`             // entries verified
	BrokenAt uint64 `json:"broken_at,omitempty"` // first broken entry
	Error    string `json:"error,omitempty"`     // what is wrong there
}

// InfoOf is what the API shows of a key version.
func InfoOf(r hsm.KeyRecord) KeyInfo {
	return KeyInfo{ID: r.ID, Version: r.Version, Type: r.Type, Algorithm: r.Algorithm, MACAlgorithm: r.MACAlgorithm,
		Owner: r.Owner, KCV: r.KCV, KCVMethod: string(r.KCVMethod), Status: r.Status, ActivateAt: r.ActivateAt,
		ExpiresAt: r.ExpiresAt, GraceUntil: r.GraceUntil, CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy}
}

// KeySpec converts a SpecRequest to an hsm.KeySpec.
func (s SpecRequest) KeySpec() (hsm.KeySpec, error) {
	out := hsm.KeySpec{ID: s.ID, Type: hsm.KeyType(strings.ToUpper(strings.TrimSpace(s.Type))), Owner: s.Owner,
		MACAlgorithm: hsm.MACAlgorithm(strings.ToLower(s.MACAlgorithm)), ActivateAt: s.ActivateAt, ExpiresAt: s.ExpiresAt}
	if s.Algorithm != "" {
		alg, err := hsm.ParseAlgorithm(s.Algorithm)
		if err != nil {
			return out, err
		}
		out.Algorithm = alg
	}
	if s.Grace != "" {
		d, err := ParseGrace("grace", s.Grace)
		if err != nil {
			return out, fmt.Errorf("%w: %w", hsm.ErrInput, err)
		}
		out.Grace = d
	}
	return out, nil
}

// MaxGrace is the longest grace window a new key version gives the version it
// supersedes (SpecRequest.Grace, keys rotate --grace, the keys.rotate task's
// grace): 30 days. The window is for the counterparts that still hold the old key
// (a terminal that missed its key change, an issuer moving to a new zone key) until
// they take the new one, hours to a few days; a longer one keeps the old key valid
// past any planned cut-over, and, since versions are destroyed only from the
// oldest on, holds back the destruction of every version after it (README, Keys).
// Before 8 December 2026 there was no bound (876000h, a century, was taken).
const MaxGrace = 30 * 24 * time.Hour

// ParseGrace parses a grace window v given as name ("grace", "--grace",
// "params.grace"): a Go duration from 0 (none) to MaxGrace. The errors name it and
// its value.
func ParseGrace(name, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%s %q is not a duration like 24h", name, v)
	case d < 0:
		return 0, fmt.Errorf("%s %q: must be positive (0s for none), at most 720h (30 days)", name, v)
	case d > MaxGrace:
		return 0, fmt.Errorf("%s %q: at most 720h (30 days): the superseded version would stay usable that long and hold back the destruction of the versions after it", name, v)
	}
	return d, nil
}

// ExportSpec converts an export target (nil: no export) to an hsm.ExportSpec.
func (t *ExportTarget) ExportSpec() (*hsm.ExportSpec, error) {
	if t == nil {
		return nil, nil
	}
	if t.KEK == "" {
		return nil, fmt.Errorf("%w: export needs a KEK", hsm.ErrInput)
	}
	f := hsm.ExportFormat(strings.ToLower(t.Format))
	if f == "" {
		f = hsm.ExportTR31
	}
	return &hsm.ExportSpec{KEK: hsm.KeyRef{ID: t.KEK, Version: t.KEKVersion}, Format: f}, nil
}
