package registry

// Actor is who asks the registry for something: the name recorded in the change and
// the operations log, and the role it acts in, which decides what it may do. The
// roles are the admin API's (operator, reviewer, analyst, admin); the registry
// checks them itself so that no caller, HTTP or not, skips the two-person review.
type Actor struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// The roles the registry's checks know.
const (
	RoleOperator = "operator" // requests changes, handles incidents and alerts
	RoleReviewer = "reviewer" // approves or rejects changes
	RoleAdmin    = "admin"    // everything
)
