package apps

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"slices"

	"github.com/switchyard/switchyard/switch/registry"
)

// A key put or a publication that would leave the key or the group's release as
// it is would have a reviewer approve a change of nothing (and a publication of
// the release in force would push a copy of it into the group's history, where a
// withdrawal with rollback would put it back): RequestKey and RequestPublish
// refuse it with registry.NothingToChange, naming the fields. A key or group that
// does not exist yet is a creation, and a withdrawal a removal: neither is checked.

// keyUnchanged refuses the put of key k when the approved key of its ID is already
// that public key, revoked or not as requested. Public keys compare by their DER
// bytes (a PEM wrapped or labelled otherwise is the same key), shown as their
// SHA-256. A key that does not parse is left to checkKey.
func keyUnchanged(st *state, k SigningKey) error {
	old := st.keys[k.ID]
	if old == nil {
		return nil
	}
	was, ok1 := keyDigest(old.PublicKey)
	now, ok2 := keyDigest(k.PublicKey)
	if !ok1 || !ok2 {
		return nil
	}
	return registry.NothingToChange("app-signing key "+k.ID, []registry.Field{
		{Name: "public_key", Before: was, After: now},
		{Name: "revoked", Before: old.Revoked, After: k.Revoked},
	})
}

// keyDigest is the SHA-256 of the DER bytes of the PEM public key s ("sha256:"
// and hex), false when s is not PEM.
func keyDigest(s string) (string, bool) {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return "", false
	}
	sum := sha256.Sum256(b.Bytes)
	return "sha256:" + hex.EncodeToString(sum[:]), true
}

// releaseUnchanged refuses the publication pp when the group's current release is
// already that package (same name, version and hash), to the same target with the
// same minimum version. Targets compare as sets (the order of a list, a value
// given twice, percent 0 or 100 make no difference). A group without a current
// release (new, or withdrawn) is a change.
func releaseUnchanged(st *state, pp publishPayload) error {
	g := st.groups[pp.Group]
	if g == nil || g.Current == nil {
		return nil
	}
	cur := g.Current
	if cur.SHA256 != pp.SHA256 {
		return nil // other bytes (or a package not uploaded here: checkPublish says so)
	}
	return registry.NothingToChange("rollout group "+pp.Group, []registry.Field{
		{Name: "app", Before: cur.App, After: pp.App},
		{Name: "version", Before: cur.Version, After: pp.Version},
		{Name: "target", Before: normalTarget(cur.Target), After: normalTarget(pp.Target)},
		{Name: "min_version", Before: cur.MinVersion, After: pp.MinVersion},
	})
}

// normalTarget is t as it selects terminals: each list sorted without repeats
// (nil when empty), and the percentage 100 when none is given.
func normalTarget(t Target) Target {
	set := func(vals []string) []string {
		if len(vals) == 0 {
			return nil
		}
		s := slices.Clone(vals)
		slices.Sort(s)
		return slices.Compact(s)
	}
	return Target{Merchants: set(t.Merchants), MerchantGroups: set(t.MerchantGroups), Tiers: set(t.Tiers),
		Regions: set(t.Regions), Models: set(t.Models), Kinds: set(t.Kinds), Terminals: set(t.Terminals), Percent: t.percent()}
}
