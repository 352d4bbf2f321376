package apps

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/registry"
)

// The reviewed operations of this package (registry.RegisterOp).
const (
	OpKeyPut   registry.Op = "app-key.put"  // add (or revoke) an app-signing public key
	OpPublish  registry.Op = "app.publish"  // make a package the current release of a group
	OpWithdraw registry.Op = "app.withdraw" // stop a group's release; optionally roll back
)

// Target selects the terminals of a rollout group. Each non-empty field must
// match (AND); within a field any value matches (OR). An empty Target is every
// terminal the package targets.
type Target struct {
	Merchants      []string `json:"merchants,omitempty"`
	MerchantGroups []string `json:"merchant_groups,omitempty"`
	Tiers          []string `json:"tiers,omitempty"`
	Regions        []string `json:"regions,omitempty"`
	Models         []string `json:"models,omitempty"`
	Kinds          []string `json:"kinds,omitempty"`
	Terminals      []string `json:"terminals,omitempty"`
	// Percent is the share of the matching terminals offered the release, 0 < p <=
	// 100 (0 means 100): exact and deterministic per terminal (see the package doc).
	Percent float64 `json:"percent,omitempty"`
}

func (t *Target) percent() float64 {
	if t.Percent == 0 {
		return 100
	}
	return t.Percent
}

// matches reports whether terminal tm of merchant m is in the target and the
// package runs on it.
func (t *Target) matches(tm *registry.Terminal, m *registry.Merchant, p *Package) bool {
	in := func(vals []string, v string) bool { return len(vals) == 0 || slices.Contains(vals, v) }
	if !in(p.Models, tm.Model) || !in(p.Kinds, string(tm.Kind)) {
		return false
	}
	if !in(t.Terminals, tm.ID) || !in(t.Merchants, tm.MerchantID) || !in(t.Models, tm.Model) || !in(t.Kinds, string(tm.Kind)) {
		return false
	}
	if len(t.MerchantGroups)+len(t.Tiers)+len(t.Regions) > 0 {
		if m == nil || !in(t.MerchantGroups, m.Group) || !in(t.Tiers, m.Tier) || !in(t.Regions, m.Region) {
			return false
		}
	}
	return true
}

// PublishRequest is the body of POST /api/v1/apps/publish: make App@Version the
// current release of Group for the terminals Target selects.
type PublishRequest struct {
	Group   string `json:"group"`
	App     string `json:"app"`
	Version string `json:"version"`
	Target  Target `json:"target"`
	// MinVersion, when set, is the group's minimum version: older applications on the
	// group's terminals are declined 58 app-version-low. At most Version.
	MinVersion string `json:"min_version,omitempty"`
	// AllowUnknownTargets lets Target name merchant and terminal IDs the registry
	// does not know (yet): for terminals to be registered later. Without it such
	// IDs are refused, at the request and again at the approval (checkPublish,
	// unknownTargets): a typo would reach no terminal, silently. It is recorded in
	// the change, and on the release.
	AllowUnknownTargets bool   `json:"allow_unknown_targets,omitempty"`
	Reason              string `json:"reason,omitempty"`
}

// WithdrawRequest is the body of POST /api/v1/apps/withdraw: stop Group's current
// release (downloads stop at once); with Rollback the group's previous release is
// current again.
type WithdrawRequest struct {
	Group    string `json:"group"`
	Rollback bool   `json:"rollback,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// KeyRequest is the body of POST /api/v1/apps/keys.
type KeyRequest struct {
	SigningKey
	Reason string `json:"reason,omitempty"`
}

// Release is a group's release: a package, who it targets, since when.
type Release struct {
	Group      string `json:"group"`
	App        string `json:"app"`
	Version    string `json:"version"`
	SHA256     string `json:"sha256"`
	Target     Target `json:"target"`
	MinVersion string `json:"min_version,omitempty"`
	// Runs is what the package runs on (its signed models and kinds), fixed when
	// the publication was requested; nil for a publication requested before 6
	// December 2026. A node without the package (packages are per node) selects
	// the group's terminals with it, so that the group's minimum holds there too.
	Runs *Runs `json:"runs,omitempty"`
	// AllowUnknownTargets says the publication was requested with merchant or
	// terminal IDs allowed that the registry did not know (PublishRequest).
	AllowUnknownTargets bool      `json:"allow_unknown_targets,omitempty"`
	Change              string    `json:"change"` // the approved change that published it
	PublishedAt         time.Time `json:"published_at"`
	RequestedBy         string    `json:"requested_by"`
	ApprovedBy          string    `json:"approved_by"`
}

// Runs is what a package runs on: the models and kinds of its signed statement
// (empty: any).
type Runs struct {
	Models []string `json:"models,omitempty"`
	Kinds  []string `json:"kinds,omitempty"`
}

// runsOf returns what package p runs on, its lists sorted.
func runsOf(p *Package) *Runs {
	return &Runs{Models: slices.Sorted(slices.Values(p.Models)), Kinds: slices.Sorted(slices.Values(p.Kinds))}
}

// Group is a rollout group: its current release (nil after a withdrawal without a
// previous release) and the earlier ones, oldest first.
type Group struct {
	Name    string   `json:"name"`
	Current *Release `json:"current,omitempty"`
	// Matches is how many registered terminals (not closed) the current
	// release's target selects now, among those its package runs on: the
	// group's terminals at its last resolution (Refresh: at each approval, upload
	// and apps.refresh_interval), offered or not. 0 for a target whose IDs name
	// no terminal yet. Set by Manager.Groups, not stored.
	Matches   int        `json:"matches"`
	History   []*Release `json:"history,omitempty"`
	Withdrawn []*Release `json:"withdrawn,omitempty"`
}

// state is the fold of the approved changes: keys and groups.
type state struct {
	keys   map[string]*SigningKey
	groups map[string]*Group
}

func newState() *state {
	return &state{keys: map[string]*SigningKey{}, groups: map[string]*Group{}}
}

// apply folds one approved change into s.
func (s *state) apply(c *registry.Change) {
	at := c.RequestedAt
	if c.ReviewedAt != nil {
		at = *c.ReviewedAt
	}
	switch c.Op {
	case OpKeyPut:
		var k SigningKey
		if json.Unmarshal(c.Ext, &k) != nil {
			return
		}
		_, k.Algorithm, _ = parsePublicKey(k.PublicKey)
		k.AddedAt, k.AddedBy, k.Change = at, c.RequestedBy, c.ID
		s.keys[k.ID] = &k
	case OpPublish:
		var pp publishPayload
		if json.Unmarshal(c.Ext, &pp) != nil {
			return
		}
		pr, sum := pp.PublishRequest, pp.SHA256
		g := s.groups[pr.Group]
		if g == nil {
			g = &Group{Name: pr.Group}
			s.groups[pr.Group] = g
		}
		if g.Current != nil {
			g.History = append(g.History, g.Current)
		}
		g.Current = &Release{Group: pr.Group, App: pr.App, Version: pr.Version, SHA256: sum, Target: pr.Target,
			MinVersion: pr.MinVersion, Runs: pp.Runs, AllowUnknownTargets: pr.AllowUnknownTargets, Change: c.ID, PublishedAt: at, RequestedBy: c.RequestedBy, ApprovedBy: c.ReviewedBy}
	case OpWithdraw:
		var wr WithdrawRequest
		if json.Unmarshal(c.Ext, &wr) != nil {
			return
		}
		g := s.groups[wr.Group]
		if g == nil || g.Current == nil {
			return
		}
		g.Withdrawn = append(g.Withdrawn, g.Current)
		g.Current = nil
		if wr.Rollback && len(g.History) > 0 {
			g.Current = g.History[len(g.History)-1]
			g.History = g.History[:len(g.History)-1]
		}
	}
}

// publishPayload is what an app.publish change carries: the request and the hash
// of the package it names, fixed when requested (a package is immutable, but the
// reviewer must approve exactly the bytes that were checked), and the group's base.
type publishPayload struct {
	PublishRequest
	SHA256 string  `json:"sha256"`
	Runs   *Runs   `json:"runs,omitempty"` // the package's models and kinds (Release.Runs)
	Base   *string `json:"base,omitempty"` // see base
}

// withdrawPayload is what an app.withdraw change carries: the request and the
// group's base.
type withdrawPayload struct {
	WithdrawRequest
	Base *string `json:"base,omitempty"` // see base
}

// keyPayload is what an app-key.put change carries: the key and its base.
type keyPayload struct {
	SigningKey
	Base *string `json:"base,omitempty"` // see base
}

// The base of a change is the approved change that last set what it changes, when
// it was requested: for a publication or withdrawal, the change that published
// the group's current release; for a key, the change that last put it ("" when
// none). An approval refuses a change whose base is no longer that (conflict),
// for two reasons. The reviewer approves the effect shown (withdraw 2.1, roll
// back to 2.0), which another approval in between makes another (withdraw the fix
// 2.2, put 2.1 back). And the state is the fold of the approved changes in the
// order they were requested: a change approved after a later-requested one on the
// same group or key would be folded before it, so that a key revocation approved
// last was undone by a re-add requested after it, and a withdrawal approved last
// was applied before the publication it was meant to follow. With the base, no two
// changes of one group or key are approved out of order. Nil (a change requested
// by a version before 6 December 2026): not checked.

// groupBase returns the base of group g in s.
func (s *state) groupBase(g string) string {
	if gr := s.groups[g]; gr != nil && gr.Current != nil {
		return gr.Current.Change
	}
	return ""
}

// keyBase returns the base of key id in s.
func (s *state) keyBase(id string) string {
	if k := s.keys[id]; k != nil {
		return k.Change
	}
	return ""
}

// staleBase returns a conflict error when base is set and is not now, the base
// of what the change c changes (what, e.g. "rollout group north").
func staleBase(c *registry.Change, what string, base *string, now string) error {
	if base == nil || *base == now {
		return nil
	}
	name := func(s string) string {
		if s == "" {
			return "none"
		}
		return s
	}
	return conflictf("%s changed since %s was requested (last set by change %s then, %s now): approving it would apply something other than what it showed; request it again",
		what, c.ID, name(*base), name(now))
}

// trust reports why package p may not be offered or published now (nil when it
// may): its signing key must still be approved and unrevoked, and the public key
// approved under that ID now must verify its signature (a key replaced under the
// same ID does not vouch for what the old one signed). Upload checked the same
// when the package came; this holds the package to the keys of today.
func (s *state) trust(p *Package) error {
	k := s.keys[p.KeyID]
	switch {
	case k == nil:
		return fmt.Errorf("its signing key %q is not an approved app-signing key", p.KeyID)
	case k.Revoked:
		return fmt.Errorf("its signing key %q is revoked", p.KeyID)
	}
	if err := verify(k.PublicKey, p.Signature, Statement(p.Name, p.Version, p.SHA256, p.Size, p.Models, p.Kinds)); err != nil {
		return fmt.Errorf("its signature does not verify under the key now approved as %q: %v", p.KeyID, err)
	}
	return nil
}

// offer is a release offered to one terminal, and its package.
type offer struct {
	rel *Release
	pkg *Package
}

// floor is a group's release as Check sees it (assignment.GroupMinimum): the
// terminals it selects, the application and the minimum version.
type floor struct {
	app    string
	min    string // "" when the group has none
	parts  []int  // min, parsed
	target *Target
	pkg    *Package // what the package runs on (models, kinds)
}

// assignment is the resolution of every group against the registry: per terminal,
// the releases offered (the highest of each application) and the applications of
// its groups; per group, its terminals; and the floors Check holds terminals to.
type assignment struct {
	offers  map[string][]offer  // terminal ID -> the highest release offered of each application, by application
	apps    map[string][]string // terminal ID -> the applications of the groups it belongs to, sorted
	members map[string][]string // group -> its terminals (all, offered or not)
	offered map[string][]string // group -> the terminals offered its release
	pkgs    map[string]*Package // sha256 -> package, of the releases offered
	// floors are the current releases whose terminals this node can tell (those
	// resolve counts as members), for GroupMinimum; anyMin says one has a minimum.
	floors []floor
	anyMin bool
	// refused names the groups whose current release is offered to none of their
	// terminals because its package is no longer trusted (state.trust), and why.
	refused map[string]string
	at      time.Time
}

// GroupMinimum is the registry.GroupMinimums of the assignment, asked by Check at
// every request from the terminal's current record, so that a terminal registered
// or changed into a group is held to its minimum at once. A terminal is held to
// the highest minimum of the groups selecting it whose application is the one it
// runs (app: DE 48 AN, or the app claim of its verified attestation). When it
// names no application, or one that none of its groups publishes (a name the
// switch cannot match is not trusted to lower a floor), it is held to the highest
// minimum of all its groups, whatever their application: the safe side, and the
// behaviour before 6 December 2026, unchanged for a terminal whose groups publish
// a single application.
func (a *assignment) GroupMinimum(t *registry.Terminal, m *registry.Merchant, app string) (string, []int) {
	if !a.anyMin || t.Status == registry.TerminalClosed {
		return "", nil
	}
	var all, own *floor
	named := false
	for i := range a.floors {
		f := &a.floors[i]
		if !f.target.matches(t, m, f.pkg) {
			continue
		}
		if app != "" && f.app == app {
			named = true
			if f.min != "" && (own == nil || registry.CompareParts(f.parts, own.parts) > 0) {
				own = f
			}
		}
		if f.min != "" && (all == nil || registry.CompareParts(f.parts, all.parts) > 0) {
			all = f
		}
	}
	best := all
	if named {
		best = own
	}
	if best == nil {
		return "", nil
	}
	return best.min, best.parts
}

// offerFor returns the release offered to terminal tid when it runs app ("" when
// it says none): the highest of that application among its groups. A terminal
// naming no application is offered its groups' release only when they all publish
// the same application (as before 6 December 2026); in groups of several, it is
// offered nothing, rather than another application than the one it runs.
func (a *assignment) offerFor(tid, app string) (offer, bool) {
	if app == "" {
		apps := a.apps[tid]
		if len(apps) != 1 {
			return offer{}, false
		}
		app = apps[0]
	}
	for _, o := range a.offers[tid] {
		if o.rel.App == app {
			return o, true
		}
	}
	return offer{}, false
}

// rank orders a group's terminals for the staged rollout: by SHA-256 of
// "group/TID", so that the order is fixed per terminal and independent of the
// order of the registry.
func rank(group, tid string) uint64 {
	h := sha256.Sum256([]byte(group + "/" + tid))
	return binary.BigEndian.Uint64(h[:8])
}

// share is how many of n terminals a percentage offers: round(n x p / 100).
func share(n int, p float64) int {
	k := int(math.Round(float64(n) * p / 100))
	return min(max(k, 0), n)
}

// resolve computes the assignment of the groups of s over terminals ts, whose
// merchants merchant returns, with the packages pkg returns (by name@version).
func resolve(s *state, ts []*registry.Terminal, merchant func(string) (*registry.Merchant, bool), pkg func(name, version string) *Package, now time.Time) *assignment {
	a := &assignment{offers: map[string][]offer{}, apps: map[string][]string{}, members: map[string][]string{}, offered: map[string][]string{},
		pkgs: map[string]*Package{}, refused: map[string]string{}, at: now}
	names := make([]string, 0, len(s.groups))
	for n := range s.groups {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, gn := range names {
		g := s.groups[gn]
		rel := g.Current
		if rel == nil {
			continue
		}
		p := pkg(rel.App, rel.Version)
		trusted := true
		if p == nil {
			// Not uploaded on this node (packages are per node): nothing to offer,
			// but the group's minimum holds here too, over the terminals the
			// package runs on as the publication recorded them. Until 6 December
			// 2026 such a node dropped the minimum, silently.
			trusted = false
			why := rel.App + "@" + rel.Version + " is offered to no terminal: this node has no package " + rel.App + "@" + rel.Version +
				" (SHA-256 " + rel.SHA256 + "); upload the approved package here"
			if rel.Runs == nil {
				// Published before the release recorded what its package runs on:
				// this node cannot tell the group's terminals.
				a.refused[gn] = why + "; until then its minimum version is not enforced on this node (published before 6 December 2026)"
				continue
			}
			a.refused[gn] = why
			p = &Package{Name: rel.App, Version: rel.Version, Models: rel.Runs.Models, Kinds: rel.Runs.Kinds}
		} else if err := s.trust(p); err != nil {
			// A package whose key was revoked (or replaced) since it was signed is
			// offered to nobody; the group's minimum still holds, so that revoking a
			// key never lowers the version its terminals are held to.
			trusted = false
			a.refused[gn] = rel.App + "@" + rel.Version + " is offered to no terminal: " + err.Error()
		} else if rel.SHA256 != "" && p.SHA256 != rel.SHA256 {
			// The release names the package by name and version, but the review
			// approved one hash: this node's package under that name is other bytes
			// (uploaded here on its own; packages are per node), offered to no one.
			trusted = false
			a.refused[gn] = rel.App + "@" + rel.Version + " is offered to no terminal: this node's package has SHA-256 " +
				p.SHA256 + ", not the " + rel.SHA256 + " the publication approved; upload the approved package here"
		}
		fl := floor{app: rel.App, min: rel.MinVersion, target: &rel.Target, pkg: p}
		if fl.min != "" {
			parts, err := registry.ParseVersion(fl.min)
			if err != nil {
				a.refused[gn] = rel.App + "@" + rel.Version + ": minimum version " + fl.min + " not enforced: " + err.Error()
				fl.min = ""
			}
			fl.parts = parts
			a.anyMin = a.anyMin || fl.min != ""
		}
		a.floors = append(a.floors, fl)
		var members []*registry.Terminal
		for _, t := range ts {
			if t.Status == registry.TerminalClosed {
				continue
			}
			m, _ := merchant(t.MerchantID)
			if rel.Target.matches(t, m, p) {
				members = append(members, t)
			}
		}
		sort.Slice(members, func(i, j int) bool {
			ri, rj := rank(gn, members[i].ID), rank(gn, members[j].ID)
			if ri != rj {
				return ri < rj
			}
			return members[i].ID < members[j].ID
		})
		k := share(len(members), rel.Target.percent())
		for i, t := range members {
			a.members[gn] = append(a.members[gn], t.ID)
			if apps := a.apps[t.ID]; !slices.Contains(apps, rel.App) {
				apps = append(apps, rel.App)
				slices.Sort(apps)
				a.apps[t.ID] = apps
			}
			if i >= k || !trusted {
				continue
			}
			a.offered[gn] = append(a.offered[gn], t.ID)
			a.offers[t.ID] = better(a.offers[t.ID], offer{rel: rel, pkg: p})
		}
	}
	for _, os := range a.offers {
		for _, o := range os {
			a.pkgs[o.pkg.SHA256] = o.pkg
		}
	}
	return a
}

// better returns os (a terminal's offers, one per application, by application)
// with o in place of the offer of o's application when o is a higher version, or
// the same version published later. Versions of different applications are never
// compared: until 6 December 2026 a terminal in groups of two applications was
// offered the highest version of either.
func better(os []offer, o offer) []offer {
	for i, cur := range os {
		if cur.rel.App != o.rel.App {
			continue
		}
		if c := cmp(o.rel.Version, cur.rel.Version); c > 0 || (c == 0 && o.rel.PublishedAt.After(cur.rel.PublishedAt)) {
			os[i] = o
		}
		return os
	}
	os = append(os, o)
	slices.SortFunc(os, func(x, y offer) int { return strings.Compare(x.rel.App, y.rel.App) })
	return os
}

// cmp compares two versions (an unparsable b compares as equal: both were
// validated when published).
func cmp(a, b string) int {
	c, _ := registry.CompareVersions(a, b)
	return c
}

func trimAll(vals []string) []string {
	var out []string
	for _, v := range vals {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
