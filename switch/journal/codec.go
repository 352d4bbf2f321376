package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The record encoding: a version byte, then every field in a fixed order, strings and
// byte slices as a uvarint length and the bytes, numbers as varints, times as unix
// nanoseconds. It is several times smaller and faster than JSON, which matters at
// two writes per transaction. A new field is appended at the end under a new version.
const codecVersion = 1

type enc struct{ b []byte }

func (e *enc) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}
func (e *enc) bytes(s []byte) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}
func (e *enc) int(n int64) { e.b = binary.AppendVarint(e.b, n) }
func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.int(0)
		return
	}
	e.int(t.UnixNano())
}

// MarshalBinary encodes the record.
func (r *Record) MarshalBinary() ([]byte, error) {
	return r.AppendBinary(make([]byte, 0, 256))
}

// AppendBinary appends the record's encoding to b.
func (r *Record) AppendBinary(b []byte) ([]byte, error) {
	e := enc{b: append(b, codecVersion)}
	for _, s := range []string{r.RRN, r.MTI, r.Type, r.ProcCode, r.TID, r.MID, r.STAN, r.DE7, r.Listener, r.Remote,
		r.PANMasked, r.CardHash, r.Currency, r.EntryMode, r.Issuer, r.IssuerSTAN, string(r.State), r.RC, r.AuthCode,
		r.DecidedBy, r.Reason, r.OriginalRRN, r.RuleSet} {
		e.str(s)
	}
	e.time(r.Received)
	e.int(r.Amount)
	e.int(int64(len(r.Events)))
	for _, ev := range r.Events {
		e.str(string(ev.State))
		e.time(ev.At)
		e.str(ev.Note)
	}
	e.int(int64(len(r.RuleHits)))
	for _, h := range r.RuleHits {
		e.str(h.ID)
		e.str(h.Action)
		e.str(h.Mode)
		e.str(h.Reason)
		e.int(int64(h.Score))
	}
	e.bytes(r.Facts)
	e.str(r.ReversedBy)
	e.int(r.Refunded)
	if r.StandIn {
		e.int(1)
	} else {
		e.int(0)
	}
	t := r.Timings
	for _, n := range []int64{t.Decode, t.Checks, t.Risk, t.HSM, t.Issuer, t.Journal, t.Total} {
		e.int(n)
	}
	// Optional trailing fields: absent in records written before them, and kept
	// unread by decoders older than them (Record.Unknown; decoders before 6
	// December 2026 skipped them), so the version stays 1.
	// Each optional field is written when it or one after it is set, so that the
	// decoder reads them in order.
	var set = [...]bool{r.Label != "", r.QR != "", r.CompletedBy != "", r.KSN != "", r.Rev != 0, r.RefundedTo != 0, r.OwedBy != "", r.Requested != 0, r.Offline, len(r.SealedPAN) > 0, !r.Written.IsZero(), len(r.SealedICC) > 0, len(r.SealedExpiry) > 0, r.CaptureKey != "", r.ContentSum != 0, r.Balance != "", len(r.RuleErrors) > 0}
	n := 0 // how many are written: up to the last one set
	for i, v := range set {
		if v {
			n = i + 1
		}
	}
	if len(r.Unknown) > 0 {
		n = len(set) // a newer version's fields follow every known one
	}
	if n > 0 {
		e.str(r.Label)
	}
	if n > 1 {
		e.str(r.QR)
	}
	if n > 2 {
		e.str(r.CompletedBy)
	}
	if n > 3 {
		e.str(r.KSN)
	}
	if n > 4 {
		e.int(r.Rev)
	}
	if n > 5 {
		e.int(r.RefundedTo)
	}
	if n > 6 {
		e.str(r.OwedBy)
	}
	if n > 7 {
		e.int(r.Requested)
	}
	if n > 8 {
		if r.Offline {
			e.int(1)
		} else {
			e.int(0)
		}
	}
	if n > 9 {
		e.bytes(r.SealedPAN)
	}
	if n > 10 {
		e.time(r.Written)
	}
	if n > 11 {
		e.bytes(r.SealedICC)
	}
	if n > 12 {
		e.bytes(r.SealedExpiry)
	}
	if n > 13 {
		e.str(r.CaptureKey)
	}
	if n > 14 {
		var sum [8]byte
		if r.ContentSum != 0 {
			binary.BigEndian.PutUint64(sum[:], r.ContentSum)
			e.bytes(sum[:])
		} else {
			e.bytes(nil)
		}
	}
	if n > 15 {
		e.str(r.Balance)
	}
	if n > 16 {
		e.int(int64(len(r.RuleErrors)))
		for _, re := range r.RuleErrors {
			e.str(re.ID)
			e.str(re.Error)
		}
	}
	e.b = append(e.b, r.Unknown...)
	return e.b, nil
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) raw() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("field of %d bytes runs past the end", n)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string { return string(d.raw()) }

func (d *dec) time() time.Time {
	n := d.int()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// UnmarshalBinary decodes a record written by MarshalBinary.
func (r *Record) UnmarshalBinary(b []byte) error {
	if len(b) == 0 || b[0] != codecVersion {
		return fmt.Errorf("journal record: unknown encoding version")
	}
	d := dec{b: b[1:]}
	var state string
	for _, p := range []*string{&r.RRN, &r.MTI, &r.Type, &r.ProcCode, &r.TID, &r.MID, &r.STAN, &r.DE7, &r.Listener, &r.Remote,
		&r.PANMasked, &r.CardHash, &r.Currency, &r.EntryMode, &r.Issuer, &r.IssuerSTAN, &state, &r.RC, &r.AuthCode,
		&r.DecidedBy, &r.Reason, &r.OriginalRRN, &r.RuleSet} {
		*p = d.str()
	}
	r.State = State(state)
	r.Received = d.time()
	r.Amount = d.int()
	n := d.int()
	if n < 0 || n > 1<<16 {
		return fmt.Errorf("journal record: %d events", n)
	}
	r.Events = make([]Event, 0, n)
	for i := int64(0); i < n && d.err == nil; i++ {
		r.Events = append(r.Events, Event{State: State(d.str()), At: d.time(), Note: d.str()})
	}
	n = d.int()
	if n < 0 || n > 1<<16 {
		return fmt.Errorf("journal record: %d rule hits", n)
	}
	for i := int64(0); i < n && d.err == nil; i++ {
		r.RuleHits = append(r.RuleHits, RuleHit{ID: d.str(), Action: d.str(), Mode: d.str(), Reason: d.str(), Score: int(d.int())})
	}
	if f := d.raw(); len(f) > 0 {
		r.Facts = append([]byte(nil), f...)
	}
	r.ReversedBy = d.str()
	r.Refunded = d.int()
	r.StandIn = d.int() == 1
	t := &r.Timings
	for _, p := range []*int64{&t.Decode, &t.Checks, &t.Risk, &t.HSM, &t.Issuer, &t.Journal, &t.Total} {
		*p = d.int()
	}
	if d.err == nil && len(d.b) > 0 {
		r.Label = d.str()
	}
	if d.err == nil && len(d.b) > 0 {
		r.QR = d.str()
	}
	if d.err == nil && len(d.b) > 0 {
		r.CompletedBy = d.str()
	}
	if d.err == nil && len(d.b) > 0 {
		r.KSN = d.str()
	}
	if d.err == nil && len(d.b) > 0 {
		r.Rev = d.int()
	}
	if d.err == nil && len(d.b) > 0 {
		r.RefundedTo = d.int()
	}
	if d.err == nil && len(d.b) > 0 {
		r.OwedBy = d.str()
	}
	if d.err == nil && len(d.b) > 0 {
		r.Requested = d.int()
	}
	if d.err == nil && len(d.b) > 0 {
		r.Offline = d.int() == 1
	}
	if d.err == nil && len(d.b) > 0 {
		if f := d.raw(); len(f) > 0 {
			r.SealedPAN = append([]byte(nil), f...)
		}
	}
	if d.err == nil && len(d.b) > 0 {
		r.Written = d.time()
	}
	if d.err == nil && len(d.b) > 0 {
		if f := d.raw(); len(f) > 0 {
			r.SealedICC = append([]byte(nil), f...)
		}
	}
	if d.err == nil && len(d.b) > 0 {
		if f := d.raw(); len(f) > 0 {
			r.SealedExpiry = append([]byte(nil), f...)
		}
	}
	if d.err == nil && len(d.b) > 0 {
		r.CaptureKey = d.str()
	}
	if d.err == nil && len(d.b) > 0 {
		// 8 bytes, or none (0). Another length (no version writes one) is read as
		// none: the request's STAN is then compared as a record without it is.
		if f := d.raw(); len(f) == 8 {
			r.ContentSum = binary.BigEndian.Uint64(f)
		}
	}
	if d.err == nil && len(d.b) > 0 {
		r.Balance = d.str()
	}
	if d.err == nil && len(d.b) > 0 {
		n := d.int()
		if n < 0 || n > 1<<16 {
			return fmt.Errorf("journal record %s: %d rule errors", r.RRN, n)
		}
		for i := int64(0); i < n && d.err == nil; i++ {
			r.RuleErrors = append(r.RuleErrors, RuleError{ID: d.str(), Error: d.str()})
		}
	}
	if d.err == nil && len(d.b) > 0 {
		// Fields of a newer version: kept as they are (see Record.Unknown).
		r.Unknown = append([]byte(nil), d.b...)
	}
	if d.err != nil {
		return fmt.Errorf("journal record %s: %w", r.RRN, d.err)
	}
	return nil
}
