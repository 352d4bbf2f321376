package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/metrics"
	"github.com/switchyard/switchyard/switch/registry"
)

// ZoneKeys names each issuer's zone PIN key and the PIN block format it wants.
type ZoneKeys map[string]ZoneKey

// ZoneKey is an issuer's zone PIN key.
type ZoneKey struct {
	ZPK    string          // key ID, e.g. "demo.ZPK"
	Format pinblock.Format // PIN block format towards the issuer (default 0)
}

// authenticate verifies the MAC of a message from a terminal that has a MAC key (always
// SoftPOS). It returns the key to MAC the response with (empty: no MAC) and, when the
// MAC is missing or wrong, the reason for a 63.
func (p *Pipeline) authenticate(ctx context.Context, t *txn) (reason string) {
	if p.hsm == nil || p.terminals == nil {
		return ""
	}
	term, ok := p.terminals.Terminal(t.req.TID)
	if !ok {
		return ""
	}
	t.term = term
	if t.conn.MACVerified {
		// A dialect adapter verified the request's MAC in its own dialect (the cup
		// adapter, F64 under the MAK) and MACs the answer itself: the ASCII
		// rendering it hands over has no MAC, and its answer needs none.
		t.macOK = true
		return ""
	}
	if t.conn.UnMACdNetwork && t.req.MTI == "0800" {
		// A dialect's sign-in, sign-off or echo, which its dialect does not MAC:
		// not verified, not refused for want of a MAC (the adapter answers it).
		return ""
	}
	if term.Keys.TAK == "" {
		if term.MACRequired() {
			return "mac-key-missing"
		}
		return ""
	}
	t.macKey = hsm.KeyRef{ID: term.Keys.TAK}
	if t.req.MACField == 0 {
		return "mac-missing"
	}
	start := p.now()
	err := p.hsm.VerifyMAC(ctx, hsm.MACRequest{Key: t.macKey, Data: t.req.MACInput()}, t.req.MAC[:])
	took := p.now().Sub(start)
	t.rec.Timings.HSM += took.Microseconds()
	t.stages.add(metrics.StagePINMAC, took)
	switch {
	case err == nil:
		t.macOK = true
		return ""
	case errors.Is(err, hsm.ErrMACMismatch):
		return "mac-invalid"
	case errors.Is(err, hsm.ErrUnavailable):
		p.hsmLog.Error().Err(err).Str("tid", t.req.TID).Msg("MAC not verified: no HSM answered (at most 5 such lines every 10 s; every transaction's line says hsm-unavailable)")
		return reasonHSMUnavailable
	default:
		p.hsmLog.Error().Err(err).Str("tid", t.req.TID).Msg("MAC could not be verified (at most 5 such lines every 10 s; every transaction's line says mac-unverifiable)")
		return "mac-unverifiable"
	}
}

// macFunc returns the function that MACs the response, or nil for terminals without
// a MAC key.
func (p *Pipeline) macFunc(t *txn) message.MACFunc {
	if t.macKey.ID == "" || p.hsm == nil {
		return nil
	}
	return func(data []byte) ([8]byte, error) {
		var out [8]byte
		start := p.now()
		mac, err := p.hsm.GenerateMAC(context.Background(), hsm.MACRequest{Key: t.macKey, Data: data})
		took := p.now().Sub(start)
		t.rec.Timings.HSM += took.Microseconds()
		t.stages.add(metrics.StagePINMAC, took)
		if err != nil {
			return out, err
		}
		copy(out[:], mac)
		return out, nil
	}
}

// translatePIN re-encrypts the terminal's PIN block under the issuer's zone PIN key.
// It returns the new block, or the response code and reason of a decline.
func (p *Pipeline) translatePIN(ctx context.Context, t *txn, issuer string) ([]byte, string, string) {
	r := t.req
	if p.hsm == nil {
		return nil, message.RCSecurityViolation, "pin-not-translatable"
	}
	zk, ok := p.zones[issuer]
	if !ok {
		zk = ZoneKey{ZPK: issuer + ".ZPK"}
	}
	req := hsm.TranslatePINRequest{PINBlock: r.PINBlock[:], PAN: r.PAN, Dest: hsm.KeyRef{ID: zk.ZPK}, DestFormat: zk.Format}
	var keys registry.KeyRefs
	if t.term != nil {
		keys = t.term.Keys
	}
	switch {
	case r.TLV.Has&message.HasKSN != 0:
		// A DUKPT device is bound to its terminal: only a terminal the registry
		// says uses DUKPT may send a KSN, its blocks go to the HSM under its own
		// BDK (which refuses a KSN outside the BDK's KSN prefix), and with a DUKPT
		// device registered only that device's KSNs are taken. Nothing is
		// decrypted otherwise. Until 6 December 2026 any terminal's KSN went to
		// the HSM, which found the BDK by the KSN's prefix: a static-TPK terminal
		// could send a DUKPT device's recorded PIN block, refused only when the
		// original had come first (dukpt-replay).
		if keys.PINMode != registry.PINModeDUKPT || keys.BDK == "" {
			return nil, message.RCSecurityViolation, reasonDUKPTNotRegistered
		}
		if !keys.KSNBound(r.TLV.KSN) {
			return nil, message.RCSecurityViolation, reasonKSNNotBound
		}
		req.KSN = r.TLV.KSN
		req.Source = hsm.KeyRef{ID: keys.BDK}
		if len(req.KSN) == 24 {
			req.SourceFormat = pinblock.Format4
		}
	case keys.PINMode == registry.PINModeDUKPT:
		return nil, message.RCFormatError, "ksn-missing"
	case keys.TPK != "":
		req.Source = hsm.KeyRef{ID: keys.TPK}
	default:
		return nil, message.RCSecurityViolation, "no-pin-key"
	}
	start := p.now()
	block, err := p.hsm.TranslatePIN(ctx, req)
	took := p.now().Sub(start)
	t.rec.Timings.HSM += took.Microseconds()
	t.stages.add(metrics.StagePINMAC, took)
	switch {
	case err == nil:
		if req.KSN != "" {
			// The HSM took the KSN's counter: the other nodes of a cluster raise
			// theirs from the record (journal.Record.KSN). Only then: a KSN the HSM
			// did not take (a bad MAC, a replay, no PIN) must not block the device
			// elsewhere.
			t.rec.KSN = strings.ToUpper(req.KSN) // hexadecimal: one form for the cluster's index
		}
		return block, "", ""
	case errors.Is(err, hsm.ErrUnavailable):
		p.hsmLog.Error().Err(err).Str("tid", r.TID).Msg("PIN not translated: no HSM answered (at most 5 such lines every 10 s; every transaction's line says hsm-unavailable)")
		return nil, message.RCSystemMalfunction, reasonHSMUnavailable
	case errors.Is(err, hsm.ErrReplay):
		return nil, message.RCSecurityViolation, "dukpt-replay"
	case errors.Is(err, hsm.ErrKSNNotOfBDK):
		return nil, message.RCSecurityViolation, reasonKSNNotBound
	case errors.Is(err, hsm.ErrInput):
		return nil, message.RCIncorrectPIN, "pin-block-invalid"
	case errors.Is(err, hsm.ErrPolicy):
		return nil, message.RCSecurityViolation, "pin-format-policy"
	default:
		p.hsmLog.Error().Err(err).Str("tid", r.TID).Str("issuer", issuer).Msg("PIN translation failed (at most 5 such lines every 10 s; every transaction's line says pin-translation-failed)")
		return nil, message.RCSecurityViolation, "pin-translation-failed"
	}
}

// keyChange answers 0800/161: new working keys for the terminal (a new version of its
// TPK, and of its TAK if it has one), generated in the HSM and sent under its TMK in
// DE 48 WP and WM as HEXKEY:KCV. The previous versions stay valid for a grace period.
//
// A TPK or TAK that another terminal's record (not closed) names too (KeyUsers: the
// demo load terminals share LT.TPK) is not rotated nor sent: the change is refused
// 63 shared-working-key, nothing generated, as a cup sign-in refuses to rotate or
// hand out a key others use. A change within KeyChangeInterval of the terminal's
// last one on this node is answered with that one's keys again, nothing generated.
// (Until 8 December 2026 any one terminal rotated a shared key, and the others'
// PINs failed 63 once the grace ended; and 200 changes in 1.4 s left 203 versions
// kept for the grace.)
func (p *Pipeline) keyChange(ctx context.Context, t *txn) (rc string, de48 string, err error) {
	term := t.term
	if p.hsm == nil || term == nil || term.Keys.TMK == "" {
		return message.RCInvalidTransaction, "", nil
	}
	for _, id := range []string{term.Keys.TPK, term.Keys.TAK} {
		if others := p.keyUsersBesides(id, term.ID); len(others) > 0 {
			p.log.Warn().Str("tid", term.ID).Str("key", id).Int("other_terminals", len(others)).Str("for_example", others[0]).
				Msg("key change refused: the terminal's working key is shared with other terminals (registry), and a new version would break theirs; give the terminal keys of its own")
			return message.RCSecurityViolation, message.ReasonTLV(reasonSharedWorkingKey), nil
		}
	}
	// One change of a terminal at a time (a connection's requests run side by
	// side): the second of two at once finds the first's keys.
	unlock := p.keyChanges.lock(term.ID)
	defer unlock()
	now := p.now()
	if last, keys, ok := p.keyChanges.recent(term.ID, term.Keys.TMK, now); ok {
		// The same keys again, as a cup sign-in's repeat gets them: the terminal
		// that lost the answer, or asks before each PIN (the demo's term
		// command), works on; nothing new is generated.
		p.log.Info().Str("tid", term.ID).Time("last_change", last).Dur("min_interval", p.keyChanges.every).
			Msg("key change within the minimum interval of the terminal's last one (security.key_change_interval): its keys sent again, none generated")
		return message.RCApproved, keys, nil
	}
	kek := &hsm.ExportSpec{KEK: hsm.KeyRef{ID: term.Keys.TMK}, Format: hsm.ExportECB}
	var b []byte
	actor := hsm.WithActor(ctx, "terminal:"+term.ID)
	if term.Keys.TPK != "" {
		res, err := p.hsm.GenerateKey(actor, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: term.Keys.TPK, Type: hsm.TPK,
			Owner: term.ID, Grace: p.keyGrace}, Export: kek})
		if err != nil {
			return "", "", fmt.Errorf("new TPK for %s: %w", term.ID, err)
		}
		if b, err = message.AppendTLV(b, message.TagPINKey, res.Exported); err != nil {
			return "", "", err
		}
	}
	if term.Keys.TAK != "" {
		res, err := p.hsm.GenerateKey(actor, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: term.Keys.TAK, Type: hsm.TAK,
			Owner: term.ID, Grace: p.keyGrace}, Export: kek})
		if err != nil {
			return "", "", fmt.Errorf("new TAK for %s: %w", term.ID, err)
		}
		if b, err = message.AppendTLV(b, message.TagMACKey, res.Exported); err != nil {
			return "", "", err
		}
	}
	p.keyChanges.took(term.ID, term.Keys.TMK, now, string(b))
	return message.RCApproved, string(b), nil
}

// The refusal of a key change (0800/161, DE 48 RS): a working key other terminals
// use too.
const reasonSharedWorkingKey = "shared-working-key"

// keyUsersBesides returns the terminals other than tid that use key id (none for
// an empty id).
func (p *Pipeline) keyUsersBesides(id, tid string) []string {
	if id == "" || p.terminals == nil {
		return nil
	}
	var out []string
	for _, u := range p.terminals.KeyUsers(id) {
		if u != tid {
			out = append(out, u)
		}
	}
	return out
}

// keyChangeTimes bounds each terminal's key changes to one every every on this
// node: a change makes a version of each of its working keys, kept for the grace
// period. A change within every of the terminal's last gets that change's answer
// again (its keys under the same TMK: nothing the terminal did not have).
type keyChangeTimes struct {
	every   time.Duration
	stripes [64]sync.Mutex // a terminal's changes one at a time (lock)
	mu      sync.Mutex
	last    map[string]keyChangeTaken // terminal ID -> its last key change
	sweep   int                       // the size of last at which to drop the old entries
}

// keyChangeTaken is a terminal's last key change: when, under which TMK, and
// the DE 48 that carried its keys.
type keyChangeTaken struct {
	at   time.Time
	tmk  string
	keys string
}

func newKeyChangeTimes(every time.Duration) *keyChangeTimes {
	return &keyChangeTimes{every: every, last: map[string]keyChangeTaken{}, sweep: 1024}
}

// lock takes terminal tid's stripe for a key change, from its recent to its
// took, and returns its release.
func (k *keyChangeTimes) lock(tid string) func() {
	m := &k.stripes[lockIndex(tid)%len(k.stripes)]
	m.Lock()
	return m.Unlock
}

// recent returns terminal tid's last key change, its time and its DE 48, when it
// was made under tmk less than every before now.
func (k *keyChangeTimes) recent(tid, tmk string, now time.Time) (time.Time, string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	last, ok := k.last[tid]
	if !ok || last.tmk != tmk || now.Sub(last.at) >= k.every || now.Before(last.at) {
		return time.Time{}, "", false
	}
	return last.at, last.keys, true
}

// took records terminal tid's key change made at now under tmk, answered with keys.
func (k *keyChangeTimes) took(tid, tmk string, now time.Time, keys string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.last[tid] = keyChangeTaken{at: now, tmk: tmk, keys: keys}
	if len(k.last) >= k.sweep {
		for id, t := range k.last {
			if now.Sub(t.at) >= k.every {
				delete(k.last, id)
			}
		}
		k.sweep = max(1024, 2*len(k.last))
	}
}

// securityDecline answers a message whose MAC failed with 63; nothing is forwarded.
func (p *Pipeline) securityDecline(ctx context.Context, t *txn, reason string) (frontend.Response, error) {
	t.macKey = hsm.KeyRef{} // a MAC'd answer would tell an attacker the right MAC's key is in use
	if t.req.MTI == "0800" {
		raw, err := message.NewResponseBuilder(t.req).Set(39, message.RCSecurityViolation).Set(48, message.ReasonTLV(reason)).Bytes(nil)
		if err != nil {
			return frontend.Response{}, err
		}
		p.metrics.Transactions.WithLabelValues("0800", message.RCSecurityViolation, "", "hsm").Inc()
		return frontend.Response{Body: raw}, nil
	}
	if reason == reasonHSMUnavailable {
		return p.decline(ctx, t, message.RCSystemMalfunction, "hsm", reason)
	}
	return p.decline(ctx, t, message.RCSecurityViolation, "hsm", reason)
}

// The decline reasons of a DUKPT KSN that is not the terminal's (63, nothing
// decrypted): a KSN from a terminal the registry does not give DUKPT (no PIN mode
// dukpt, or no BDK), and a KSN of another device than the terminal's registered
// one, or outside its BDK's KSN prefix.
const (
	reasonDUKPTNotRegistered = "dukpt-not-registered"
	reasonKSNNotBound        = "ksn-not-bound"
)

// reasonHSMUnavailable is the decline reason when no HSM answered (a payShield
// backend down or slow): the terminal gets 96, the transaction may be tried again.
const reasonHSMUnavailable = "hsm-unavailable"
