package console

import (
	"net/http"

	"github.com/switchyard/switchyard/switch/apps"
)

// Rollouts is what the applications page reads of the terminal application manager
// (*apps.Manager): each rollout group's release and how far its terminals are.
type Rollouts interface {
	Rollouts(group string) ([]apps.Rollout, error)
	// ReportOf is a terminal's last report: the version it runs (terminal page).
	ReportOf(tid string) (apps.Report, bool)
}

// appsPage shows each rollout group: the release in force, the share offered, the
// group's terminals by the version they last reported, how many are on the release
// or below the group minimum, and the failed installations (docs/apps.md). Changes
// (upload, publish, withdraw) stay with `switchyard app` and the review queue.
func (c *Console) appsPage(w http.ResponseWriter, r *http.Request, s *session) {
	d := map[string]any{}
	if c.o.Apps == nil {
		d["NoApps"] = true
		c.render(w, r, s, "apps", d)
		return
	}
	ro, err := c.o.Apps.Rollouts(r.URL.Query().Get("group"))
	if err != nil {
		c.renderError(w, r, s, http.StatusBadRequest, notFound("rollout group", r.URL.Query().Get("group"), err))
		return
	}
	d["Rollouts"] = ro
	c.render(w, r, s, "apps", d)
}
