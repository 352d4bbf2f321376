package registry

import (
	"slices"
)

// refIndex says which terminals use what, among the terminals not closed: the
// terminals whose TMK, TPK or TAK names each key ID, and those bound to each DUKPT
// device (KeyRefs.DUKPTDevice). Each list is in ID order. An index is immutable once
// published: the store replaces it whole (a copy with the changes) under its lock,
// whenever a published terminal's key references, device or closing change it, and
// readers load it without a lock, as Check reads the snapshot.
type refIndex struct {
	keys    map[string][]string // key ID -> terminals naming it
	devices map[string][]string // DUKPT device -> terminals bound to it (one, but for records stored before 6 December 2026)
}

// termRefs is what terminal t (nil: none) puts in the index: its distinct key
// references and its DUKPT device; nothing for a closed terminal, which never
// transacts again.
func termRefs(t *Terminal) (keys []string, dev string) {
	if t == nil || t.Status == TerminalClosed {
		return nil, ""
	}
	for _, k := range [...]string{t.Keys.TMK, t.Keys.TPK, t.Keys.TAK} {
		if k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys, t.Keys.DUKPTDevice
}

// sameRefs reports whether a and b (either nil) put the same things in the index.
func sameRefs(a, b *Terminal) bool {
	ka, da := termRefs(a)
	kb, db := termRefs(b)
	return da == db && slices.Equal(ka, kb)
}

// refChange is a terminal record published over another: before is nil for a new
// terminal.
type refChange struct{ before, after *Terminal }

// buildRefs is the index of the terminals of snapshot s.
func buildRefs(s *snapshot) *refIndex {
	ix := &refIndex{keys: map[string][]string{}, devices: map[string][]string{}}
	for _, sl := range s.terminals {
		t := sl.rec.Load()
		keys, dev := termRefs(t)
		for _, k := range keys {
			ix.keys[k] = append(ix.keys[k], t.ID)
		}
		if dev != "" {
			ix.devices[dev] = append(ix.devices[dev], t.ID)
		}
	}
	for _, m := range []map[string][]string{ix.keys, ix.devices} {
		for _, ids := range m {
			slices.Sort(ids)
		}
	}
	return ix
}

// with returns a copy of ix with chs applied (the maps copied, each changed list
// made anew: lists already handed out stay as they were).
func (ix *refIndex) with(chs []refChange) *refIndex {
	n := &refIndex{keys: make(map[string][]string, len(ix.keys)+len(chs)), devices: make(map[string][]string, len(ix.devices))}
	for k, v := range ix.keys {
		n.keys[k] = v
	}
	for k, v := range ix.devices {
		n.devices[k] = v
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
		keys, dev := termRefs(ch.before)
		for _, k := range keys {
			drop(n.keys, k, id)
		}
		if dev != "" {
			drop(n.devices, dev, id)
		}
		keys, dev = termRefs(ch.after)
		for _, k := range keys {
			add(n.keys, k, id)
		}
		if dev != "" {
			add(n.devices, dev, id)
		}
	}
	return n
}

// KeyUsers returns the terminals (not closed) whose TMK, TPK or TAK is key ID id,
// in ID order; nil for none. The slice is shared: the caller must not modify it.
// It takes no lock and does not allocate (switch/cup asks it for every request:
// a key another terminal also uses is no terminal's own to rotate).
func (r *store) KeyUsers(id string) []string {
	return r.refs.Load().keys[id]
}

// deviceTerminals returns the terminals (not closed) bound to DUKPT device dev,
// in ID order (shared: not to be modified).
func (r *store) deviceTerminals(dev string) []string {
	return r.refs.Load().devices[dev]
}

// deviceBoundElsewhere refuses DUKPT device dev for terminal id when another
// terminal (not closed) is bound to it: the KSNs of one device are one terminal's,
// or each of them takes the PIN blocks the other's device enciphers. The error
// names the other terminal.
func (r *store) deviceBoundElsewhere(id, dev string) error {
	if dev == "" {
		return nil
	}
	for _, other := range r.deviceTerminals(dev) {
		if other != id {
			return conflictf("terminal %s: DUKPT device %s is already bound to terminal %s: a device's KSNs are one terminal's (unbind it there first)", id, dev, other)
		}
	}
	return nil
}
