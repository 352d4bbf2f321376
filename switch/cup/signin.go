package cup

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// signIn answers 0800: the pipeline sees the sign-on (its terminal check and the
// location it reports), then the HSM makes the working keys of the scheme in 60.3,
// exported under the terminal's TMK with their check values in F62, and a new batch
// opens in 60.2.
func (a *Adapter) signIn(ctx context.Context, c *frontend.Conn, f *Frame) (frontend.Response, error) {
	tid := f.Str(41)
	ans := a.answer(f)
	sit := Situation{TID: tid, Header: f.Header}
	if a.cfg.NextRRN != nil {
		// The spec's 0810 carries F37, whatever F39 says: the switch's reference of
		// the sign-in, which the terminal prints and support quotes. (Until 5
		// December 2026 the 0810 had none.)
		if rrn, err := a.cfg.NextRRN(); err != nil {
			a.log.Error().Err(err).Str("tid", tid).Msg("cup: sign-in: no RRN for the answer; F37 left out")
		} else {
			ans.Set(37, rrn)
		}
	}
	f60 := ParseF60(f.Str(60))
	if f60.NetCode != "001" && f60.NetCode != "003" && f60.NetCode != "004" {
		return a.reply(ans, sit, message.RCFormatError, nil, "sign-in key scheme (60.3) is not 001, 003 or 004")
	}
	term, ok := a.cfg.Terminals.Terminal(tid)
	if !ok {
		return a.reply(ans, sit, RCTerminalUnknown, nil, "terminal-unknown")
	}
	if f60.NetCode == "001" && !a.cfg.SingleLengthPIN {
		a.log.Warn().Str("tid", tid).Msg("cup sign-in asking for single-length keys (60.3 001) refused: PIN keys are double-length TDES at least (PCI PIN); cup.single_length_pin_keys allows them")
		return a.reply(ans, sit, message.RCSecurityViolation, nil, "single-length-pin-key-refused")
	}
	if singleLengthMAK(f60.NetCode) && !a.cfg.SingleLengthMAC {
		a.log.Warn().Str("tid", tid).Str("scheme", f60.NetCode).Msg("cup sign-in asking for a single-length MAC key (60.3 001 or 003: an 8-byte MAK) refused: a 56-bit DES key can be found by exhaustive search from a few MAC'd messages, and then MACs anything as the terminal; 60.3 004 gives a double-length MAK; cup.single_length_mac_keys allows them")
		return a.reply(ans, sit, message.RCSecurityViolation, nil, "single-length-mac-key-refused")
	}
	if term.Keys.TMK == "" {
		return a.reply(ans, sit, RCNoMasterKey, nil, "no-tmk")
	}
	if a.pikID(tid, term) == "" || a.makRef(tid, term).ID == "" {
		// Every ID the terminal's PIK or MAK could have is another terminal's key
		// too (ownKeyID): none may be rotated by this sign-in nor sent under its TMK.
		a.log.Error().Str("tid", tid).Str("registered_tpk", term.Keys.TPK).Str("registered_tak", term.Keys.TAK).
			Msg("cup: sign-in refused: no working-key ID of the terminal's own (its registered TPK or TAK, TID.TPK or TID.TAK, TID.PIK or TID.MAK) that no other terminal's record names; correct the registry")
		return a.reply(ans, sit, RCNoMasterKey, nil, "no-own-key")
	}
	tlv, err := deviceTLV(f.Bytes(62))
	if err != nil {
		return a.reply(ans, sit, message.RCFormatError, nil, "F62: "+err.Error())
	}
	rc, update, err := a.networkToPipeline(ctx, c, f, message.NMSignOn, tlv, false)
	if err != nil {
		return frontend.Response{}, err
	}
	sit.forwarded = true
	if rc != message.RCApproved {
		// The terminal checks refused the identity or standing this sign-in
		// reports (another device, SIM or place; a suspended terminal). The
		// terminal still holds the working keys of its last sign-in, but the
		// identity that sign-in reported no longer vouches for it: its session
		// forgets it, so that its next requests go to the binding checks with no
		// identity (declined under a decline policy) and are asked to sign in
		// again. Its reversals go on the registered identity, as after a restart.
		// (Until 5 December 2026 the session kept it, and a terminal refused 59 a
		// moment before traded on as if at home.)
		if s := a.sess.get(tid); s != nil {
			s.mu.Lock()
			s.tlv, s.signedIn, s.conn = "", time.Time{}, connKey{}
			s.mu.Unlock()
		}
		return a.reply(ans, sit, rc, nil, "pipeline")
	}
	keys, makVersion, reissued := a.reissue(tid, term, f60.NetCode)
	var issued *issuedKeys
	if !reissued {
		if mak := a.makRef(tid, term).ID; term.Keys.TAK != "" && term.Keys.TAK != mak {
			// Not an error: the terminal gets a MAK of its own, and its cup
			// requests are MAC'd under it. Its registered TAK, which others
			// share, stays what an ASCII listener checks it under.
			a.log.Warn().Str("tid", tid).Str("registered_tak", term.Keys.TAK).Strs("tak_users", a.cfg.Terminals.KeyUsers(term.Keys.TAK)).Str("mak", mak).
				Msg("cup: sign-in: the terminal's registered TAK is not its own (shared, or another terminal's): not rotated nor sent; its MAK is a key of its own")
		}
		var versions map[string]int
		keys, makVersion, versions, err = a.workingKeys(ctx, tid, term, f60.NetCode)
		if err != nil {
			a.log.Error().Err(err).Str("tid", tid).Msg("cup: sign-in: working keys not generated")
			return a.reply(ans, sit, message.RCSystemMalfunction, nil, "hsm")
		}
		issued = &issuedKeys{f62: keys, scheme: f60.NetCode, at: a.cfg.Now(), versions: versions}
	}
	s := a.sess.open(tid)
	s.mu.Lock()
	s.batch = nextBatch(f60.Batch)
	s.tlv, s.scheme, s.signedIn, s.makVersion = tlv, f60.NetCode, a.cfg.Now(), makVersion
	// The sign-in's connection is not made the proven one (its echoes make the
	// terminal seen): the 0800 carries no MAC. The first request whose MAC
	// verifies on it does (Process).
	if issued != nil {
		s.issued = issued
	}
	s.mu.Unlock()
	f60.Batch = s.batch
	ans.Set(60, f60.String()).SetBytes(62, keys)
	sit.SignedIn = true
	offerUpdate(ans, &sit, update)
	msg := "cup: terminal signed in; new working keys"
	if reissued {
		msg = "cup: terminal signed in; its working keys of its last sign-in sent again (younger than the key lifetime)"
	}
	a.log.Info().Str("tid", tid).Str("scheme", f60.NetCode).Str("batch", s.batch).Str("remote", c.Remote.String()).Msg(msg)
	return a.reply(ans, sit, message.RCApproved, nil, "")
}

// SequenceNo starts the UnionPay form of a sign-in's F62: "Sequence No", two digits
// giving the length of the rest, then the terminal's serial number (vendor code and
// serial, e.g. "Sequence No163150SXX-4C304119").
const SequenceNo = "Sequence No"

// deviceTLV reads the terminal identity of a sign-in's F62 as the DE 48 tags the
// binding checks read: the UnionPay "Sequence No" form gives DI; otherwise F62 is
// DE 48 tags (TAG(2) LEN(3) VALUE: DI, SI, IM, GL, CL, AV). Empty gives "".
func deviceTLV(f62 []byte) (string, error) {
	s := string(f62)
	if rest, ok := strings.CutPrefix(s, SequenceNo); ok {
		if len(rest) < 2 || rest[0] < '0' || rest[0] > '9' || rest[1] < '0' || rest[1] > '9' {
			return "", fmt.Errorf("%q is not followed by a 2-digit length", SequenceNo)
		}
		n := int(rest[0]-'0')*10 + int(rest[1]-'0')
		if len(rest)-2 != n || n == 0 {
			return "", fmt.Errorf("serial number of %d characters, its length says %d", len(rest)-2, n)
		}
		b, err := message.AppendTLV(nil, message.TagDevice, rest[2:])
		return string(b), err
	}
	if s != "" {
		if _, err := message.ParseTLV(s); err != nil {
			return "", err
		}
	}
	return s, nil
}

// nextBatch is the batch after b (000001 after 999999 or an unreadable one).
func nextBatch(b string) string {
	n := 0
	if _, err := fmt.Sscanf(b, "%06d", &n); err != nil || n >= 999999 {
		n = 0
	}
	return fmt.Sprintf("%06d", n+1)
}

// reissue returns the F62 and MAK version of the terminal's last sign-in that made
// keys, to be sent again instead of new keys, when that sign-in was less than
// KeyLifetime ago, asked for the same scheme and made the keys of the IDs the
// terminal has now, under its TMK of now, and (with Config.KeyVersion) none of those
// keys nor the TMK has a newer version since (keys.rotate, an operator, a sign-in on
// another node) or is no longer usable. The 0800 carries no MAC and its F62 identity
// travels in clear: without this, an 0800 sent again byte for byte rotated the
// terminal's keys, its next request (MAC'd under the key it holds, now in its grace)
// was answered without F64 and asked for a sign-in, and the terminal reversed it;
// repeated, the terminal could not trade. (Until 6 December 2026 every sign-in made
// new keys.) Sending the same keys again gives nothing away: they are under the TMK,
// which only the terminal holds, and were sent in clear view before.
func (a *Adapter) reissue(tid string, term *registry.Terminal, scheme string) (f62 []byte, makVersion int, ok bool) {
	s := a.sess.get(tid)
	if a.cfg.KeyLifetime < 0 || s == nil {
		return nil, 0, false
	}
	s.mu.Lock()
	ik := s.issued
	s.mu.Unlock()
	// Never keys older than half the journal's memory of the STANs sent under
	// them (replayMemory), whatever the configured lifetime: a request under a
	// MAK older than that memory is refused (Process).
	if ik == nil || ik.scheme != scheme || a.cfg.Now().Sub(ik.at) >= min(a.cfg.KeyLifetime, replayMemory/2) {
		return nil, 0, false
	}
	want := []string{a.pikID(tid, term), a.makRef(tid, term).ID, term.Keys.TMK}
	if scheme == "004" {
		want = append(want, tdkID(tid))
	}
	for _, id := range want {
		if _, made := ik.versions[id]; !made {
			return nil, 0, false
		}
	}
	if a.cfg.KeyVersion != nil {
		for id, v := range ik.versions {
			cur, err := a.cfg.KeyVersion(id)
			if v == 0 && err != nil {
				continue // unknown to the hook then (a TMK it does not see) and now
			}
			if err != nil || cur != v {
				return nil, 0, false
			}
		}
	}
	return ik.f62, ik.versions[a.makRef(tid, term).ID], true
}

// workingKeys makes the working keys of a sign-in scheme and returns F62: 001 PIK 8
// + CV 4 + MAK 8 + CV 4; 003 PIK 16 + CV 4 + MAK 8 + 8 zeros + CV 4; 004 PIK, MAK,
// TDK 16 + CV 4 each. Each key is a new version of its ID, the previous one valid for
// KeyGrace. versions has the version of each key made and of the TMK (0 without
// Config.KeyVersion).
func (a *Adapter) workingKeys(ctx context.Context, tid string, term *registry.Terminal, scheme string) (f62 []byte, makVersion int, versions map[string]int, err error) {
	actor := hsm.WithActor(ctx, "terminal:"+tid)
	kek := &hsm.ExportSpec{KEK: hsm.KeyRef{ID: term.Keys.TMK}, Format: hsm.ExportECB}
	versions = map[string]int{term.Keys.TMK: 0}
	if a.cfg.KeyVersion != nil {
		if v, err := a.cfg.KeyVersion(term.Keys.TMK); err == nil {
			versions[term.Keys.TMK] = v
		}
	}
	var lastVersion int
	gen := func(id string, t hsm.KeyType, single bool) ([]byte, []byte, error) {
		if t == hsm.TAK {
			defer func() { makVersion = lastVersion }()
		}
		res, err := a.cfg.HSM.GenerateKey(actor, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: id, Type: t,
			Owner: tid, Grace: a.cfg.KeyGrace, SingleLength: single}, Export: kek})
		if err != nil {
			return nil, nil, fmt.Errorf("new %s %s: %w", t, id, err)
		}
		enc, err := hex.DecodeString(strings.SplitN(res.Exported, ":", 2)[0])
		if err != nil || len(enc) != 16 {
			return nil, nil, fmt.Errorf("new %s %s: export is not a 16-byte ECB key", t, id)
		}
		cv, err := hex.DecodeString(res.CheckValue4)
		if err != nil || len(cv) != 4 {
			return nil, nil, fmt.Errorf("new %s %s: no 4-byte check value", t, id)
		}
		if single {
			enc = enc[:8]
		}
		lastVersion = res.Ref.Version
		versions[id] = res.Ref.Version
		return enc, cv, nil
	}
	var out []byte
	single := scheme == "001"
	pik, cv, err := gen(a.pikID(tid, term), hsm.TPK, single)
	if err != nil {
		return nil, 0, nil, err
	}
	out = append(append(out, pik...), cv...)
	mak, cv, err := gen(a.makRef(tid, term).ID, hsm.TAK, singleLengthMAK(scheme))
	if err != nil {
		return nil, 0, nil, err
	}
	out = append(out, mak...)
	if scheme == "003" {
		out = append(out, make([]byte, 8)...)
	}
	out = append(out, cv...)
	if scheme == "004" {
		tdk, cv, err := gen(tdkID(tid), hsm.TDK, false)
		if err != nil {
			return nil, 0, nil, err
		}
		out = append(append(out, tdk...), cv...)
	}
	return out, makVersion, versions, nil
}

// singleLengthMAK reports whether sign-in scheme (60.3) carries a single-length MAK:
// the F62 of 001 and 003 has 8 bytes for it (003: 8 zero bytes after them, as in a
// real host's answer, so a terminal decrypts 8 bytes and checks the check value of a
// DES key: a double-length key there fails its check), 004 16. The shared spec's
// summary line calls 003's MAK double-length; its F62 layout and the captured answer
// say otherwise, and the layout is what terminals parse. Such a sign-in needs
// Config.SingleLengthMAC.
func singleLengthMAK(scheme string) bool { return scheme != "004" }

// networkToPipeline sends the pipeline the ASCII 0800 of a sign-in, sign-off or echo
// and returns its F39; proven says the message came on the terminal's proven
// connection (frontend.Conn.SessionProven).
func (a *Adapter) networkToPipeline(ctx context.Context, c *frontend.Conn, f *Frame, code, tlv string, proven bool) (rc, update string, err error) {
	body, err := message.NewBuilder(message.DialectASCII, "0800").Set(7, message.FormatDE7(a.cfg.Now())).
		Set(11, f.Str(11)).Set(41, f.Str(41)).Set(42, f.Str(42)).Set(48, tlv).Set(70, code).Bytes(nil)
	if err != nil {
		return "", "", fmt.Errorf("cup: 0800 to the pipeline: %w", err)
	}
	inner := *c
	inner.Dialect = message.DialectASCII
	inner.UnMACdNetwork = true // the dialect's 0800 and 0820 carry no F64
	inner.SessionProven = proven
	resp, err := a.next.Process(ctx, &inner, body)
	if err != nil {
		return "", "", err
	}
	pr, err := parseASCII(resp.Body)
	if err != nil {
		return "", "", fmt.Errorf("cup: the pipeline's 0810: %w", err)
	}
	return pr.Str(39), tagValue(pr.Str(48), "UP"), nil
}

// offerUpdate passes on the application update the pipeline offered the terminal
// at its sign-in (or echo: none since 6 December 2026, an 0820 has no MAC to show it
// is the terminal's, switch/pipeline echoMayOffer) (the ASCII dialects' DE 48 UP, VERSION:SIZE:SHA256:TOKEN,
// docs/apps.md): the same value in F63 of the answer, and header processing
// requirement 6 (TMS download) unless the terminal must sign in again first.
func offerUpdate(ans *Frame, sit *Situation, update string) {
	if update == "" || len(update) > 163 {
		return
	}
	ans.Set(63, update)
	sit.Update = true
}

// tagValue returns the value of tag in a DE 48 value of TAG(2) LEN(3) VALUE
// elements ("" when absent or malformed).
func tagValue(de48, tag string) string {
	for i := 0; i+5 <= len(de48); {
		n, err := strconv.Atoi(de48[i+2 : i+5])
		if err != nil || n < 0 || i+5+n > len(de48) {
			return ""
		}
		if de48[i:i+2] == tag {
			return de48[i+5 : i+5+n]
		}
		i += 5 + n
	}
	return ""
}

// network answers 0820: sign-off (60.3 = 002) and echo (301). A sign-off ends the
// terminal's session only when its F64 verifies under the terminal's current MAK
// (signOffProven): the dialect's 0820 carries no MAC, and anyone who knows a terminal
// ID could otherwise end its session, and with it the identity its sign-in reported
// (its requests then reach the binding checks without one, declined where the policy
// declines a missing identity, and are asked to sign in again).
func (a *Adapter) network(ctx context.Context, c *frontend.Conn, f *Frame, body []byte) (frontend.Response, error) {
	tid := f.Str(41)
	ans := a.answer(f)
	sit := Situation{TID: tid, Header: f.Header, SignedIn: a.signedIn(tid)}
	code := ParseF60(f.Str(60)).NetCode
	if code != message.NMSignOff && code != message.NMEcho {
		return a.reply(ans, sit, message.RCInvalidTransaction, nil, "unknown network code")
	}
	// An echo (or sign-off) makes the terminal seen only on the connection of its
	// last request whose MAC verified: the 0820 has no MAC of its own, and anyone
	// who knows a terminal ID could otherwise keep a stolen terminal looking online
	// at its shop (until 6 December 2026 every 0820 did; until later that day so
	// did one on the connection of a sign-in, which has no MAC either).
	proven := a.sess.get(tid).provenOn(c)
	rc, update, err := a.networkToPipeline(ctx, c, f, code, "", proven)
	if err != nil {
		return frontend.Response{}, err
	}
	sit.forwarded = true
	if code == message.NMEcho && rc == message.RCApproved {
		offerUpdate(ans, &sit, update)
	}
	if code == message.NMSignOff && rc == message.RCApproved {
		if a.signOffProven(ctx, tid, f, body) {
			a.sess.close(tid)
		} else if a.sess.get(tid) != nil {
			a.log.Info().Str("tid", tid).Str("stan", f.Str(11)).Str("remote", c.Remote.String()).
				Msg("cup: sign-off without a MAC under the terminal's MAK: answered, its session kept")
		}
		sit.SignedIn = true // no request to sign in in the answer to a sign-off
	}
	return a.reply(ans, sit, rc, nil, "")
}

// signOffProven reports whether the sign-off f (body as received) carries an F64 that
// verifies under the terminal's current MAK (not a grace version): only then may it
// end the terminal's session. (Until 6 December 2026 any 0820 sign-off did: a sign-off
// naming another terminal's ID, from anywhere, ended that terminal's session.)
func (a *Adapter) signOffProven(ctx context.Context, tid string, f *Frame, body []byte) bool {
	if !f.Has(64) {
		return false
	}
	term, _ := a.cfg.Terminals.Terminal(tid)
	grace, _, err := a.verifyMAC(ctx, a.sess.get(tid), a.makRef(tid, term), a.scheme(tid), MACInput(body, f), f.Bytes(64))
	return err == nil && !grace
}
