package registry

import (
	"slices"
	"strconv"
	"strings"
)

// claimKind is something a terminal (not closed) holds that no other terminal may:
// its DUKPT device, or one of its binding's device serial, SIM and IMEI.
type claimKind uint8

const (
	claimDUKPT  claimKind = iota // KeyRefs.DUKPTDevice
	claimSerial                  // Binding.DeviceSerial (DE 48 DI)
	claimSIM                     // Binding.ICCID (DE 48 SI)
	claimIMEI                    // Binding.IMEI (DE 48 IM)
	nClaims
)

// claimInfo says how a claim is named: label in errors (the field as the CSV
// import, the API and the terminal list name it) and why it is one terminal's.
var claimInfo = [nClaims]struct{ label, why string }{
	claimDUKPT:  {"DUKPT device", "a device's KSNs are one terminal's"},
	claimSerial: {"device_serial", "one device is one terminal's, or it can act as either"},
	claimSIM:    {"iccid", "one SIM is one terminal's, or its device can act as either"},
	claimIMEI:   {"imei", "one device is one terminal's, or it can act as either"},
}

// claimText names claim k of value v (normalised) as errors and logs show it:
// "DUKPT device FFFF9876543210E", `device_serial "SN-1"`.
func claimText(k claimKind, v string) string {
	if k == claimDUKPT {
		return claimInfo[k].label + " " + v
	}
	return claimInfo[k].label + " " + strconv.Quote(v)
}

// normalizeClaim is a binding value as the index compares it: without the spaces
// around it. Case is kept: the switch compares DE 48 DI, SI and IM with the bound
// values exactly (identityFact), so two serials differing in case are two devices
// (and an ICCID or IMEI is digits only). A DUKPT device is stored normalised
// (normalizeDUKPTDevice). It does not allocate.
func normalizeClaim(v string) string {
	return strings.TrimSpace(v)
}

// ownClaims are the claims of record t, whatever its status ("" where it has none).
func ownClaims(t *Terminal) [nClaims]string {
	return [nClaims]string{
		claimDUKPT:  t.Keys.DUKPTDevice,
		claimSerial: normalizeClaim(t.Binding.DeviceSerial),
		claimSIM:    normalizeClaim(t.Binding.ICCID),
		claimIMEI:   normalizeClaim(t.Binding.IMEI),
	}
}

// refIndex says which terminals use what, among the terminals not closed: the
// terminals whose TMK, TPK or TAK names each key ID, and those holding each claim
// (their DUKPT device, device serial, SIM and IMEI). Each list is in ID order. An
// index is immutable once published: the store replaces it whole (a copy with the
// changes, sharing the maps no change touched) under its lock, whenever a published
// terminal's key references, claims or closing change it, and readers load it
// without a lock, as Check reads the snapshot.
type refIndex struct {
	keys map[string][]string // key ID -> terminals naming it
	// claims holds, for each claim kind, value -> terminals holding it: one, but
	// for records stored before 6 December 2026 (warnShared lists them at start).
	claims [nClaims]map[string][]string
}

// termRefs is what terminal t (nil: none) puts in the index: its distinct key
// references and its claims; nothing for a closed terminal, which never transacts
// again.
func termRefs(t *Terminal) (keys []string, claims [nClaims]string) {
	if t == nil || t.Status == TerminalClosed {
		return nil, claims
	}
	for _, k := range [...]string{t.Keys.TMK, t.Keys.TPK, t.Keys.TAK} {
		if k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys, ownClaims(t)
}

// sameRefs reports whether a and b (either nil) put the same things in the index.
func sameRefs(a, b *Terminal) bool {
	ka, ca := termRefs(a)
	kb, cb := termRefs(b)
	return ca == cb && slices.Equal(ka, kb)
}

// refChange is a terminal record published over another: before is nil for a new
// terminal.
type refChange struct{ before, after *Terminal }

// buildRefs is the index of the terminals of snapshot s.
func buildRefs(s *snapshot) *refIndex {
	ix := &refIndex{keys: map[string][]string{}}
	for k := range ix.claims {
		ix.claims[k] = map[string][]string{}
	}
	for _, sl := range s.terminals {
		t := sl.rec.Load()
		keys, claims := termRefs(t)
		for _, k := range keys {
			ix.keys[k] = append(ix.keys[k], t.ID)
		}
		for k, v := range claims {
			if v != "" {
				ix.claims[k][v] = append(ix.claims[k][v], t.ID)
			}
		}
	}
	for _, m := range append([]map[string][]string{ix.keys}, ix.claims[:]...) {
		for _, ids := range m {
			slices.Sort(ids)
		}
	}
	return ix
}

// with returns a copy of ix with chs applied: each map a change touches is copied
// (the others shared) and each changed list made anew, so lists already handed out
// stay as they were.
func (ix *refIndex) with(chs []refChange) *refIndex {
	n := *ix
	var copied [nClaims + 1]bool // the maps of n already copied: keys, then each claim kind
	own := func(m *map[string][]string, i int) {
		if !copied[i] {
			c := make(map[string][]string, len(*m)+len(chs))
			for k, v := range *m {
				c[k] = v
			}
			*m, copied[i] = c, true
		}
	}
	drop := func(m map[string][]string, k, id string) {
		i := slices.Index(m[k], id)
		if i < 0 {
			return
		}
		if len(m[k]) == 1 {
			delete(m, k)
			return
		}
		m[k] = slices.Delete(slices.Clone(m[k]), i, i+1)
	}
	add := func(m map[string][]string, k, id string) {
		i, found := slices.BinarySearch(m[k], id)
		if !found {
			m[k] = slices.Insert(slices.Clone(m[k]), i, id)
		}
	}
	for _, ch := range chs {
		var id string
		if ch.after != nil {
			id = ch.after.ID
		} else {
			id = ch.before.ID
		}
		kb, cb := termRefs(ch.before)
		ka, ca := termRefs(ch.after)
		if !slices.Equal(kb, ka) {
			own(&n.keys, 0)
			for _, k := range kb {
				drop(n.keys, k, id)
			}
			for _, k := range ka {
				add(n.keys, k, id)
			}
		}
		for c := range nClaims {
			if cb[c] == ca[c] {
				continue
			}
			own(&n.claims[c], int(c)+1)
			if cb[c] != "" {
				drop(n.claims[c], cb[c], id)
			}
			if ca[c] != "" {
				add(n.claims[c], ca[c], id)
			}
		}
	}
	return &n
}

// KeyUsers returns the terminals (not closed) whose TMK, TPK or TAK is key ID id,
// in ID order; nil for none. The slice is shared: the caller must not modify it.
// It takes no lock and does not allocate (switch/cup asks it for every request:
// a key another terminal also uses is no terminal's own to rotate).
func (r *store) KeyUsers(id string) []string {
	return r.refs.Load().keys[id]
}

// claimHolders returns the terminals (not closed) holding claim k of value v
// (compared normalised, normalizeClaim), in ID order (shared: not to be
// modified); nil for none or an empty value. It takes no lock and does not
// allocate.
func (r *store) claimHolders(k claimKind, v string) []string {
	if v = normalizeClaim(v); v == "" {
		return nil
	}
	return r.refs.Load().claims[k][v]
}

// deviceTerminals returns the terminals (not closed) bound to DUKPT device dev,
// in ID order (shared: not to be modified).
func (r *store) deviceTerminals(dev string) []string {
	return r.claimHolders(claimDUKPT, dev)
}

// claimedElsewhere refuses terminal id's claims (ownClaims) that another terminal
// (not closed) holds, checking only those that differ from was (nil: all; a
// change leaves a claim it does not change alone, so a record stored before 6
// December 2026 sharing it is not refused its other changes). A DUKPT device's
// KSNs are one terminal's, or each of them takes the PIN blocks the other's device
// enciphers; a device serial, SIM or IMEI is one terminal's, or one device can act
// as either terminal (after a 切机 swap, say) and the binding means nothing. The
// error names the field, its value and the other terminal.
func (r *store) claimedElsewhere(id string, claims, was *[nClaims]string) error {
	ix := r.refs.Load()
	for k, v := range claims {
		if v == "" || (was != nil && was[k] == v) {
			continue
		}
		for _, other := range ix.claims[k][v] {
			if other != id {
				return conflictf("terminal %s: %s is already bound to terminal %s: %s (unbind it there first)",
					id, claimText(claimKind(k), v), other, claimInfo[k].why)
			}
		}
	}
	return nil
}
