package apps

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/switch/registry"
)

// Registry is what the Manager needs of the registry (registry.Registry is one).
type Registry interface {
	RegisterOp(op registry.Op, h registry.ExtOp)
	RequestChange(p registry.Actor, c registry.Change) (*registry.Change, error)
	ApprovedChanges(ops ...registry.Op) ([]*registry.Change, error)
	Terminals(f registry.TerminalFilter) []*registry.Terminal
	Terminal(id string) (*registry.Terminal, bool)
	Merchant(id string) (*registry.Merchant, bool)
	SetGroupMinimums(g registry.GroupMinimums)
	// Standing is why terminal id could not sign on for its status or its
	// merchant's (registry.ReasonNone when both are active): a download token
	// stands for its terminal only while it could (Manager.standing).
	Standing(id string) registry.Reason
}

// Options tune a Manager. Zero values take the defaults.
type Options struct {
	// Dir is where the blobs are kept (the switch uses DATA_DIR/apps); required.
	Dir string
	// MaxPackageBytes bounds an upload (default 512 MiB).
	MaxPackageBytes int64
	// TokenTTL is how long a download token stays valid (default 24 h).
	TokenTTL time.Duration
	// RefreshInterval is how often Run resolves the groups again, so that new and
	// changed terminals, and approvals made on other nodes of a cluster, are seen
	// (default 30 s).
	RefreshInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives uploads, refusals and altered blobs (tag it component=apps).
	Logger zerolog.Logger
	// CardHashKey is the switch's card hash key (security.card_hash_key_hex),
	// required unless NoTokens: the key of the download tokens is stored sealed
	// under a key derived from it (tokenkey.go).
	CardHashKey []byte
	// NoTokens makes a Manager that offers no update and accepts no download
	// token: it neither reads, makes nor rewrites the token key, and needs no
	// CardHashKey. For the tools' --data mode, which reads a stopped switch's data
	// directory without its configuration.
	NoTokens bool
}

// Badger keys of the Manager (in the registry's database).
const (
	pfxPackage = "app/pkg/" // + name@version -> Package JSON
	pfxReport  = "app/rep/" // + terminal ID -> Report JSON
	// keySecret held the token key in the clear (versions before sealing): read,
	// rewritten sealed under keySealed and deleted (tokenkey.go).
	keySecret = "app/secret"
	keySealed = "app/secret-sealed" // the token key, sealed (tokenkey.go)
)

// Manager manages packages, publications, offers, downloads and reports. Its
// methods are safe for concurrent use.
type Manager struct {
	db    *badger.DB
	reg   Registry
	blobs blobs
	opts  Options
	log   zerolog.Logger
	now   func() time.Time
	token []byte // the HMAC key of download tokens (nil with Options.NoTokens)

	mu   sync.Mutex // guards st, pkgs and inPlace
	st   *state
	pkgs map[string]*Package // name@version

	// refreshGen numbers the refreshes in the order they start (before they read
	// the approved changes); inPlace is the number of the one whose state and
	// assignment are in place (Refresh).
	refreshGen atomic.Uint64
	inPlace    uint64

	asg atomic.Pointer[assignment]

	repMu   sync.Mutex
	reports map[string]*Report
	stored  map[string]time.Time // when a terminal's report was last written

	verified sync.Map // sha256 -> fileStamp: blobs whose hash was checked
}

// New opens the Manager over db (the registry's Badger database), registers its
// reviewed operations with reg, and rebuilds its state from the approved changes.
func New(db *badger.DB, reg Registry, opts Options) (*Manager, error) {
	if opts.Dir == "" {
		return nil, errors.New("apps: no blob directory")
	}
	if opts.MaxPackageBytes <= 0 {
		opts.MaxPackageBytes = 512 << 20
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 24 * time.Hour
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if !opts.NoTokens && len(opts.CardHashKey) < 16 {
		return nil, errors.New("apps: Options.CardHashKey is required (at least 16 bytes): the download token key is sealed under a key derived from it")
	}
	m := &Manager{db: db, reg: reg, blobs: blobs{dir: opts.Dir}, opts: opts, log: opts.Logger, now: opts.Now,
		st: newState(), pkgs: map[string]*Package{}, reports: map[string]*Report{}, stored: map[string]time.Time{}}
	if err := m.load(); err != nil {
		return nil, err
	}
	reg.RegisterOp(OpKeyPut, registry.ExtOp{Check: m.checkKey, Apply: m.applied})
	reg.RegisterOp(OpPublish, registry.ExtOp{Check: m.checkPublish, Apply: m.applied})
	reg.RegisterOp(OpWithdraw, registry.ExtOp{Check: m.checkWithdraw, Apply: m.applied})
	if err := m.Refresh(); err != nil {
		return nil, err
	}
	m.warnUnusableKeys()
	return m, nil
}

// warnUnusableKeys logs, at start, each approved and unrevoked app-signing key
// the switch no longer accepts (an ECDSA key on a curve other than P-256,
// approved before 6 December 2026): uploads it signs and publications of what it
// signed are refused until it is replaced.
func (m *Manager) warnUnusableKeys() {
	m.mu.Lock()
	keys := m.st.keys
	m.mu.Unlock()
	ids := slices.Sorted(maps.Keys(keys))
	for _, id := range ids {
		k := keys[id]
		if k.Revoked {
			continue
		}
		if _, _, err := parsePublicKey(k.PublicKey); err != nil {
			m.log.Warn().Str("key", id).Err(err).Msg("apps: app-signing key " + id + " is approved but unusable: uploads it signs and publications of what it signed are refused; revoke it and add an Ed25519 or ECDSA P-256 key")
		}
	}
}

// load reads the packages and the reports from Badger, and the token key
// (loadTokenKey) in the same transaction.
func (m *Manager) load() error {
	return m.db.Update(func(txn *badger.Txn) error {
		if err := m.loadState(txn); err != nil {
			return err
		}
		if m.opts.NoTokens {
			return nil
		}
		return m.loadTokenKey(txn)
	})
}

// loadState reads the packages and the reports.
func (m *Manager) loadState(txn *badger.Txn) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("app/")})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := string(it.Item().Key())
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("apps: read %s: %w", k, err)
		}
		switch {
		case strings.HasPrefix(k, pfxPackage):
			p := new(Package)
			if err := json.Unmarshal(v, p); err != nil {
				return fmt.Errorf("apps: decode %s: %w", k, err)
			}
			m.pkgs[p.Ref()] = p
		case strings.HasPrefix(k, pfxReport):
			r := new(Report)
			if err := json.Unmarshal(v, r); err != nil {
				return fmt.Errorf("apps: decode %s: %w", k, err)
			}
			if r.Failed != nil {
				r.Failed.Detail = cleanDetail(r.Failed.Detail) // stored before it was cleaned
			}
			// A report stored before 6 December 2026 has no "app": its version's
			// application is not known (Report.AppUnrecorded), which "app":""
			// (the terminal named none) is not.
			var has struct {
				App *string `json:"app"`
			}
			if json.Unmarshal(v, &has) == nil && has.App == nil && r.Version != "" {
				r.AppUnrecorded = true
			}
			m.reports[r.Terminal] = r
			m.stored[r.Terminal] = r.ReportedAt
		}
	}
	return nil
}

// applied is the ExtOp.Apply of the Manager's operations: the state is rebuilt
// from the approved changes.
func (m *Manager) applied(*registry.Change) {
	if err := m.Refresh(); err != nil {
		m.log.Error().Err(err).Msg("apps: refresh after an approval failed (next refresh tries again)")
	}
}

// Refresh rebuilds the state from the approved changes, resolves every group
// against the registry's terminals and gives the registry the groups' minimums
// (the assignment: Check asks it at every request, from the terminal's current
// record, so that a new or changed terminal is held to its groups' minimum at once).
//
// Refreshes run at once (the periodic one, an approval's, an upload's) and read
// the approved changes before they take m.mu: the one that started last is the
// one in place, and one that finds a later one already in place drops its own
// (refreshGen). Until the fifth release of 6 December 2026 the last to finish
// won: a periodic refresh that had read the changes just before a withdrawal was
// approved, finishing after the approval's refresh, put the withdrawn release
// back (offered, downloadable, its minimum in force) and a revoked key back in
// trust for uploads, until the next refresh.
func (m *Manager) Refresh() error {
	gen := m.refreshGen.Add(1)
	st, err := m.approvedState()
	if err != nil {
		return err
	}
	m.mu.Lock()
	if gen < m.inPlace {
		m.mu.Unlock()
		return nil // a refresh started after this one, on a newer state, is in place
	}
	m.inPlace = gen
	m.st = st
	pkgs := m.pkgs
	a := resolve(st, m.reg.Terminals(registry.TerminalFilter{}), m.reg.Merchant,
		func(name, version string) *Package { return pkgs[name+"@"+version] }, m.now())
	prev := m.asg.Swap(a)
	// Under m.mu, in the order of the assignments: an older one set after a newer
	// one would hold the terminals to the old minimums.
	m.reg.SetGroupMinimums(a)
	m.mu.Unlock()
	for g, why := range a.refused {
		if prev == nil || prev.refused[g] != why {
			m.log.Error().Str("group", g).Msg("apps: release of group " + g + " not offered: " + why +
				"; publish a package signed by an approved key, or withdraw the release")
		}
	}
	return nil
}

// approvedState folds the approved changes, as committed now. The checks of the
// reviewed operations use it rather than m.st, which an approval made an instant
// before (its Apply not yet run) has not reached.
func (m *Manager) approvedState() (*state, error) {
	all, err := m.reg.ApprovedChanges(OpKeyPut, OpPublish, OpWithdraw)
	if err != nil {
		return nil, fmt.Errorf("apps: read the approved changes: %w", err)
	}
	st := newState()
	for _, c := range all {
		st.apply(c)
	}
	return st, nil
}

// Run refreshes every RefreshInterval until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := m.Refresh(); err != nil {
				m.log.Error().Err(err).Msg("apps: refresh failed")
			}
		}
	}
}

// --- packages and keys ---

// Upload registers a package: it receives the blob from r, checks its hash and its
// signature by req.KeyID, and stores it under its SHA-256. A package that does not
// verify is refused (ErrInvalid) and nothing is kept. Uploading the same name,
// version and bytes again returns the stored package; other bytes under a stored
// name and version are refused (ErrConflict): a version is immutable. A package
// stored or re-signed makes the Manager resolve its groups at once (Refresh, once
// its lock is released), so that a release waiting for it is offered without
// waiting for the next refresh.
func (m *Manager) Upload(actor registry.Actor, req UploadRequest, r io.Reader) (*Package, error) {
	if actor.Role != registry.RoleOperator && actor.Role != registry.RoleAdmin {
		return nil, fmt.Errorf("%w: %s (%s) may not upload packages: operator or admin role needed", registry.ErrForbidden, actor.Name, actor.Role)
	}
	req.Models, req.Kinds = trimAll(req.Models), trimAll(req.Kinds)
	if err := req.validate(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	key := m.st.keys[req.KeyID]
	m.mu.Unlock()
	if key == nil || key.Revoked {
		return nil, invalidf("package %s@%s: signing key %q is not an approved, unrevoked app-signing key (switchyard app key list)", req.Name, req.Version, req.KeyID)
	}
	tmp, size, sum, err := m.blobs.put(r, m.opts.MaxPackageBytes)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp) // after the rename, a no-op
	ref := req.Name + "@" + req.Version
	if size == 0 {
		// An empty blob is no installable package: a terminal that downloaded it
		// would fail to install it, or worse, stop at a blank update screen.
		return nil, invalidf("package %s: the blob received is empty (0 bytes): upload the package file", ref)
	}
	if want := strings.ToLower(strings.TrimSpace(req.SHA256)); want != "" && want != sum {
		m.log.Warn().Str("package", ref).Str("want", want).Str("got", sum).Msg("package upload refused: hash differs")
		return nil, invalidf("package %s: the blob received has SHA-256 %s, not %s: altered or truncated in transit", ref, sum, want)
	}
	if err := verify(key.PublicKey, req.Signature, Statement(req.Name, req.Version, sum, size, req.Models, req.Kinds)); err != nil {
		m.log.Warn().Str("package", ref).Str("key", req.KeyID).Str("sha256", sum).Err(err).Msg("package upload refused: signature")
		return nil, invalidf("package %s (SHA-256 %s, %d bytes): signature by %s: %v", ref, sum, size, req.KeyID, err)
	}
	p, stored, err := m.store(actor, req, ref, tmp, size, sum)
	if err != nil || !stored {
		return p, err
	}
	// A package stored (or re-signed) may be what a group's current release was
	// waiting for: a re-signed package whose key was revoked, or the approved
	// package uploaded on a node that had none. Resolve the groups now, with m.mu
	// released (Refresh takes it), rather than at the next refresh
	// (RefreshInterval; until 6 December 2026 a re-signed release waited for it).
	if err := m.Refresh(); err != nil {
		m.log.Error().Err(err).Str("package", ref).Msg("apps: refresh after an upload failed (next refresh tries again)")
	}
	return p, nil
}

// store keeps the verified upload req (its blob in the temporary file tmp, of size
// bytes and SHA-256 sum) as package ref, under m.mu: a new package, a re-signed
// one, or the stored one unchanged (stored false).
func (m *Manager) store(actor registry.Actor, req UploadRequest, ref, tmp string, size int64, sum string) (*Package, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.pkgs[ref]; old != nil {
		if old.SHA256 != sum {
			return nil, false, conflictf("package %s exists with SHA-256 %s: a version is immutable, upload a new version", ref, old.SHA256)
		}
		if m.st.trust(old) == nil {
			return old, false, nil
		}
		// The same bytes, signed again by an approved key after the one that
		// signed them was revoked or replaced: the new signature is kept, so that
		// the package can be published and offered again (until 6 December 2026 the
		// stored package came back with its revoked key, as if re-signed, and its
		// publication was refused).
		if o, n := runsOf(old), runsOf(&Package{Models: req.Models, Kinds: req.Kinds}); !slices.Equal(o.Models, n.Models) || !slices.Equal(o.Kinds, n.Kinds) {
			return nil, false, conflictf("package %s exists for models %v and kinds %v: a version is immutable, upload a new version", ref, old.Models, old.Kinds)
		}
		p := *old
		p.KeyID, p.Signature, p.UploadedAt, p.UploadedBy = req.KeyID, req.Signature, m.now().UTC(), actor.Name
		if err := m.storePackage(&p); err != nil {
			return nil, false, err
		}
		m.log.Info().Str("package", ref).Str("sha256", sum).Str("key", req.KeyID).Str("was", old.KeyID).Str("by", actor.Name).Msg("package re-signed")
		return &p, true, nil
	}
	if twin := versionTwin(m.pkgs, req.Name, req.Version); twin != "" {
		return nil, false, conflictf("package %s: version %s equals the stored %s@%s as versions compare (part by part, missing parts 0, leading zeros ignored), so a terminal on one would never be offered the other: upload a higher version", ref, req.Version, req.Name, twin)
	}
	if err := os.Rename(tmp, m.blobs.path(sum)); err != nil {
		return nil, false, fmt.Errorf("apps: store blob %s: %w", sum, err)
	}
	p := &Package{Name: req.Name, Version: req.Version, Models: req.Models, Kinds: req.Kinds, Size: size, SHA256: sum,
		KeyID: req.KeyID, Signature: req.Signature, UploadedAt: m.now().UTC(), UploadedBy: actor.Name}
	if err := m.storePackage(p); err != nil {
		return nil, false, err
	}
	m.log.Info().Str("package", ref).Str("sha256", sum).Int64("size", size).Str("key", req.KeyID).Str("by", actor.Name).Msg("package uploaded")
	return p, true, nil
}

// storePackage writes p to Badger and puts it in m.pkgs (a copy of the map, which
// resolve reads unlocked). m.mu must be held.
func (m *Manager) storePackage(p *Package) error {
	ref := p.Ref()
	b, _ := json.Marshal(p)
	if err := m.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(pfxPackage+ref), b) }); err != nil {
		return fmt.Errorf("apps: store package %s: %w", ref, err)
	}
	pkgs := make(map[string]*Package, len(m.pkgs)+1)
	for k, v := range m.pkgs {
		pkgs[k] = v
	}
	pkgs[ref] = p
	m.pkgs = pkgs
	return nil
}

// Packages returns the packages, by name and version.
func (m *Manager) Packages() []*Package {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Package, 0, len(m.pkgs))
	for _, p := range m.pkgs {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return cmp(out[i].Version, out[j].Version) < 0
	})
	return out
}

// Keys returns the approved app-signing keys, by ID.
func (m *Manager) Keys() []*SigningKey {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*SigningKey, 0, len(m.st.keys))
	for _, k := range m.st.keys {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Groups returns the rollout groups, by name, each with the number of registered
// terminals its current release's target matches (Group.Matches).
func (m *Manager) Groups() []*Group {
	a := m.asg.Load()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Group, 0, len(m.st.groups))
	for _, g := range m.st.groups {
		c := *g // the state's groups are shared: a copy takes Matches
		if c.Current != nil {
			c.Matches = len(a.members[g.Name])
		}
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// --- reviewed requests ---

// RequestKey requests the addition (or, with Revoked, the revocation) of an
// app-signing key, for review.
func (m *Manager) RequestKey(p registry.Actor, k KeyRequest) (*registry.Change, error) {
	st, err := m.approvedState()
	if err != nil {
		return nil, err
	}
	base := st.keyBase(k.ID)
	k.Change = ""
	if err := keyUnchanged(st, k.SigningKey); err != nil {
		return nil, err
	}
	return m.request(p, OpKeyPut, k.ID, k.Reason, keyPayload{SigningKey: k.SigningKey, Base: &base})
}

// versionTwin returns the version of a package of pkgs named name whose version
// compares equal to version but is written differently ("1.2" and "1.2.0",
// "1.02" and "1.2"), or "" when there is none. Terminals report, and are offered,
// versions by comparison: two such packages could not be told apart.
func versionTwin(pkgs map[string]*Package, name, version string) string {
	var twins []string
	for _, p := range pkgs {
		if p.Name == name && p.Version != version && cmp(p.Version, version) == 0 {
			twins = append(twins, p.Version)
		}
	}
	if len(twins) == 0 {
		return ""
	}
	sort.Strings(twins) // one answer, whatever the map's order
	return twins[0]
}

// RequestPublish requests a publication, for review. The package's hash is fixed
// in the change now.
func (m *Manager) RequestPublish(p registry.Actor, r PublishRequest) (*registry.Change, error) {
	st, err := m.approvedState()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	pkg := m.pkgs[r.App+"@"+r.Version]
	m.mu.Unlock()
	base := st.groupBase(r.Group)
	pp := publishPayload{PublishRequest: r, Base: &base}
	if pkg != nil {
		pp.SHA256, pp.Runs = pkg.SHA256, runsOf(pkg)
	}
	if err := releaseUnchanged(st, pp); err != nil {
		return nil, err
	}
	reason := r.Reason
	pp.Reason = ""
	return m.request(p, OpPublish, r.Group, reason, pp)
}

// RequestWithdraw requests a withdrawal, for review.
func (m *Manager) RequestWithdraw(p registry.Actor, r WithdrawRequest) (*registry.Change, error) {
	st, err := m.approvedState()
	if err != nil {
		return nil, err
	}
	reason := r.Reason
	r.Reason = ""
	base := st.groupBase(r.Group)
	return m.request(p, OpWithdraw, r.Group, reason, withdrawPayload{WithdrawRequest: r, Base: &base})
}

func (m *Manager) request(p registry.Actor, op registry.Op, target, reason string, payload any) (*registry.Change, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	return m.reg.RequestChange(p, registry.Change{Op: op, Target: target, Reason: reason, Ext: b})
}

func (m *Manager) checkKey(c *registry.Change) (registry.ChangeEffect, error) {
	var kp keyPayload
	if err := json.Unmarshal(c.Ext, &kp); err != nil {
		return registry.ChangeEffect{}, invalidf("%s: payload: %v", c.Op, err)
	}
	k := kp.SigningKey
	if !validName(k.ID) {
		return registry.ChangeEffect{}, invalidf("app-signing key ID %q: want 1 to 64 letters, digits, '-', '_' or '.', and no card number", carddata.MaskID(k.ID))
	}
	var err error
	if _, k.Algorithm, err = parsePublicKey(k.PublicKey); err != nil {
		return registry.ChangeEffect{}, invalidf("app-signing key %s: %v", k.ID, err)
	}
	if c.Target != k.ID {
		return registry.ChangeEffect{}, invalidf("%s: target %q is not the key ID %q", c.Op, c.Target, k.ID)
	}
	st, err := m.approvedState()
	if err != nil {
		return registry.ChangeEffect{}, err
	}
	if err := staleBase(c, "app-signing key "+k.ID, kp.Base, st.keyBase(k.ID)); err != nil {
		return registry.ChangeEffect{}, err
	}
	k.Change = c.ID
	ce := registry.ChangeEffect{Type: "app-key", ID: k.ID, After: mustJSON(k)}
	if old := st.keys[k.ID]; old != nil {
		ce.Before = mustJSON(old)
	}
	return ce, nil
}

func (m *Manager) checkPublish(c *registry.Change) (registry.ChangeEffect, error) {
	var pp publishPayload
	if err := json.Unmarshal(c.Ext, &pp); err != nil {
		return registry.ChangeEffect{}, invalidf("%s: payload: %v", c.Op, err)
	}
	r := pp.PublishRequest
	switch {
	case !validName(r.Group):
		return registry.ChangeEffect{}, invalidf("rollout group %q: want 1 to 64 letters, digits, '-', '_' or '.', and no card number", carddata.MaskID(r.Group))
	case c.Target != r.Group:
		return registry.ChangeEffect{}, invalidf("%s: target %q is not the group %q", c.Op, c.Target, r.Group)
	case r.Target.Percent < 0 || r.Target.Percent > 100:
		return registry.ChangeEffect{}, invalidf("group %s: percent %v: want more than 0 and at most 100", r.Group, r.Target.Percent)
	case r.MinVersion != "" && !validVersion(r.MinVersion):
		return registry.ChangeEffect{}, invalidf("group %s: minimum version %q: want a dotted numeric version", r.Group, r.MinVersion)
	case r.MinVersion != "" && cmp(r.MinVersion, r.Version) > 0:
		return registry.ChangeEffect{}, invalidf("group %s: minimum version %s is above the version published (%s): every terminal of the group would be declined", r.Group, r.MinVersion, r.Version)
	}
	for _, k := range r.Target.Kinds {
		if !registry.TerminalKind(k).Valid() {
			return registry.ChangeEffect{}, invalidf("group %s: kind %q: want pos, mpos or softpos", r.Group, k)
		}
	}
	if !r.AllowUnknownTargets {
		if err := m.unknownTargets(r); err != nil {
			return registry.ChangeEffect{}, err
		}
	}
	st, err := m.approvedState()
	if err != nil {
		return registry.ChangeEffect{}, err
	}
	if err := staleBase(c, "rollout group "+r.Group, pp.Base, st.groupBase(r.Group)); err != nil {
		return registry.ChangeEffect{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	pkg := m.pkgs[r.App+"@"+r.Version]
	if pkg == nil {
		return registry.ChangeEffect{}, notFoundf("package %s@%s is not uploaded (switchyard app list)", r.App, r.Version)
	}
	if pp.SHA256 != pkg.SHA256 {
		return registry.ChangeEffect{}, conflictf("package %s@%s has SHA-256 %s, not the %s this change was requested for", r.App, r.Version, pkg.SHA256, pp.SHA256)
	}
	if runs := runsOf(pkg); pp.Runs != nil && (!slices.Equal(pp.Runs.Models, runs.Models) || !slices.Equal(pp.Runs.Kinds, runs.Kinds)) {
		return registry.ChangeEffect{}, conflictf("package %s@%s runs on models %v and kinds %v, not the %v and %v this change was requested for",
			r.App, r.Version, pkg.Models, pkg.Kinds, pp.Runs.Models, pp.Runs.Kinds)
	}
	if err := st.trust(pkg); err != nil {
		return registry.ChangeEffect{}, invalidf("package %s@%s may not be published: %v (switchyard app key list)", r.App, r.Version, err)
	}
	if g := st.groups[r.Group]; g != nil {
		for _, rel := range append([]*Release{g.Current}, g.History...) {
			if rel != nil && rel.App == r.App && rel.Version != r.Version && cmp(rel.Version, r.Version) == 0 {
				return registry.ChangeEffect{}, invalidf("group %s: %s@%s equals the %s published in the group before as versions compare (1.2 = 1.2.0): its terminals on %s would not be offered it; publish a higher version", r.Group, r.App, r.Version, rel.Version, rel.Version)
			}
		}
	}
	rel := Release{Group: r.Group, App: r.App, Version: r.Version, SHA256: pkg.SHA256, Target: r.Target, MinVersion: r.MinVersion, Runs: pp.Runs, Change: c.ID}
	ce := registry.ChangeEffect{Type: "app-group", ID: r.Group, After: mustJSON(rel)}
	if g := st.groups[r.Group]; g != nil && g.Current != nil {
		ce.Before = mustJSON(g.Current)
	}
	return ce, nil
}

// unknownTargets refuses publication r when its target names merchant or
// terminal IDs the registry does not know, or knows as closed (closing is final:
// a closed merchant's or terminal's ID selects no terminal either), listing
// them. checkPublish runs at the request and again at the approval, so an ID
// closed between the two is refused at the approval. Until the fifth release of
// 6 December 2026 they were taken as given: a typo selected no terminal, silently,
// and the rollout looked as if it was going. PublishRequest.AllowUnknownTargets
// skips the check, for terminals to be registered later.
func (m *Manager) unknownTargets(r PublishRequest) error {
	var bad []string
	seen := map[string]bool{}
	for _, id := range r.Target.Merchants {
		if seen["m"+id] {
			continue
		}
		seen["m"+id] = true
		if mc, ok := m.reg.Merchant(id); !ok {
			bad = append(bad, "merchant "+id+" (not registered)")
		} else if mc.Status == registry.MerchantClosed {
			bad = append(bad, "merchant "+id+" (closed)")
		}
	}
	for _, id := range r.Target.Terminals {
		if seen["t"+id] {
			continue
		}
		seen["t"+id] = true
		if t, ok := m.reg.Terminal(id); !ok {
			bad = append(bad, "terminal "+id+" (not registered)")
		} else if t.Status == registry.TerminalClosed {
			bad = append(bad, "terminal "+id+" (closed)")
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return invalidf("group %s: the target names IDs that select no terminal: %s; correct them, or publish with --allow-unknown-targets (\"allow_unknown_targets\": true) for terminals to be registered later",
		r.Group, strings.Join(bad, ", "))
}

func (m *Manager) checkWithdraw(c *registry.Change) (registry.ChangeEffect, error) {
	var wp withdrawPayload
	if err := json.Unmarshal(c.Ext, &wp); err != nil {
		return registry.ChangeEffect{}, invalidf("%s: payload: %v", c.Op, err)
	}
	r := wp.WithdrawRequest
	if c.Target != r.Group {
		return registry.ChangeEffect{}, invalidf("%s: target %q is not the group %q", c.Op, c.Target, r.Group)
	}
	st, err := m.approvedState()
	if err != nil {
		return registry.ChangeEffect{}, err
	}
	if err := staleBase(c, "rollout group "+r.Group, wp.Base, st.groupBase(r.Group)); err != nil {
		return registry.ChangeEffect{}, err
	}
	g := st.groups[r.Group]
	if g == nil || g.Current == nil {
		return registry.ChangeEffect{}, conflictf("rollout group %s has no current release to withdraw", r.Group)
	}
	var after *Release
	if r.Rollback && len(g.History) > 0 {
		after = g.History[len(g.History)-1]
	}
	return registry.ChangeEffect{Type: "app-group", ID: r.Group, Before: mustJSON(g.Current), After: mustJSON(after)}, nil
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// --- tokens ---

// Token returns the download token of terminal tid for the package with hash sum,
// valid until exp: "EXPIRY.MAC", MAC the first 16 bytes of HMAC-SHA256 under the
// switch's token key, base64url. It is "" with Options.NoTokens.
func (m *Manager) Token(tid, sum string, exp time.Time) string {
	if m.token == nil {
		return ""
	}
	e := strconv.FormatInt(exp.Unix(), 10)
	return e + "." + base64.RawURLEncoding.EncodeToString(m.tokenMAC(tid, sum, e))
}

func (m *Manager) tokenMAC(tid, sum, exp string) []byte {
	h := hmac.New(sha256.New, m.token)
	h.Write([]byte("switchyard-app-download\x00" + tid + "\x00" + sum + "\x00" + exp))
	return h.Sum(nil)[:16]
}

// checkToken verifies a token of tid for sum at now.
func (m *Manager) checkToken(tok, tid, sum string, now time.Time) error {
	if m.token == nil {
		return errors.New("this switch serves no downloads (no token key)")
	}
	e, mac, ok := strings.Cut(tok, ".")
	if !ok {
		return errors.New("malformed token (want EXPIRY.MAC)")
	}
	sec, err := strconv.ParseInt(e, 10, 64)
	if err != nil {
		return errors.New("malformed token expiry")
	}
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil || !hmac.Equal(got, m.tokenMAC(tid, sum, e)) {
		return errors.New("token not valid for this terminal and package")
	}
	if now.Unix() > sec {
		return fmt.Errorf("token expired at %s: sign on or echo again for a new one", time.Unix(sec, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// blobPath is where the blob of sum is, for tests.
func (m *Manager) blobPath(sum string) string { return filepath.Clean(m.blobs.path(sum)) }
