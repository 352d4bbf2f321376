package registry

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"
)

// --- last seen ---

// Seen records that terminal id sent a message at now from addr (and, when loc is
// present, at loc). Check calls it for every known terminal; call it yourself for
// messages that do not go through Check (0800 sign-on, echo). It takes only a
// per-terminal lock and does not allocate; the data reach Badger on the next flush.
func (r *store) Seen(id string, addr netip.Addr, loc GeoPoint, now time.Time) {
	if sl := r.snap.Load().terminals[id]; sl != nil {
		sl.touch(addr, loc, now)
	}
}

func (sl *terminalSlot) touch(addr netip.Addr, loc GeoPoint, now time.Time) {
	sl.mu.Lock()
	if !now.Before(sl.seen.t) {
		sl.seen.t = now
		if addr.IsValid() {
			sl.seen.addr = addr
		}
		if loc.valid() {
			sl.seen.loc, sl.seen.hasLoc = loc, true
		}
		sl.dirty = true
	}
	sl.mu.Unlock()
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

// FlushSeen writes the last-seen data that changed since the previous flush.
func (r *store) FlushSeen() error {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	type item struct {
		sl *terminalSlot
		id string
		ls LastSeen
	}
	var items []item
	for id, sl := range r.snap.Load().terminals {
		sl.mu.Lock()
		d := sl.dirty
		sl.dirty = false
		sl.mu.Unlock()
		if d {
			ls, _ := sl.lastSeen()
			items = append(items, item{sl, id, ls})
		}
	}
	if len(items) == 0 {
		return nil
	}
	wb := r.db.NewWriteBatch()
	defer wb.Cancel()
	var err error
	for _, it := range items {
		ls := it.ls
		ls.Time = ls.Time.UTC()
		b, _ := json.Marshal(ls)
		if err = wb.Set([]byte(pfxSeen+it.id), b); err != nil {
			break
		}
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
