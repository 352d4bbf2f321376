package api

import (
	"net/http"

	"github.com/switchyard/switchyard/switch/admin"
)

// The console users' routes (switch/console logs them in), admins only:
//
//	GET  /api/v1/users                      every user, without password hashes
//	POST /api/v1/users                      {"name", "role", "password"}: add a user
//	                                        (409 for the name of an admin token)
//	POST /api/v1/users/{name}/password      {"password"}: set a new password
//	POST /api/v1/users/{name}/disable       disable (its sessions end at their next request)
//	POST /api/v1/users/{name}/enable        enable again
//
// The registry stores them, with an oplog entry per change; the password is
// hashed there (argon2id) and never logged.
func (a *api) users() {
	g := &registryAPI{reg: a.o.Registry}
	h := func(pattern string, fn handlerFunc) { a.route(pattern, adminsOnly, registryStatus, fn) }
	h("GET /api/v1/users", func(_ *http.Request, _ admin.Principal) (any, error) { return g.reg.Users() })
	h("POST /api/v1/users", func(r *http.Request, p admin.Principal) (any, error) {
		var body UserRequest
		if err := readBody(r, &body); err != nil {
			return nil, err
		}
		if a.o.Auth.HasName(body.Name) {
			return nil, errorf(http.StatusConflict, "user %s: an admin token of the configuration has that name, and the oplog records names only: "+
				"give the console user another name (one name, one person)", body.Name)
		}
		u, err := g.reg.AddUser(actor(p), body.Name, body.Role, body.Password)
		if err != nil {
			return nil, err
		}
		return withStatus(http.StatusCreated, u), nil
	})
	h("POST /api/v1/users/{name}/password", func(r *http.Request, p admin.Principal) (any, error) {
		var body UserRequest
		if err := readBody(r, &body); err != nil {
			return nil, err
		}
		if err := g.reg.SetPassword(actor(p), r.PathValue("name"), body.Password); err != nil {
			return nil, err
		}
		return g.reg.User(r.PathValue("name"))
	})
	for _, action := range []string{"disable", "enable"} {
		h("POST /api/v1/users/{name}/"+action, func(r *http.Request, p admin.Principal) (any, error) {
			if err := g.reg.DisableUser(actor(p), r.PathValue("name"), action == "disable"); err != nil {
				return nil, err
			}
			return g.reg.User(r.PathValue("name"))
		})
	}
}

// UserRequest is the body of POST /api/v1/users and of .../password.
type UserRequest struct {
	Name     string `json:"name,omitempty"`
	Role     string `json:"role,omitempty"`
	Password string `json:"password"`
}
