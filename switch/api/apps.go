package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/apps"
	"github.com/switchyard/switchyard/switch/sched"
)

// appRoutes serves terminal application management (switch/apps, docs/apps.md).
// Uploading is for operators; adding a signing key, publishing and withdrawing
// request a registry change (202) that a different reviewer approves through
// /api/v1/changes/{id}/approve. Reading is open to every role; the rollout is what
// the console's rollout page shows.
//
//	POST /api/v1/apps/packages?name=&version=&models=&kinds=&key=&signature=&sha256=   body: the package
//	GET  /api/v1/apps/packages
//	GET  /api/v1/apps/keys                POST /api/v1/apps/keys      (apps.KeyRequest)
//	GET  /api/v1/apps/groups              POST /api/v1/apps/publish   (apps.PublishRequest)
//	GET  /api/v1/apps/rollout[?group=]    POST /api/v1/apps/withdraw  (apps.WithdrawRequest)
func (a *api) appRoutes() {
	m := a.o.Apps
	op := []admin.Role{admin.RoleOperator}
	h := func(pattern string, roles []admin.Role, fn handlerFunc) { a.route(pattern, roles, registryStatus, fn) }
	h("POST /api/v1/apps/packages", op, func(r *http.Request, p admin.Principal) (any, error) {
		q := r.URL.Query()
		list := func(k string) []string {
			if q.Get(k) == "" {
				return nil
			}
			return strings.Split(q.Get(k), ",")
		}
		pkg, err := m.Upload(actor(p), apps.UploadRequest{Name: q.Get("name"), Version: q.Get("version"), Models: list("models"),
			Kinds: list("kinds"), KeyID: q.Get("key"), Signature: q.Get("signature"), SHA256: q.Get("sha256")}, r.Body)
		if err != nil {
			return nil, err
		}
		return withStatus(http.StatusCreated, pkg), nil
	})
	h("GET /api/v1/apps/packages", readers, func(*http.Request, admin.Principal) (any, error) { return m.Packages(), nil })
	h("GET /api/v1/apps/keys", readers, func(*http.Request, admin.Principal) (any, error) { return m.Keys(), nil })
	h("POST /api/v1/apps/keys", op, func(r *http.Request, p admin.Principal) (any, error) {
		var req apps.KeyRequest
		if err := admin.ReadJSON(r, &req); err != nil {
			return nil, badRequest("%v", err)
		}
		return requested(m.RequestKey(actor(p), req))
	})
	h("GET /api/v1/apps/groups", readers, func(*http.Request, admin.Principal) (any, error) { return m.Groups(), nil })
	h("POST /api/v1/apps/publish", op, func(r *http.Request, p admin.Principal) (any, error) {
		req, err := readPublish(r)
		if err != nil {
			return nil, err
		}
		return requested(m.RequestPublish(actor(p), req))
	})
	h("POST /api/v1/apps/withdraw", op, func(r *http.Request, p admin.Principal) (any, error) {
		var req apps.WithdrawRequest
		if err := admin.ReadJSON(r, &req); err != nil {
			return nil, badRequest("%v", err)
		}
		return requested(m.RequestWithdraw(actor(p), req))
	})
	h("GET /api/v1/apps/rollout", readers, func(r *http.Request, _ admin.Principal) (any, error) {
		return m.Rollouts(r.URL.Query().Get("group"))
	})
}

// readPublish reads the body of POST /api/v1/apps/publish. A target without
// "percent" (or with null) publishes to all the terminals it selects, as before;
// an explicit "percent": 0 is refused (400). Until the fifth release of 6
// December 2026 it was read as 100, so a client that sent 0 to hold a rollout
// back published the release to every terminal of the group (the CLI's
// --percent 0 is refused for the same reason). apps.Target.Percent cannot tell
// the two apart (0 is also how the Go API and the stored changes say "all"), so
// the body is read twice: into the request, and for the field's presence.
func readPublish(r *http.Request) (apps.PublishRequest, error) {
	var req apps.PublishRequest
	var raw json.RawMessage
	if err := admin.ReadJSON(r, &raw); err != nil {
		return req, badRequest("%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, badRequest("request body: %v", err)
	}
	var given struct {
		Target struct {
			Percent *float64 `json:"percent"`
		} `json:"target"`
	}
	if json.Unmarshal(raw, &given) == nil && given.Target.Percent != nil && *given.Target.Percent == 0 {
		return req, badRequest("rollout group %s: target.percent 0 would publish to nobody, which a publication cannot do: omit \"percent\" to publish to all the terminals the target selects, or give more than 0 and at most 100 (until the fifth release of 6 December 2026, 0 was read as 100)", req.Group)
	}
	return req, nil
}

// requested answers a change requested for review with 202.
func requested(c any, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return withStatus(http.StatusAccepted, c), nil
}

// taskRoutes serves the scheduled tasks (switch/sched, docs/tasks.md): list and
// history for every role, run-now for operators, a definition through review.
//
//	GET  /api/v1/tasks                      GET /api/v1/tasks/{name}/history[?limit=]
//	POST /api/v1/tasks/{name}/run           PUT /api/v1/tasks/{name} (sched.PutRequest: 202, a change)
func (a *api) taskRoutes() {
	s := a.o.Tasks
	op := []admin.Role{admin.RoleOperator}
	status := func(err error) int {
		switch {
		case errors.Is(err, sched.ErrNotFound):
			return http.StatusNotFound
		case errors.Is(err, sched.ErrBusy):
			return http.StatusConflict
		}
		return registryStatus(err)
	}
	h := func(pattern string, roles []admin.Role, fn handlerFunc) { a.route(pattern, roles, status, fn) }
	h("GET /api/v1/tasks", readers, func(*http.Request, admin.Principal) (any, error) { return s.List(), nil })
	h("GET /api/v1/tasks/{name}/history", readers, func(r *http.Request, _ admin.Principal) (any, error) {
		name := r.PathValue("name")
		if name == "all" {
			name = ""
		} else if _, ok := s.Task(name); !ok {
			return nil, errorf(http.StatusNotFound, "task %q does not exist", name)
		}
		n, err := queryInt(r, "limit")
		if err != nil {
			return nil, err
		}
		return s.History(name, n)
	})
	h("POST /api/v1/tasks/{name}/run", op, func(r *http.Request, p admin.Principal) (any, error) {
		return s.RunNow(r.Context(), r.PathValue("name"), p.Name)
	})
	h("PUT /api/v1/tasks/{name}", op, func(r *http.Request, p admin.Principal) (any, error) {
		var req sched.PutRequest
		if err := admin.ReadJSON(r, &req); err != nil {
			return nil, badRequest("%v", err)
		}
		if req.Name == "" {
			req.Name = r.PathValue("name")
		}
		if req.Name != r.PathValue("name") {
			return nil, badRequest("task name %q in the body differs from the path's %q", req.Name, r.PathValue("name"))
		}
		return requested(s.RequestPut(actor(p), req))
	})
}
