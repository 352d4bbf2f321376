package api

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
	"github.com/switchyard/switchyard/internal/kvjson"
	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/admin"
)

// The key-management routes (admin role only). The principal's name is the actor in
// the key audit log. Answers never contain key material other than what an export
// asks for (a key under a KEK). "audit", "generate", "form", "import" and
// "card-hash-key" cannot be key IDs.
//
//	GET  /api/v1/keys                   list every key version (keys.KeyList)
//	GET  /api/v1/keys/{id}              the versions of one key (keys.KeyList)
//	GET  /api/v1/keys/{id}/kcv          recompute the KCV (?version=N) (hsm.KeyCheck)
//	POST /api/v1/keys/generate          keys.GenerateRequest -> hsm.KeyResult
//	POST /api/v1/keys/form              keys.FormRequest (clear components) -> hsm.KeyResult
//	POST /api/v1/keys/import            keys.ImportRequest (under a KEK) -> hsm.KeyResult
//	POST /api/v1/keys/{id}/rotate       keys.RotateRequest -> hsm.KeyResult (new version)
//	POST /api/v1/keys/{id}/export       keys.ExportRequest -> keys.ExportResponse
//	POST /api/v1/keys/components        keys.ComponentRequest -> keys.ComponentResponse (dual control)
//	POST /api/v1/keys/{id}/export-components keys.ExportComponentsRequest -> keys.ExportComponentResponse
//	POST /api/v1/keys/{id}/cancel-ceremony keys.CancelCeremonyRequest -> keys.CancelCeremonyResponse
//	POST /api/v1/keys/{id}/status       keys.StatusRequest -> keys.KeyInfo (revoke)
//	GET  /api/v1/keys/audit             the audit log (?from=N&limit=M) (keys.AuditList)
//	GET  /api/v1/keys/audit/verify      keys.VerifyLogResponse
//	POST /api/v1/keys/card-hash-key/export  -> keys.CardHashKeyBlock (the card hash key under the LMK)
func (a *api) keys() {
	cs := &ceremonies{m: map[string]*ceremony{}, exports: map[string]*exportCeremony{}, now: time.Now, timeout: ceremonyTimeout, expired: a.ceremonyExpired}
	if a.ceremonyTimeout > 0 {
		cs.timeout = a.ceremonyTimeout
	}
	g := &keysAPI{store: a.o.Keys, hsm: a.o.HSM, ceremonies: cs}
	if a.o.Registry != nil {
		g.accounts = a.o.Registry
	}
	h := func(pattern string, fn handlerFunc) { a.route(pattern, adminsOnly, keysStatus, fn) }
	h("GET /api/v1/keys", g.list)
	h("GET /api/v1/keys/{id}", g.get)
	h("GET /api/v1/keys/{id}/kcv", g.kcv)
	h("POST /api/v1/keys/generate", g.generate)
	h("POST /api/v1/keys/form", g.form)
	h("POST /api/v1/keys/import", g.importKey)
	h("POST /api/v1/keys/components", g.component) // dual control: keys/ceremony.go
	h("POST /api/v1/keys/{id}/rotate", g.rotate)
	h("POST /api/v1/keys/{id}/export", g.export)
	h("POST /api/v1/keys/{id}/export-components", g.exportComponent) // dual control: keys/ceremony.go
	h("POST /api/v1/keys/{id}/cancel-ceremony", g.cancelCeremony)    // a stray or stale ceremony
	h("POST /api/v1/keys/{id}/status", g.status)
	h("GET /api/v1/keys/audit", g.audit)
	h("GET /api/v1/keys/audit/verify", g.verifyLog)
	h("POST /api/v1/keys/card-hash-key/export", func(r *http.Request, p admin.Principal) (any, error) {
		if a.o.CardHashKey == nil {
			return nil, errorf(http.StatusNotFound, "the card hash key is not here: ask the running switch (the tools' --data mode has no configuration)")
		}
		return a.o.CardHashKey(actx(r, p))
	})
	// Anything else under /api/v1/keys/ also needs the admin token before it is
	// told the route does not exist: callers without one learn nothing of the keys.
	a.mux.Handle("/api/v1/keys/", a.o.Auth.Require(http.NotFoundHandler(), adminsOnly...))
}

// keysStatus maps the HSM's error kinds.
func keysStatus(err error) int {
	switch {
	case errors.Is(err, hsm.ErrKeyNotFound):
		return http.StatusNotFound
	case errors.Is(err, statelog.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, hsm.ErrKeyExists), errors.Is(err, hsm.ErrKeyNotUsable), errors.Is(err, keys.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, hsm.ErrInput), errors.Is(err, hsm.ErrKeyUsage), errors.Is(err, hsm.ErrPolicy),
		errors.Is(err, hsm.ErrKCVMismatch), errors.Is(err, hsm.ErrDemoKey):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

type keysAPI struct {
	store      *keys.Store
	hsm        hsm.HSM
	ceremonies *ceremonies
	// accounts tells whether two custodians' accounts may be one person's (the
	// registry's users); nil without a registry, when the ceremonies tell
	// custodians apart by name only.
	accounts accountHistory
}

// actx returns the request context carrying the principal's name as the actor.
func actx(r *http.Request, p admin.Principal) context.Context {
	return hsm.WithActor(r.Context(), p.Name)
}

func (g *keysAPI) list(_ *http.Request, _ admin.Principal) (any, error) {
	out := keys.KeyList{Keys: []keys.KeyInfo{}}
	for _, rec := range g.store.List() {
		out.Keys = append(out.Keys, keys.InfoOf(rec))
	}
	return out, nil
}

func (g *keysAPI) get(r *http.Request, _ admin.Principal) (any, error) {
	vs, err := g.store.Versions(r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	out := keys.KeyList{}
	for _, rec := range vs {
		out.Keys = append(out.Keys, keys.InfoOf(rec))
	}
	return out, nil
}

func (g *keysAPI) kcv(r *http.Request, p admin.Principal) (any, error) {
	ref := hsm.KeyRef{ID: r.PathValue("id")}
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, badRequest("version %q is not a number", v)
		}
		ref.Version = n
	}
	return g.hsm.KCV(actx(r, p), ref)
}

func (g *keysAPI) generate(r *http.Request, p admin.Principal) (any, error) {
	var req keys.GenerateRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		return nil, badRequest("%v", err)
	}
	spec, err := req.KeySpec()
	if err != nil {
		return nil, err
	}
	return g.generateKey(r, p, spec, req.Export)
}

func (g *keysAPI) form(r *http.Request, p admin.Principal) (any, error) {
	var req keys.FormRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		return nil, badRequest("%v", err)
	}
	spec, err := req.KeySpec()
	if err != nil {
		return nil, err
	}
	if !g.store.Demo() {
		return nil, fmt.Errorf("%w: dual control: one person may not enter every component of a key outside demo mode; each custodian enters one with POST /api/v1/keys/components (switchyard keys import)", hsm.ErrPolicy)
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
			return nil, badRequest("component %d is not hex", i+1)
		}
		comps[i] = b
	}
	res, err := g.hsm.FormKey(actx(r, p), hsm.FormKeyRequest{KeySpec: spec, Components: comps})
	if err != nil {
		return nil, err
	}
	return withStatus(http.StatusCreated, res), nil
}

func (g *keysAPI) importKey(r *http.Request, p admin.Principal) (any, error) {
	var req keys.ImportRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		return nil, badRequest("%v", err)
	}
	spec, err := req.KeySpec()
	if err != nil {
		return nil, err
	}
	res, err := g.hsm.ImportKey(actx(r, p), hsm.ImportKeyRequest{KeySpec: spec, KEK: hsm.KeyRef{ID: req.KEK, Version: req.KEKVersion}, TR31: req.TR31, ECB: req.ECB, KCV: req.KCV})
	if err != nil {
		return nil, err
	}
	return withStatus(http.StatusCreated, res), nil
}

// generateKey creates the key of spec (a new ID, or a new version of one), exported
// as asked: 201 with the result.
func (g *keysAPI) generateKey(r *http.Request, p admin.Principal, spec hsm.KeySpec, export *keys.ExportTarget) (any, error) {
	exp, err := export.ExportSpec()
	if err != nil {
		return nil, err
	}
	res, err := g.hsm.GenerateKey(actx(r, p), hsm.GenerateKeyRequest{KeySpec: spec, Export: exp})
	if err != nil {
		return nil, err
	}
	return withStatus(http.StatusCreated, res), nil
}

func (g *keysAPI) rotate(r *http.Request, p admin.Principal) (any, error) {
	var req keys.RotateRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		return nil, badRequest("%v", err)
	}
	vs, err := g.store.Versions(r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	last := vs[len(vs)-1]
	spec, err := keys.SpecRequest{ID: last.ID, Type: string(last.Type), Algorithm: string(last.Algorithm), MACAlgorithm: string(last.MACAlgorithm),
		Owner: last.Owner, ActivateAt: req.ActivateAt, ExpiresAt: req.ExpiresAt, Grace: req.Grace}.KeySpec()
	if err != nil {
		return nil, err
	}
	return g.generateKey(r, p, spec, req.Export)
}

func (g *keysAPI) export(r *http.Request, p admin.Principal) (any, error) {
	var req keys.ExportRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		return nil, badRequest("%v", err)
	}
	exp, err := req.ExportTarget.ExportSpec()
	if err != nil {
		return nil, err
	}
	ref := hsm.KeyRef{ID: r.PathValue("id"), Version: req.Version}
	blk, err := g.hsm.ExportKey(actx(r, p), hsm.ExportKeyRequest{Key: ref, ExportSpec: *exp})
	if err != nil {
		return nil, err
	}
	return keys.ExportResponse{Key: ref, KEK: exp.KEK, Format: string(exp.Format), Block: blk}, nil
}

func (g *keysAPI) status(r *http.Request, p admin.Principal) (any, error) {
	var req keys.StatusRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		return nil, badRequest("%v", err)
	}
	if err := noteError("key "+r.PathValue("id")+": reason", req.Reason); err != nil {
		return nil, err
	}
	maskText(r, p, "key "+r.PathValue("id"), "reason", &req.Reason)
	rec, err := g.store.SetStatus(actx(r, p), hsm.KeyRef{ID: r.PathValue("id"), Version: req.Version}, hsm.Status(strings.ToLower(req.Status)), req.Reason)
	if err != nil {
		return nil, err
	}
	return keys.InfoOf(rec), nil
}

func (g *keysAPI) audit(r *http.Request, _ admin.Principal) (any, error) {
	q := r.URL.Query()
	from, limit := uint64(1), 1000
	if v := q.Get("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, badRequest("from %q is not a number", v)
		}
		from = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > kvjson.MaxLimit {
			return nil, badRequest("limit %q: want 1 to %d (page with from=)", v, kvjson.MaxLimit)
		}
		limit = n
	}
	es, err := g.store.AuditLog(from, limit)
	if err != nil {
		return nil, err
	}
	if es == nil {
		es = []keys.AuditEntry{}
	}
	return keys.AuditList{Entries: es}, nil
}

func (g *keysAPI) verifyLog(r *http.Request, _ admin.Principal) (any, error) {
	n, err := g.store.VerifyLog(r.Context())
	out := keys.VerifyLogResponse{OK: err == nil, Entries: n}
	if err != nil {
		out.Error = err.Error()
		var le *keys.LogError
		if !errors.As(err, &le) {
			return nil, err
		}
		out.BrokenAt = le.Seq
	}
	return out, nil
}
