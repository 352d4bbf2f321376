package apps

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/switch/registry"
)

// TagUpdate is the DE 48 tag of an update offer in the answer to a sign-on or echo
// (ASCII dialects): VERSION:SIZE:SHA256:TOKEN (docs/terminal-interface.md).
const TagUpdate = "UP"

// reportStoreEvery is how often an unchanged report is written again (the time of
// the last report is exact in memory, and at most this old on disk).
const reportStoreEvery = time.Hour

// Report is what a terminal last reported of its application.
type Report struct {
	Terminal string `json:"terminal"`
	// App is the application Version is of: the signed app claim of the verified
	// attestation token (DE 48 AJ) of the terminal's sign-on (AppAttested), else
	// the DE 48 AN sent with the AV, or the name of the package an installation
	// report was for; "" when the terminal never named one. An AV sent without AN
	// keeps the application recorded (until 6 December 2026, third release, it
	// cleared it). Always stored, even empty, so that a report stored before the
	// application was recorded (no "app" at all) is told apart (AppUnrecorded).
	App string `json:"app"`
	// AppAttested says App is the app claim of a verified attestation token, not
	// the terminal's own AN: an AN that names another application no longer
	// replaces it (logged as a mismatch), only a later attested sign-on or an
	// installation report does.
	AppAttested bool   `json:"app_attested,omitempty"`
	Version     string `json:"version,omitempty"` // installed, as in AV
	// AppUnrecorded says the version was stored before 6 December 2026, when the
	// application was not recorded with it: which application it is of is not
	// known. Rollouts counts it under each of the terminal's groups, as before,
	// and says how many (Rollout.Unrecorded), until the terminal reports again.
	AppUnrecorded bool `json:"app_unrecorded,omitempty"`
	// TokenVersion is set when the last installation report (status installed)
	// named a version that is not of the package its download token was for
	// (OfRelease): it is that package's version, and Version is what the
	// terminal claimed. The claim is recorded, but a rollout counts it as
	// another version (Rollout.OtherVersion), never as on the release, until the
	// terminal reports another version (an AV at sign-on or echo, or an
	// installation report matching its token). Until the fifth release of 6
	// December 2026 any version claimed was counted.
	TokenVersion string    `json:"token_version,omitempty"`
	ReportedAt   time.Time `json:"reported_at"`
	Failed       *Failure  `json:"failed,omitempty"` // the last failed installation, until one succeeds
}

// OfRelease reports whether version v, as a terminal reports it, is of release
// version rel (docs/apps.md, Rollout): equal as versions compare (part by part
// as numbers, missing parts 0, leading zeros ignored: 2.1 = 2.1.0 = 2.01), or rel
// followed by more parts, a build number (2.1.0.345 is of 2.1.0). The release's
// parts are the prefix: 2.1.5 is of a release 2.1, not of 2.1.0; publish
// versions with every part but the build number.
func OfRelease(v, rel string) bool {
	rp, err := registry.ParseVersion(rel)
	if err != nil {
		return false
	}
	vp, err := registry.ParseVersion(v)
	if err != nil {
		return false
	}
	if len(vp) > len(rp) {
		vp = vp[:len(rp)]
	}
	return registry.CompareParts(vp, rp) == 0
}

// Failure is a failed installation a terminal reported.
type Failure struct {
	// App is the name of the package whose installation failed ("" when the
	// package is no longer known, or for a failure stored before 6 December 2026).
	App     string    `json:"app,omitempty"`
	Version string    `json:"version"`
	SHA256  string    `json:"sha256,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	At      time.Time `json:"at"`
}

// ReportRequest is the body of POST /apps/v1/report/{tid}.
type ReportRequest struct {
	SHA256  string `json:"sha256"`  // the package the token was issued for
	Version string `json:"version"` // the version installed (status installed) or tried (failed)
	Status  string `json:"status"`  // installed or failed
	Detail  string `json:"detail,omitempty"`
}

// Offer is called at sign-on and echo with the terminal's AV (may be empty): it
// records the AV as the installed version, of application app (DE 48 AN as sent:
// "" when the terminal named none), and returns the DE 48 UP value to send
// when a newer release is offered to the terminal ("" when none). The cup dialect
// signals the same offer with header processing requirement 6 (the caller sets it
// when Offer returns a value). With Options.NoTokens nothing is offered. A
// terminal the registry does not know gets nothing and leaves nothing: an echo is
// answered without terminal checks, and an unknown terminal ID has no MAC key to
// verify, so its AV is not kept (a report per made-up ID, in memory and in Badger,
// grew without bound).
//
// app is the application the terminal says it runs (DE 48 AN; "" when absent): it
// is offered the highest release of that application among its groups, never
// another application's. A terminal that names none is offered its groups'
// release only when they all publish one application; in groups of several it is
// offered nothing (assignment.offerFor). An AV without AN keeps the application
// recorded for the terminal. An AN naming another application than the one a
// verified attestation recorded (Report.AppAttested) is the terminal's word
// against the attestation service's: the attested application stays recorded and
// is the one offered, and the mismatch is logged at Warn.
func (m *Manager) Offer(tid, app, appVersion string, now time.Time) string {
	return m.offer(tid, app, false, appVersion, now)
}

// OfferAttested is Offer for a sign-on that carried a verified attestation token
// (DE 48 AJ) the terminal checks accepted: app is the token's signed app claim,
// which is recorded (Report.AppAttested) and offered for whatever the terminal's
// AN says (the caller logs an AN that disagrees). A report of the service that
// examined the phone is stronger than the terminal's own, as in the purchase's
// minimum-version check, which compares the signed app and ver, never AN and AV.
func (m *Manager) OfferAttested(tid, app, appVersion string, now time.Time) string {
	return m.offer(tid, app, true, appVersion, now)
}

// offer is Offer and OfferAttested.
func (m *Manager) offer(tid, app string, attested bool, appVersion string, now time.Time) string {
	if _, ok := m.reg.Terminal(tid); !ok {
		return ""
	}
	named := app
	if appVersion != "" && validVersion(appVersion) {
		m.record(tid, func(r *Report) {
			app = recordApp(r, app, attested)
			if r.Version != appVersion {
				r.TokenVersion = "" // another version: the terminal's own word, as every AV
			}
			r.Version, r.AppUnrecorded = appVersion, false
			if r.Failed != nil && cmp(appVersion, r.Failed.Version) >= 0 {
				r.Failed = nil
			}
		}, now)
	} else if r, ok := m.ReportOf(tid); ok && !attested && app != "" && r.AppAttested && r.App != app {
		app = r.App
	}
	if app != named && named != "" {
		m.log.Warn().Str("tid", tid).Str("an", named).Str("attested_app", app).
			Msg("apps: the terminal's AN names another application than its verified attestation did: the attested application stays recorded and is the one offered")
	}
	if m.token == nil {
		return ""
	}
	a := m.asg.Load()
	o, ok := a.offerFor(tid, app)
	if !ok || (appVersion != "" && cmp(appVersion, o.rel.Version) >= 0) {
		return ""
	}
	p := o.pkg
	return p.Version + ":" + strconv.FormatInt(p.Size, 10) + ":" + p.SHA256 + ":" + m.Token(tid, p.SHA256, now.Add(m.opts.TokenTTL))
}

// recordApp sets the application of report r from what a sign-on or echo said,
// app (attested: a verified attestation's claim; else DE 48 AN, "" when absent),
// and returns the application the terminal is taken to run, for its offer. An
// attested application is recorded as such. A terminal that names none keeps the
// one recorded (until 6 December 2026, third release, an AV without AN cleared
// it) but is offered as one that names none (app ""), as the registry holds it.
// An AN naming another application than an attested one does not replace it: the
// attested application is returned (the caller logs the mismatch).
func recordApp(r *Report, app string, attested bool) string {
	switch {
	case attested && app != "": // a token without app names none: as no AN
		r.App, r.AppAttested = app, true
	case app == "":
	case r.AppAttested && r.App != app:
		return r.App
	case r.App != app:
		r.App, r.AppAttested = app, false
	}
	return app
}

// record updates tid's report and writes it when it changed or was last written
// long ago.
func (m *Manager) record(tid string, fn func(*Report), now time.Time) {
	m.repMu.Lock()
	old := m.reports[tid]
	r := &Report{Terminal: tid}
	if old != nil {
		c := *old
		r = &c
	}
	fn(r)
	r.ReportedAt = now.UTC()
	m.reports[tid] = r
	changed := old == nil || old.Version != r.Version || old.TokenVersion != r.TokenVersion || old.App != r.App || old.AppAttested != r.AppAttested || old.AppUnrecorded != r.AppUnrecorded || (old.Failed == nil) != (r.Failed == nil) ||
		(old.Failed != nil && r.Failed != nil && *old.Failed != *r.Failed)
	store := changed || now.Sub(m.stored[tid]) >= reportStoreEvery
	if store {
		m.stored[tid] = now
	}
	m.repMu.Unlock()
	if !store {
		return
	}
	b, _ := json.Marshal(r)
	if err := m.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(pfxReport+tid), b) }); err != nil {
		m.log.Error().Err(err).Str("tid", tid).Msg("apps: store terminal report")
	}
}

// ReportOf returns terminal tid's last report: the application version it reported
// (AV or an installation report) and when, and its last failed installation.
func (m *Manager) ReportOf(tid string) (Report, bool) {
	m.repMu.Lock()
	defer m.repMu.Unlock()
	r, ok := m.reports[tid]
	if !ok {
		return Report{}, false
	}
	return *r, true
}

// Reports returns the last report of every terminal that made one.
func (m *Manager) Reports() map[string]Report {
	m.repMu.Lock()
	defer m.repMu.Unlock()
	out := make(map[string]Report, len(m.reports))
	for k, v := range m.reports {
		out[k] = *v
	}
	return out
}

// Handler serves the terminals' routes: GET /apps/v1/download/{tid}/{sha256} and
// POST /apps/v1/report/{tid}, each with "Authorization: Bearer TOKEN" (the token of
// the UP offer). Mount it at /apps/v1/ on an HTTPS server.
func (m *Manager) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apps/v1/download/{tid}/{sha256}", m.download)
	mux.HandleFunc("POST /apps/v1/report/{tid}", m.report)
	return mux
}

func bearer(r *http.Request) string {
	a := r.Header.Get("Authorization")
	if len(a) > 7 && strings.EqualFold(a[:7], "Bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

func httpError(w http.ResponseWriter, status int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf(format, args...)})
}

// fileStamp is what a verified blob looked like when its hash was checked.
type fileStamp struct {
	size  int64
	mtime time.Time
}

func (m *Manager) download(w http.ResponseWriter, r *http.Request) {
	tid, sum := r.PathValue("tid"), strings.ToLower(r.PathValue("sha256"))
	now := m.now()
	if err := m.checkToken(bearer(r), tid, sum, now); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard-apps"`)
		httpError(w, http.StatusUnauthorized, "download of %s by terminal %s: %v", sum, tid, err)
		return
	}
	if err := m.standing(tid); err != nil {
		httpError(w, http.StatusForbidden, "download of %s by terminal %s: %v", sum, tid, err)
		return
	}
	var o offer
	ok := false
	for _, x := range m.asg.Load().offers[tid] {
		if x.pkg.SHA256 == sum {
			o, ok = x, true
		}
	}
	if !ok {
		httpError(w, http.StatusGone, "package %s is not (or no longer) offered to terminal %s: withdrawn or replaced; sign on again", sum, tid)
		return
	}
	path := m.blobs.path(sum)
	f, err := os.Open(path)
	if err != nil {
		m.log.Error().Err(err).Str("sha256", sum).Msg("apps: package blob missing")
		httpError(w, http.StatusInternalServerError, "package %s: blob unavailable", sum)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		httpError(w, http.StatusInternalServerError, "package %s: blob unavailable", sum)
		return
	}
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if v, ok := m.verified.Load(sum); !ok || v.(fileStamp) != st {
		got, err := hashFile(path)
		if err != nil || got != sum || fi.Size() != o.pkg.Size {
			m.verified.Delete(sum)
			m.log.Error().Str("sha256", sum).Str("got", got).Int64("size", fi.Size()).Msg("apps: package blob altered on disk: not served")
			httpError(w, http.StatusInternalServerError, "package %s: the stored blob does not match its hash: not served (upload it again)", sum)
			return
		}
		m.verified.Store(sum, st)
	}
	w.Header().Set("ETag", `"`+sum+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, o.pkg.Name+"-"+o.pkg.Version+".bin", fi.ModTime(), f)
}

func (m *Manager) report(w http.ResponseWriter, r *http.Request) {
	tid := r.PathValue("tid")
	var rr ReportRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&rr); err != nil {
		httpError(w, http.StatusBadRequest, "report of terminal %s: body: %v", tid, err)
		return
	}
	now := m.now()
	if err := m.checkToken(bearer(r), tid, strings.ToLower(rr.SHA256), now); err != nil {
		httpError(w, http.StatusUnauthorized, "report of terminal %s: %v", tid, err)
		return
	}
	if err := m.standing(tid); err != nil {
		httpError(w, http.StatusForbidden, "report of terminal %s: %v", tid, err)
		return
	}
	if !validVersion(rr.Version) {
		httpError(w, http.StatusBadRequest, "report of terminal %s: version %q: want a dotted numeric version", tid, rr.Version)
		return
	}
	sum := strings.ToLower(rr.SHA256)
	var app, tokenVersion string
	if pkg := m.packageOf(sum); pkg != nil {
		app = pkg.Name
		if rr.Status == "installed" && !OfRelease(rr.Version, pkg.Version) {
			// The token is for pkg: a terminal that says it installed another
			// version is recorded as it says, but not counted on the release.
			tokenVersion = pkg.Version
			m.log.Warn().Str("tid", tid).Str("version", rr.Version).Str("package", pkg.Ref()).
				Msg("apps: terminal reports installing another version than the package its download token is for: recorded, counted as another version")
		}
	}
	switch rr.Status {
	case "installed":
		m.record(tid, func(p *Report) {
			p.Version, p.Failed, p.TokenVersion = rr.Version, nil, tokenVersion
			if app != "" {
				// The package the switch offered this terminal (for the
				// application recorded, attested or not): another one's
				// installation is the terminal's word, no longer attested.
				if p.App != app {
					p.App, p.AppAttested = app, false
				}
				p.AppUnrecorded = false
			}
		}, now)
	case "failed":
		d := cleanDetail(rr.Detail)
		m.record(tid, func(p *Report) {
			p.Failed = &Failure{App: app, Version: rr.Version, SHA256: sum, Detail: d, At: now.UTC()}
		}, now)
		m.log.Warn().Str("tid", tid).Str("version", rr.Version).Str("detail", d).Msg("apps: terminal reports a failed installation")
	default:
		httpError(w, http.StatusBadRequest, "report of terminal %s: status %q: want installed or failed", tid, rr.Status)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// standing refuses the download or report of terminal tid, whose token checked,
// when the terminal could not sign on now for its status or its merchant's
// (registry.Standing: unknown, pending, suspended or closed; a merchant pending,
// frozen or closed): a token stands for its terminal, as the sign-on that gave
// it did, only while the terminal could still make that sign-on. It is checked at
// each request, so a suspension (an operator's, or the switch's own: a wave of
// declines, a device mismatch) or a freeze stops the terminal's downloads at once,
// and a resumption lets the same token work again. Until the fifth release of 6
// December 2026 a token kept working until it expired (Options.TokenTTL, 24 h):
// a terminal suspended as stolen went on downloading the acquirer's application.
func (m *Manager) standing(tid string) error {
	if why := m.reg.Standing(tid); why != registry.ReasonNone {
		m.log.Warn().Str("tid", tid).Str("reason", string(why)).Msg("apps: terminal's download token refused: the terminal could not sign on")
		return fmt.Errorf("the terminal could not sign on now (%s): its download token is not honoured", why)
	}
	return nil
}

// packageOf returns the package with SHA-256 sum, the one an installation
// report's token is for: its name is the application the report is of, its
// version the one the report must name (OfRelease); nil when this node has no
// such package (the report is then recorded as the terminal says).
func (m *Manager) packageOf(sum string) *Package {
	if p := m.asg.Load().pkgs[sum]; p != nil {
		return p
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.pkgs {
		if p.SHA256 == sum {
			return p
		}
	}
	return nil
}

// maxDetail bounds the text a terminal reports with a failed installation.
const maxDetail = 200

// cleanDetail is the text a terminal reported with a failed installation as the
// switch keeps, logs and shows it (the console's terminal and applications
// pages): a tab, line break, control, format (bidi, zero-width) or invisible
// character, or a byte that is not UTF-8, becomes a space (registry.NoteProblem's
// characters: a bidi override would reorder the text an operator reads); a card
// number is masked (carddata.MaskText: the switch stores and logs no clear PAN,
// and an application's error message may quote one); and the text is cut to
// maxDetail bytes on a character boundary. The terminal's text is kept, cleaned,
// not refused: the failure is what matters. Before 6 December 2026 it was kept
// and logged as sent, cut at 200 bytes inside a character if need be.
func cleanDetail(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || r == '\t' || r == '\n' || r == '\r' || registry.NoteProblem(string(r)) != "" {
			return ' '
		}
		return r
	}, s)
	s, _ = carddata.MaskText(s)
	if len(s) > maxDetail {
		i := maxDetail
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	return s
}

// Rollout is the state of a group's rollout, for the CLI and the console.
type Rollout struct {
	Group     string   `json:"group"`
	Current   *Release `json:"current,omitempty"`
	Terminals int      `json:"terminals"` // in the group
	Offered   int      `json:"offered"`   // within its percentage
	// Refused says why the current release is offered to no terminal: its package's
	// signing key was revoked or replaced since it was signed ("" when offered).
	Refused string `json:"refused,omitempty"`
	// Versions counts the group's terminals running its application by the
	// version they last reported ("unknown": none reported). A terminal runs it
	// when it named it (DE 48 AN with the AV, or the package of an installation
	// report), or named none while all its groups publish this one application
	// (as offers go: assignment.offerFor), or when its report was stored before
	// the application was recorded (Unrecorded). Until 6 December 2026 every
	// terminal of the group was counted here, whatever application its version
	// was of.
	Versions map[string]int `json:"versions"`
	// UnknownApp counts by version the group's terminals that named no
	// application while their groups publish several: which one the version is
	// of is not known. They are held to the highest minimum of their groups, so
	// BelowMin counts them; OnRelease does not.
	UnknownApp map[string]int `json:"unknown_app,omitempty"`
	// OtherApp is how many of the group's terminals last reported a version of
	// another application (in neither Versions, OnRelease nor BelowMin).
	OtherApp int `json:"other_app,omitempty"`
	// Unrecorded is how many of Versions are reports stored before 6 December
	// 2026 without their application (Report.AppUnrecorded), counted as before.
	Unrecorded int `json:"unrecorded,omitempty"`
	// OtherVersion is how many of Versions last reported installing a version
	// that is not of the package their download token was for
	// (Report.TokenVersion): counted by the version they claim, never in
	// OnRelease. OtherVersions are the first 100 of them.
	OtherVersion  int       `json:"other_version,omitempty"`
	OtherVersions []Report  `json:"other_versions,omitempty"`
	OnRelease     int       `json:"on_release"`       // running the application, at or above the current release
	BelowMin      int       `json:"below_min"`        // below the group minimum (declined 58)
	Failures      int       `json:"failures"`         // last installation (of this application) failed
	Failed        []Report  `json:"failed,omitempty"` // the first 100 of them
	ComputedAt    time.Time `json:"computed_at"`
}

// Rollouts returns the rollout of each group (only group if not "").
func (m *Manager) Rollouts(group string) ([]Rollout, error) {
	a := m.asg.Load()
	reps := m.Reports()
	var out []Rollout
	for _, g := range m.Groups() {
		if group != "" && g.Name != group {
			continue
		}
		ro := Rollout{Group: g.Name, Current: g.Current, Versions: map[string]int{}, ComputedAt: a.at,
			Terminals: len(a.members[g.Name]), Offered: len(a.offered[g.Name]), Refused: a.refused[g.Name]}
		// No members without a current release (resolve); but a withdrawal
		// approved since a was loaded may have cleared it.
		for _, tid := range a.members[g.Name] {
			if g.Current != nil {
				ro.count(reps[tid], a.apps[tid])
			}
		}
		if len(ro.UnknownApp) == 0 {
			ro.UnknownApp = nil
		}
		out = append(out, ro)
	}
	if group != "" && len(out) == 0 {
		return nil, notFoundf("rollout group %q does not exist", group)
	}
	return out, nil
}

// count adds to ro (a group with a current release) one of its terminals: rep,
// its last report (zero when none), and apps, the applications of its groups.
func (ro *Rollout) count(rep Report, apps []string) {
	cur := ro.Current
	below := func(v string) bool {
		return cur.MinVersion != "" && (v == "" || cmp(v, cur.MinVersion) < 0)
	}
	if rep.Failed != nil && (rep.Failed.App == "" || rep.Failed.App == cur.App) {
		ro.Failures++
		if len(ro.Failed) < 100 {
			ro.Failed = append(ro.Failed, rep)
		}
	}
	v := rep.Version
	switch {
	case v == "": // no version reported
		ro.Versions["unknown"]++
	case rep.App == "" && !rep.AppUnrecorded && !(len(apps) == 1 && apps[0] == cur.App):
		if ro.UnknownApp == nil {
			ro.UnknownApp = map[string]int{}
		}
		ro.UnknownApp[v]++
	case rep.App != "" && rep.App != cur.App:
		ro.OtherApp++
		return
	default: // the group's application, named, the only one of its groups, or unrecorded
		ro.Versions[v]++
		if rep.AppUnrecorded {
			ro.Unrecorded++
		}
		if rep.TokenVersion != "" {
			ro.OtherVersion++
			if len(ro.OtherVersions) < 100 {
				ro.OtherVersions = append(ro.OtherVersions, rep)
			}
		} else if cmp(v, cur.Version) >= 0 {
			ro.OnRelease++
		}
	}
	if below(v) {
		ro.BelowMin++
	}
}

// Offered returns the terminals offered group's release, for tests and the CLI.
func (m *Manager) Offered(group string) []string {
	return append([]string(nil), m.asg.Load().offered[group]...)
}
