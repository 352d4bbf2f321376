package keys

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/switch/admin"
)

// The key-management admin API, served by NewAPI under /api/v1/keys (every route
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
//	POST /api/v1/keys/{id}/status       StatusRequest -> KeyInfo (revoke)
//	GET  /api/v1/keys/audit             the audit log (?from=N&limit=M) (AuditList)
//	GET  /api/v1/keys/audit/verify      VerifyLogResponse
//
// Answers never contain key material other than what an export asks for (a key
// under a KEK). "audit", "generate", "form" and "import" cannot be key IDs.

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

type api struct {
	store *Store
	hsm   hsm.HSM
}

// NewAPI returns the key-management admin API handler (routes above), for the admin
// port or, wrapped by apiclient.Client{Handler: h} (internal/cli), for the CLI's offline mode. Every
// route needs a bearer token of the admin role; the principal's name is the actor
// in the audit log.
func NewAPI(store *Store, h hsm.HSM, auth *admin.Authenticator) http.Handler {
	a := &api{store: store, hsm: h}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/keys", a.list)
	mux.HandleFunc("GET /api/v1/keys/{id}", a.get)
	mux.HandleFunc("GET /api/v1/keys/{id}/kcv", a.kcv)
	mux.HandleFunc("POST /api/v1/keys/generate", a.generate)
	mux.HandleFunc("POST /api/v1/keys/form", a.form)
	mux.HandleFunc("POST /api/v1/keys/import", a.importKey)
	mux.HandleFunc("POST /api/v1/keys/{id}/rotate", a.rotate)
	mux.HandleFunc("POST /api/v1/keys/{id}/export", a.export)
	mux.HandleFunc("POST /api/v1/keys/{id}/status", a.status)
	mux.HandleFunc("GET /api/v1/keys/audit", a.audit)
	mux.HandleFunc("GET /api/v1/keys/audit/verify", a.verifyLog)
	return auth.Require(mux, admin.RoleAdmin)
}

func infoOf(r hsm.KeyRecord) KeyInfo {
	return KeyInfo{ID: r.ID, Version: r.Version, Type: r.Type, Algorithm: r.Algorithm, MACAlgorithm: r.MACAlgorithm,
		Owner: r.Owner, KCV: r.KCV, KCVMethod: string(r.KCVMethod), Status: r.Status, ActivateAt: r.ActivateAt,
		ExpiresAt: r.ExpiresAt, GraceUntil: r.GraceUntil, CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy}
}

// actx returns the request context carrying the principal's name as the actor.
func actx(r *http.Request) context.Context {
	name := "unknown"
	if p, ok := admin.PrincipalFrom(r.Context()); ok {
		name = p.Name
	}
	return hsm.WithActor(r.Context(), name)
}

func statusFor(err error) int {
	switch {
	case errors.Is(err, hsm.ErrKeyNotFound):
		return http.StatusNotFound
	case errors.Is(err, hsm.ErrKeyExists), errors.Is(err, hsm.ErrKeyNotUsable):
		return http.StatusConflict
	case errors.Is(err, hsm.ErrInput), errors.Is(err, hsm.ErrKeyUsage), errors.Is(err, hsm.ErrPolicy),
		errors.Is(err, hsm.ErrKCVMismatch), errors.Is(err, hsm.ErrDemoKey):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func fail(w http.ResponseWriter, err error) { admin.WriteError(w, statusFor(err), err) }

func badRequest(w http.ResponseWriter, format string, args ...any) {
	admin.WriteError(w, http.StatusBadRequest, fmt.Errorf(format, args...))
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	out := KeyList{Keys: []KeyInfo{}}
	for _, rec := range a.store.List() {
		out.Keys = append(out.Keys, infoOf(rec))
	}
	admin.WriteJSON(w, http.StatusOK, out)
}

func (a *api) get(w http.ResponseWriter, r *http.Request) {
	vs, err := a.store.Versions(r.PathValue("id"))
	if err != nil {
		fail(w, err)
		return
	}
	out := KeyList{}
	for _, rec := range vs {
		out.Keys = append(out.Keys, infoOf(rec))
	}
	admin.WriteJSON(w, http.StatusOK, out)
}

func (a *api) kcv(w http.ResponseWriter, r *http.Request) {
	ref := hsm.KeyRef{ID: r.PathValue("id")}
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			badRequest(w, "version %q is not a number", v)
			return
		}
		ref.Version = n
	}
	k, err := a.hsm.KCV(actx(r), ref)
	if err != nil {
		fail(w, err)
		return
	}
	admin.WriteJSON(w, http.StatusOK, k)
}

// spec converts a SpecRequest to an hsm.KeySpec.
func (s SpecRequest) spec() (hsm.KeySpec, error) {
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
		d, err := time.ParseDuration(s.Grace)
		if err != nil || d < 0 {
			return out, fmt.Errorf("%w: grace %q is not a duration like 24h", hsm.ErrInput, s.Grace)
		}
		out.Grace = d
	}
	return out, nil
}

func (t *ExportTarget) export() (*hsm.ExportSpec, error) {
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

func (a *api) generate(w http.ResponseWriter, r *http.Request) {
	var req GenerateRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		badRequest(w, "%v", err)
		return
	}
	spec, err := req.spec()
	if err != nil {
		fail(w, err)
		return
	}
	a.generateKey(w, r, spec, req.Export)
}

func (a *api) form(w http.ResponseWriter, r *http.Request) {
	var req FormRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		badRequest(w, "%v", err)
		return
	}
	spec, err := req.spec()
	if err != nil {
		fail(w, err)
		return
	}
	comps := make([][]byte, len(req.Components))
	defer func() {
		for _, c := range comps {
			clear(c)
		}
	}()
	for i, c := range req.Components {
		b, err := hex.DecodeString(strings.TrimSpace(c))
		if err != nil {
			badRequest(w, "component %d is not hex", i+1)
			return
		}
		comps[i] = b
	}
	res, err := a.hsm.FormKey(actx(r), hsm.FormKeyRequest{KeySpec: spec, Components: comps})
	if err != nil {
		fail(w, err)
		return
	}
	admin.WriteJSON(w, http.StatusCreated, res)
}

func (a *api) importKey(w http.ResponseWriter, r *http.Request) {
	var req ImportRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		badRequest(w, "%v", err)
		return
	}
	spec, err := req.spec()
	if err != nil {
		fail(w, err)
		return
	}
	res, err := a.hsm.ImportKey(actx(r), hsm.ImportKeyRequest{KeySpec: spec, KEK: hsm.KeyRef{ID: req.KEK, Version: req.KEKVersion}, TR31: req.TR31, ECB: req.ECB, KCV: req.KCV})
	if err != nil {
		fail(w, err)
		return
	}
	admin.WriteJSON(w, http.StatusCreated, res)
}

// generateKey creates the key of spec (a new ID, or a new version of one), exported
// as asked, and answers 201 with the result.
func (a *api) generateKey(w http.ResponseWriter, r *http.Request, spec hsm.KeySpec, export *ExportTarget) {
	exp, err := export.export()
	if err != nil {
		fail(w, err)
		return
	}
	res, err := a.hsm.GenerateKey(actx(r), hsm.GenerateKeyRequest{KeySpec: spec, Export: exp})
	if err != nil {
		fail(w, err)
		return
	}
	admin.WriteJSON(w, http.StatusCreated, res)
}

func (a *api) rotate(w http.ResponseWriter, r *http.Request) {
	var req RotateRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		badRequest(w, "%v", err)
		return
	}
	vs, err := a.store.Versions(r.PathValue("id"))
	if err != nil {
		fail(w, err)
		return
	}
	last := vs[len(vs)-1]
	spec, err := SpecRequest{ID: last.ID, Type: string(last.Type), Algorithm: string(last.Algorithm), MACAlgorithm: string(last.MACAlgorithm),
		Owner: last.Owner, ActivateAt: req.ActivateAt, ExpiresAt: req.ExpiresAt, Grace: req.Grace}.spec()
	if err != nil {
		fail(w, err)
		return
	}
	a.generateKey(w, r, spec, req.Export)
}

func (a *api) export(w http.ResponseWriter, r *http.Request) {
	var req ExportRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		badRequest(w, "%v", err)
		return
	}
	exp, err := req.ExportTarget.export()
	if err != nil {
		fail(w, err)
		return
	}
	ref := hsm.KeyRef{ID: r.PathValue("id"), Version: req.Version}
	blk, err := a.hsm.ExportKey(actx(r), hsm.ExportKeyRequest{Key: ref, ExportSpec: *exp})
	if err != nil {
		fail(w, err)
		return
	}
	admin.WriteJSON(w, http.StatusOK, ExportResponse{Key: ref, KEK: exp.KEK, Format: string(exp.Format), Block: blk})
}

func (a *api) status(w http.ResponseWriter, r *http.Request) {
	var req StatusRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		badRequest(w, "%v", err)
		return
	}
	rec, err := a.store.SetStatus(actx(r), hsm.KeyRef{ID: r.PathValue("id"), Version: req.Version}, hsm.Status(strings.ToLower(req.Status)), req.Reason)
	if err != nil {
		fail(w, err)
		return
	}
	admin.WriteJSON(w, http.StatusOK, infoOf(rec))
}

func (a *api) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, limit := uint64(1), 1000
	if v := q.Get("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			badRequest(w, "from %q is not a number", v)
			return
		}
		from = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			badRequest(w, "limit %q is not a positive number", v)
			return
		}
		limit = n
	}
	es, err := a.store.AuditLog(from, limit)
	if err != nil {
		fail(w, err)
		return
	}
	if es == nil {
		es = []AuditEntry{}
	}
	admin.WriteJSON(w, http.StatusOK, AuditList{Entries: es})
}

func (a *api) verifyLog(w http.ResponseWriter, r *http.Request) {
	n, err := a.store.VerifyLog(r.Context())
	out := VerifyLogResponse{OK: err == nil, Entries: n}
	if err != nil {
		out.Error = err.Error()
		var le *LogError
		if errors.As(err, &le) {
			out.BrokenAt = le.Seq
		} else {
			fail(w, err)
			return
		}
	}
	admin.WriteJSON(w, http.StatusOK, out)
}
