package console

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/switch/registry"
)

// The keys page (admins: inventory and the key audit log with its verification)
// and the operation log with its chain verification. A key is shown by its
// metadata only: keyRow has no field for the key block, so no template can
// print key material by mistake.

// keyRow is a key version without its key block.
type keyRow struct {
	ID, Type, Algorithm, Owner, KCV, Status string
	Version                                 int
	ActivateAt, ExpiresAt, GraceUntil       time.Time
	CreatedAt                               time.Time
	CreatedBy                               string
}

func keyRowOf(k hsm.KeyRecord) keyRow {
	return keyRow{ID: k.ID, Type: string(k.Type), Algorithm: string(k.Algorithm), Owner: k.Owner, KCV: k.KCV, Status: string(k.Status),
		Version: k.Version, ActivateAt: k.ActivateAt, ExpiresAt: k.ExpiresAt, GraceUntil: k.GraceUntil, CreatedAt: k.CreatedAt, CreatedBy: k.CreatedBy}
}

func (c *Console) keysPage(w http.ResponseWriter, r *http.Request, s *session) {
	d := map[string]any{}
	if c.o.Keys == nil {
		d["NoKeys"] = true
		c.render(w, r, s, "keys", d)
		return
	}
	var rows []keyRow
	for _, k := range c.o.Keys.List() {
		rows = append(rows, keyRowOf(k))
	}
	d["Keys"] = rows
	audit, err := c.o.Keys.AuditLog(0, 0)
	if err != nil {
		d["AuditError"] = err.Error()
	}
	if len(audit) > 200 {
		audit = audit[len(audit)-200:]
	}
	for i, j := 0, len(audit)-1; i < j; i, j = i+1, j-1 {
		audit[i], audit[j] = audit[j], audit[i]
	}
	d["Audit"] = audit
	n, err := c.o.Keys.VerifyLog(context.Background())
	d["Verified"], d["VerifyOK"] = n, err == nil
	if err != nil {
		d["VerifyError"] = err.Error()
	}
	c.render(w, r, s, "keys", d)
}

func (c *Console) oplog(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	after, _ := strconv.ParseUint(q.Get("after"), 10, 64)
	es, err := c.o.Registry.Oplog(registry.OplogFilter{Target: q.Get("target"), Actor: q.Get("actor"), Action: q.Get("action"), After: after, Limit: 200})
	if err != nil {
		c.renderError(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
	n, verr := c.o.Registry.VerifyOplog()
	d := map[string]any{"Entries": es, "Verified": n, "VerifyOK": verr == nil, "Target": q.Get("target"), "Actor": q.Get("actor"), "Action": q.Get("action")}
	if verr != nil {
		d["VerifyError"] = verr.Error()
	}
	c.render(w, r, s, "oplog", d)
}
