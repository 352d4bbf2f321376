package console

import (
	"github.com/switchyard/switchyard/switch/admin"
)

// The roles of the pages and actions, as the admin API's routes have them:
// everybody reads the registry, incidents, transactions and rules; operators
// request changes and handle incidents and alerts; reviewers approve and
// reject; analysts reload rules and run backtests; keys are the admins' (the
// admin role may do everything).
var (
	everyone  []admin.Role
	operators = []admin.Role{admin.RoleOperator}
	reviewers = []admin.Role{admin.RoleReviewer}
	analysts  = []admin.Role{admin.RoleAnalyst}
	admins    = []admin.Role{admin.RoleAdmin}
)

// pages is the console's page table, in navigation order. A new page is one row
// here and one template in templates/ (its name the row's template argument to
// render); the navigation, the role check and the session handling come with
// the row.
func pages() []Page {
	return []Page{
		{Path: "/", Title: "nav.dashboard", Nav: true, Serve: (*Console).dashboard},
		{Path: "/merchants", Title: "nav.merchants", Nav: true, Serve: (*Console).merchants},
		{Path: "/merchants/{id}", Title: "nav.merchants", Serve: (*Console).merchant},
		{Path: "/terminals", Title: "nav.terminals", Nav: true, Serve: (*Console).terminals},
		{Path: "/terminals/{id}", Title: "nav.terminals", Serve: (*Console).terminal},
		{Path: "/changes", Title: "nav.changes", Nav: true, Serve: (*Console).changes},
		{Path: "/changes/{id}", Title: "nav.changes", Serve: (*Console).change},
		{Path: "/incidents", Title: "nav.incidents", Nav: true, Serve: (*Console).incidents},
		{Path: "/transactions", Title: "nav.transactions", Nav: true, Serve: (*Console).transactions},
		{Path: "/transactions/{rrn}", Title: "nav.transactions", Serve: (*Console).transaction},
		{Path: "/rules", Title: "nav.rules", Nav: true, Serve: (*Console).rules},
		{Path: "/map", Title: "nav.map", Nav: true, Serve: (*Console).mapPage},
		{Path: "/apps", Title: "nav.apps", Nav: true, Serve: (*Console).appsPage},
		{Path: "/keys", Title: "nav.keys", Roles: admins, Nav: true, Serve: (*Console).keysPage},
		{Path: "/oplog", Title: "nav.oplog", Nav: true, Serve: (*Console).oplog},
		{Path: "/users", Title: "nav.users", Roles: admins, Nav: true, Serve: (*Console).users},
	}
}

// actions is the console's table of state-changing requests (POST, CSRF token
// checked by withSession before they run).
func actions() []Action {
	return []Action{
		{Path: "/merchants", Roles: operators, Do: (*Console).registerMerchant},
		{Path: "/merchants/{id}/{action}", Roles: operators, Do: (*Console).merchantAction},
		{Path: "/terminals/{id}/{action}", Roles: operators, Do: (*Console).terminalAction},
		{Path: "/changes/{id}/approve", Roles: reviewers, Do: (*Console).approve},
		{Path: "/changes/{id}/reject", Roles: reviewers, Do: (*Console).reject},
		{Path: "/changes/{id}/cancel", Roles: operators, Do: (*Console).cancel},
		{Path: "/incidents/{id}/{action}", Roles: operators, Do: (*Console).incidentAction},
		{Path: "/alerts/{id}/ack", Roles: operators, Do: (*Console).ackAlert},
		{Path: "/alert-rules", Roles: operators, Do: (*Console).putAlertRule},
		{Path: "/alert-rules/{id}/delete", Roles: operators, Do: (*Console).deleteAlertRule},
		{Path: "/rules/reload", Roles: analysts, Do: (*Console).reloadRules},
		{Path: "/rules/backtest", Roles: analysts, Do: (*Console).startBacktest},
		{Path: "/users", Roles: admins, Do: (*Console).addUser},
		{Path: "/users/{name}/{action}", Roles: admins, Do: (*Console).userAction},
	}
}
