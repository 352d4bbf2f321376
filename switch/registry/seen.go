package registry

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"
)

// --- last seen ---

// Seen records that terminal id sent a message at now from addr (and, when loc is
// present, at loc). Check records it for the requests that prove to be the
// terminal's (seenProof); call Seen yourself only for a message that does not go
// through Check and proves it as well (an echo with a MAC verified under the
// terminal's key), never for a bare echo: the console and the offline alerts read
// it. It takes only a per-terminal lock and does not allocate; the data reach
// Badger on the next flush.
func (r *store) Seen(id string, addr netip.Addr, loc GeoPoint, now time.Time) {
	if sl := r.snap.Load().terminals[id]; sl != nil {
		sl.touch(addr, loc, now)
	}
}

func (sl *terminalSlot) touch(addr netip.Addr, loc GeoPoint, now time.Time) {
	sl.mu.Lock()
	if !now.Before(sl.seen.t) {
		sl.set(addr, loc, now)
		sl.share = true
	}
	sl.mu.Unlock()
}

// set moves the slot's last-seen to t, with addr and loc where they are valid (an
// invalid one keeps the earlier), and marks it for the next flush. The caller holds
// sl.mu.
func (sl *terminalSlot) set(addr netip.Addr, loc GeoPoint, t time.Time) {
	sl.seen.t = t
	if addr.IsValid() {
		sl.seen.addr = addr
	}
	if loc.valid() {
		sl.seen.loc, sl.seen.hasLoc = loc, true
	}
	sl.dirty = true
}

// SeenEntry is one terminal's last-seen data, as the nodes of a cluster share it.
type SeenEntry struct {
	ID string `json:"id"`
	LastSeen
}

// SetSeenSink makes every flush of last-seen data (FlushSeen) also hand fn the
// terminals seen on this node since the previous flush, not those merged from
// other nodes (MergeSeen), so that a cluster node can share them without echoing
// the others' back. fn runs on the flusher's goroutine; nil stops it.
func (r *store) SetSeenSink(fn func([]SeenEntry)) {
	r.seenMu.Lock()
	r.seenSink = fn
	r.seenMu.Unlock()
}

// MergeSeen takes last-seen data another node of a cluster observed: a known
// terminal's last-seen moves to an entry that is later than its own (with the
// entry's address and, when it has one, location); an earlier or equal one, or an
// unknown terminal, is ignored. Merged data reach Badger on the next flush and are
// not handed to the seen sink.
func (r *store) MergeSeen(entries []SeenEntry) {
	s := r.snap.Load()
	for _, e := range entries {
		sl := s.terminals[e.ID]
		if sl == nil {
			continue
		}
		var loc GeoPoint
		if e.Location != nil {
			loc = *e.Location
			loc.Present = true // not in JSON
		}
		sl.mu.Lock()
		if e.Time.After(sl.seen.t) {
			sl.set(e.Address, loc, e.Time)
		}
		sl.mu.Unlock()
	}
}

func (sl *terminalSlot) lastSeen() (LastSeen, bool) {
	sl.mu.Lock()
	s := sl.seen
	sl.mu.Unlock()
	if s.t.IsZero() {
		return LastSeen{}, false
	}
	ls := LastSeen{Time: s.t, Address: s.addr}
	if s.hasLoc {
		l := s.loc
		ls.Location = &l
	}
	return ls, true
}

// LastSeen returns when and from where terminal id was last seen; false when it is
// unknown or has never been seen.
func (r *store) LastSeen(id string) (LastSeen, bool) {
	if sl := r.snap.Load().terminals[id]; sl != nil {
		return sl.lastSeen()
	}
	return LastSeen{}, false
}

// FlushSeen writes the last-seen data that changed since the previous flush, and
// the time of the flush (keyAlive).
func (r *store) FlushSeen() error {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	type item struct {
		sl    *terminalSlot
		id    string
		ls    LastSeen
		share bool
	}
	var items []item
	for id, sl := range r.snap.Load().terminals {
		sl.mu.Lock()
		d, sh := sl.dirty, sl.share
		sl.dirty, sl.share = false, false
		sl.mu.Unlock()
		if d {
			ls, _ := sl.lastSeen()
			items = append(items, item{sl, id, ls, sh})
		}
	}
	if r.seenSink != nil {
		var shared []SeenEntry
		for _, it := range items {
			if it.share {
				shared = append(shared, SeenEntry{ID: it.id, LastSeen: it.ls})
			}
		}
		if len(shared) > 0 {
			r.seenSink(shared)
		}
	}
	wb := r.db.NewWriteBatch()
	defer wb.Cancel()
	err := wb.Set([]byte(keyAlive), []byte(r.now().Format(time.RFC3339Nano)))
	for _, it := range items {
		if err != nil {
			break
		}
		ls := it.ls
		ls.Time = ls.Time.UTC()
		b, _ := json.Marshal(ls)
		err = wb.Set([]byte(pfxSeen+it.id), b)
	}
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		for _, it := range items { // try again on the next flush
			it.sl.mu.Lock()
			it.sl.dirty = true
			it.sl.mu.Unlock()
		}
		return fmt.Errorf("registry: write last-seen of %d terminals: %w", len(items), err)
	}
	return nil
}

func (r *store) seenFlusher(every time.Duration) {
	defer r.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			if err := r.FlushSeen(); err != nil {
				r.log.Error().Err(err).Msg("registry: last-seen flush failed")
			}
		}
	}
}

// startSeenFlusher starts the background writer of last-seen data, every
// Options.SeenFlushInterval (none when it is negative).
func (r *store) startSeenFlusher() {
	if every := r.opts.SeenFlushInterval; every > 0 {
		r.wg.Add(1)
		go r.seenFlusher(every)
	}
}

// shutdown stops the background writer and writes the last-seen data that changed
// since its last run.
func (r *store) shutdown() error {
	close(r.stop)
	r.wg.Wait()
	return r.FlushSeen()
}
