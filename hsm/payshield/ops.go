package payshield

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/dukpt"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/hsm/tr31"
)

// How the client maps key handles to tokens: it reads the key's record from the key
// store, checks its status and dates as the software HSM does, and sends the
// record's Block, the key's LMK token, in the command. Keys it creates (A0, A6, FK)
// come back as tokens that it stores as new records. Only tokens and check values
// cross the wire, except the clear components of FK (key ceremonies).

func (c *Client) now() time.Time { return c.opts.Now() }

// rec resolves ref and checks it is usable for p.
func (c *Client) rec(ctx context.Context, ref hsm.KeyRef, p hsm.Purpose) (hsm.KeyRecord, error) {
	rec, err := c.store.Key(ctx, ref)
	if err != nil {
		return rec, err
	}
	if err := rec.Usable(c.now(), p); err != nil {
		return rec, err
	}
	if rec.Block == "" {
		return rec, fmt.Errorf("%w: %s has no LMK token", hsm.ErrKeyNotUsable, rec.Ref())
	}
	return rec, nil
}

// graceRetry reports whether a failure under the current version of a key should be
// retried under its versions in their grace window.
func graceRetry(ref hsm.KeyRef, err error, codes ...string) bool {
	var e *Error
	if ref.Version != 0 || !errors.As(err, &e) {
		return false
	}
	for _, c := range codes {
		if e.Code == c {
			return true
		}
	}
	return false
}

func (c *Client) graceVersions(ctx context.Context, id string) []hsm.KeyRecord {
	olds, err := c.store.GraceVersions(ctx, id)
	if err != nil {
		return nil
	}
	out := olds[:0]
	for _, o := range olds {
		if o.Usable(c.now(), hsm.Inbound) == nil && o.Block != "" {
			out = append(out, o)
		}
	}
	return out
}

// TranslatePIN implements hsm.HSM with CA (TPK source), CC (ZPK source) or G0 (DUKPT).
func (c *Client) TranslatePIN(ctx context.Context, req hsm.TranslatePINRequest) ([]byte, error) {
	// The format policy is the switch's, applied here as the software HSM applies
	// it: until 6 December 2026 ErrPolicy was ignored, and format 4 to 0 or 3, or
	// any format to 1, was left to the HSM's own settings (TestClientFormatPolicy).
	if err := hsm.CheckTranslation(req.SourceFormat, req.DestFormat, c.opts.Policy); err != nil {
		return nil, fmt.Errorf("translate PIN: %w", err)
	}
	if len(req.PINBlock) != req.SourceFormat.BlockSize() {
		return nil, fmt.Errorf("translate PIN: %w: PIN block is %d bytes, %s needs %d", hsm.ErrInput, len(req.PINBlock), req.SourceFormat, req.SourceFormat.BlockSize())
	}
	// CA, CC and G0 carry one account number, which binds both blocks: a payShield
	// does not move a PIN block to another PAN (the cup dialect's blocks formed
	// "without PAN"). Until 6 December 2026 SourcePAN was dropped, the block was
	// decoded under the card's PAN, and the cardholder was told 55 (wrong PIN).
	if req.SourcePAN != "" && req.SourcePAN != req.PAN {
		return nil, fmt.Errorf("translate PIN: %w: re-binding a PIN block from one PAN to another is not a payShield host command (CA, CC and G0 take one account number)", hsm.ErrPolicy)
	}
	sf, err := pinFormatCode(req.SourceFormat)
	if err != nil {
		return nil, fmt.Errorf("translate PIN: %w", err)
	}
	df, err := pinFormatCode(req.DestFormat)
	if err != nil {
		return nil, fmt.Errorf("translate PIN: %w", err)
	}
	drec, err := c.rec(ctx, req.Dest, hsm.Outbound)
	if err != nil {
		return nil, fmt.Errorf("translate PIN: destination: %w", err)
	}
	tail := func(b []byte) []byte {
		b = append(b, strings.ToUpper(hex.EncodeToString(req.PINBlock))...)
		b = append(b, sf...)
		b = append(b, df...)
		return appendPAN(b, req.PAN, req.SourceFormat == pinblock.Format4 || req.DestFormat == pinblock.Format4)
	}
	if req.KSN != "" {
		return c.translateDUKPT(ctx, req, drec, tail)
	}
	srec, err := c.rec(ctx, req.Source, hsm.Inbound)
	if err != nil {
		return nil, fmt.Errorf("translate PIN: source: %w", err)
	}
	try := func(src hsm.KeyRecord) ([]byte, error) {
		code := "CA"
		if src.Type == hsm.ZPK {
			code = "CC"
		}
		body := append([]byte(token(src)), token(drec)...)
		body = tail(append(body, "12"...))
		resp, err := c.do(ctx, code, body)
		if err != nil {
			return nil, err
		}
		return pinAnswer(resp, req.DestFormat)
	}
	out, err := try(srec)
	if err != nil && graceRetry(req.Source, err, CodePINBlockInvalid) {
		for _, old := range c.graceVersions(ctx, req.Source.ID) {
			if o, oerr := try(old); oerr == nil {
				return o, nil
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("translate PIN under %s: %w", srec.Ref(), err)
	}
	return out, nil
}

func (c *Client) translateDUKPT(ctx context.Context, req hsm.TranslatePINRequest, drec hsm.KeyRecord, tail func([]byte) []byte) ([]byte, error) {
	bdk, device, counter, err := c.bdk(ctx, req.Source, req.KSN)
	if err != nil {
		return nil, fmt.Errorf("translate PIN: %w", err)
	}
	// A replayed KSN is refused before the HSM decrypts its block (see the software
	// HSM's decryptDUKPT: the HSM's error 20 against a replay refusal was an oracle
	// on the PIN digits of a recorded format 0 block replayed under changed PANs).
	if err := c.store.CheckDUKPTCounter(ctx, device, counter); err != nil {
		return nil, fmt.Errorf("DUKPT KSN %s: %w", req.KSN, err)
	}
	body := append([]byte(token(bdk)), token(drec)...)
	body = fmt.Appendf(body, "%03d%s", len(req.KSN), strings.ToUpper(req.KSN))
	resp, err := c.do(ctx, "G0", tail(body))
	if err != nil {
		return nil, fmt.Errorf("translate PIN under DUKPT KSN %s: %w", req.KSN, err)
	}
	out, err := pinAnswer(resp, req.DestFormat)
	if err != nil {
		return nil, err
	}
	// The counter is recorded only once the HSM has decrypted the PIN block, as the
	// software HSM does: a replayed KSN is refused whatever the HSM answered.
	if err := c.store.AdvanceDUKPTCounter(ctx, device, counter); err != nil {
		return nil, fmt.Errorf("DUKPT KSN %s: %w", req.KSN, err)
	}
	return out, nil
}

// bdk resolves the BDK of a DUKPT KSN and returns the KSN's device and counter.
func (c *Client) bdk(ctx context.Context, ref hsm.KeyRef, ksn string) (hsm.KeyRecord, string, uint32, error) {
	device, counter, err := dukpt.DeviceCounter(ksn)
	if err != nil {
		return hsm.KeyRecord{}, "", 0, fmt.Errorf("%w: %w", hsm.ErrInput, err)
	}
	var rec hsm.KeyRecord
	if ref.ID == "" {
		rec, err = c.store.BDKForKSN(ctx, ksn)
	} else {
		rec, err = c.store.Key(ctx, ref)
	}
	if err != nil {
		return rec, "", 0, err
	}
	if err := rec.Usable(c.now(), hsm.Inbound); err != nil {
		return rec, "", 0, err
	}
	if rec.Type != hsm.BDK {
		return rec, "", 0, fmt.Errorf("%w: %s is a %s, not a BDK", hsm.ErrKeyUsage, rec.Ref(), rec.Type)
	}
	if rec.Owner != "" && !dukpt.PrefixMatches(ksn, rec.Owner, rec.Algorithm.IsAES()) {
		return rec, "", 0, fmt.Errorf("%w: KSN %s does not start with the KSN prefix %s of %s", hsm.ErrKSNNotOfBDK, ksn, rec.Owner, rec.Ref())
	}
	return rec, device, counter, nil
}

// pinAnswer reads CB/CD/G1: PIN length (2), PIN block, format code (2).
func pinAnswer(resp Response, f pinblock.Format) ([]byte, error) {
	fs := NewFields(resp.Body)
	fs.Digits("PIN length", 2)
	pb := fs.Hex("PIN block", 2*f.BlockSize())
	fs.Digits("format", 2)
	fs.End()
	if err := fs.Err(); err != nil {
		return nil, fmt.Errorf("answer %s: %w", resp.Code, err)
	}
	return hex.DecodeString(pb)
}

// VerifyPIN is not a payShield host command (payShield verifies PINs against PVVs or
// offsets, DC/EC); the issuer simulator, its one user, keeps a software HSM.
func (c *Client) VerifyPIN(ctx context.Context, req hsm.VerifyPINRequest) error {
	return fmt.Errorf("verify PIN: %w: comparing with a reference PIN is not a payShield host command", hsm.ErrPolicy)
}

func (c *Client) macBody(ctx context.Context, req hsm.MACRequest, key hsm.KeyRecord) ([]byte, error) {
	alg := byte('3')
	if key.MACAlgorithm == hsm.MACCMAC {
		alg = '6'
	}
	kt, err := keyTypeField(key)
	if err != nil {
		return nil, err
	}
	body := []byte{'0', '1', '1', alg, '1'}
	body = append(body, kt...)
	body = append(body, token(key)...)
	if req.KSN != "" {
		dir := byte('0')
		if req.Response {
			dir = '1'
		}
		body = fmt.Appendf(body, "K%03d%s%c", len(req.KSN), strings.ToUpper(req.KSN), dir)
	} else {
		body = append(body, 'N')
	}
	h := strings.ToUpper(hex.EncodeToString(req.Data))
	body = fmt.Appendf(body, "%04X", len(h))
	return append(body, h...), nil
}

// checkMACScheme refuses a MAC scheme other than the key's own: M6 and M8 compute
// the key's algorithm (retail or CMAC), and no payShield host command computes the
// UnionPay "ECB" MAC (hsm.MACSchemeCUPECB). Until 6 December 2026 the scheme was
// ignored: a cup terminal's ECB MAC was answered with the retail MAC of its data,
// and its own ECB MACs were compared with that (ErrMACMismatch every time).
func checkMACScheme(s hsm.MACScheme) error {
	switch s {
	case "":
		return nil
	case hsm.MACSchemeCUPECB:
		return fmt.Errorf("%w: the %s MAC is not a payShield host command (M6 and M8 compute the key's retail or CMAC MAC): use cup.mac x919 with the payShield backend, or the software backend", hsm.ErrKeyUsage, s)
	}
	return fmt.Errorf("%w: unknown MAC scheme %q", hsm.ErrInput, s)
}

func (c *Client) macKey(ctx context.Context, req hsm.MACRequest, p hsm.Purpose) (hsm.KeyRecord, error) {
	if req.KSN != "" {
		rec, _, _, err := c.bdk(ctx, req.Key, req.KSN)
		return rec, err
	}
	return c.rec(ctx, req.Key, p)
}

// GenerateMAC implements hsm.HSM with M6.
func (c *Client) GenerateMAC(ctx context.Context, req hsm.MACRequest) ([]byte, error) {
	if 2*len(req.Data) > 0xFFFF {
		return nil, fmt.Errorf("generate MAC: %w: %d bytes of data is over the M6 limit", hsm.ErrInput, len(req.Data))
	}
	if err := checkMACScheme(req.Scheme); err != nil {
		return nil, fmt.Errorf("generate MAC: %w", err)
	}
	key, err := c.macKey(ctx, req, hsm.Outbound)
	if err != nil {
		return nil, fmt.Errorf("generate MAC: %w", err)
	}
	body, err := c.macBody(ctx, req, key)
	if err != nil {
		return nil, fmt.Errorf("generate MAC under %s: %w", key.Ref(), err)
	}
	resp, err := c.do(ctx, "M6", body)
	if err != nil {
		return nil, fmt.Errorf("generate MAC under %s: %w", key.Ref(), err)
	}
	fs := NewFields(resp.Body)
	m := fs.Hex("MAC", 16)
	fs.End()
	if err := fs.Err(); err != nil {
		return nil, fmt.Errorf("answer M7: %w", err)
	}
	return hex.DecodeString(m)
}

// VerifyMAC implements hsm.HSM with M8; with version 0 it also tries the versions of
// the key in their grace window.
func (c *Client) VerifyMAC(ctx context.Context, req hsm.MACRequest, m []byte) error {
	if len(m) != hsm.MACLength {
		return fmt.Errorf("verify MAC: %w: MAC is %d bytes, want %d", hsm.ErrInput, len(m), hsm.MACLength)
	}
	if 2*len(req.Data) > 0xFFFF {
		return fmt.Errorf("verify MAC: %w: %d bytes of data is over the M8 limit", hsm.ErrInput, len(req.Data))
	}
	if err := checkMACScheme(req.Scheme); err != nil {
		return fmt.Errorf("verify MAC: %w", err)
	}
	key, err := c.macKey(ctx, req, hsm.Inbound)
	if err != nil {
		return fmt.Errorf("verify MAC: %w", err)
	}
	// A request's DUKPT MAC: its KSN's counter must be above the device's last
	// accepted one, checked before M8 is sent and recorded once the MAC verified,
	// as for a PIN block (translateDUKPT). Until 6 December 2026 only PIN blocks
	// were checked: a recorded DUKPT-MAC'd request without a PIN verified again.
	var device string
	var counter uint32
	check := req.KSN != "" && !req.Response
	if check {
		if device, counter, err = dukpt.DeviceCounter(req.KSN); err != nil {
			return fmt.Errorf("verify MAC: %w: %w", hsm.ErrInput, err)
		}
		if err := c.store.CheckDUKPTCounter(ctx, device, counter); err != nil {
			return fmt.Errorf("verify MAC: DUKPT KSN %s: %w", req.KSN, err)
		}
	}
	mh := strings.ToUpper(hex.EncodeToString(m))
	try := func(k hsm.KeyRecord) error {
		body, err := c.macBody(ctx, req, k)
		if err != nil {
			return err
		}
		_, err = c.do(ctx, "M8", append(body, mh...))
		return err
	}
	err = try(key)
	if err != nil && req.KSN == "" && graceRetry(req.Key, err, CodeVerifyFailed) {
		for _, old := range c.graceVersions(ctx, req.Key.ID) {
			if try(old) == nil {
				return nil
			}
		}
	}
	if err != nil {
		return fmt.Errorf("verify MAC under %s: %w", key.Ref(), err)
	}
	if check {
		if err := c.store.AdvanceDUKPTCounter(ctx, device, counter); err != nil {
			return fmt.Errorf("verify MAC: DUKPT KSN %s: %w", req.KSN, err)
		}
	}
	return nil
}

func cvvTail(b []byte, req hsm.CVVRequest) []byte {
	return fmt.Appendf(b, "%s;%s%s", req.PAN, req.Expiry, req.ServiceCode)
}

func checkCVVRequest(req hsm.CVVRequest) error {
	if len(req.PAN) < 12 || len(req.PAN) > 19 || !isDigits(req.PAN) || len(req.Expiry) != 4 || !isDigits(req.Expiry) || len(req.ServiceCode) != 3 || !isDigits(req.ServiceCode) {
		return fmt.Errorf("%w: card data: PAN of 12-19 digits, expiry YYMM and a 3-digit service code needed", hsm.ErrInput)
	}
	return nil
}

// GenerateCVV implements hsm.HSM with CW.
func (c *Client) GenerateCVV(ctx context.Context, req hsm.CVVRequest) (string, error) {
	if err := checkCVVRequest(req); err != nil {
		return "", fmt.Errorf("generate CVV: %w", err)
	}
	key, err := c.rec(ctx, req.Key, hsm.Outbound)
	if err != nil {
		return "", fmt.Errorf("generate CVV: %w", err)
	}
	resp, err := c.do(ctx, "CW", cvvTail([]byte(token(key)), req))
	if err != nil {
		return "", fmt.Errorf("generate CVV under %s: %w", key.Ref(), err)
	}
	fs := NewFields(resp.Body)
	cvv := fs.Digits("CVV", 3)
	fs.End()
	if err := fs.Err(); err != nil {
		return "", fmt.Errorf("answer CX: %w", err)
	}
	return cvv, nil
}

// VerifyCVV implements hsm.HSM with CY.
func (c *Client) VerifyCVV(ctx context.Context, req hsm.CVVRequest, cvv string) error {
	if err := checkCVVRequest(req); err != nil {
		return fmt.Errorf("verify CVV: %w", err)
	}
	if len(cvv) != 3 || !isDigits(cvv) {
		return fmt.Errorf("verify CVV: %w: a CVV of %d characters is not 3 digits", hsm.ErrInput, len(cvv)) // never the value: it is card data
	}
	key, err := c.rec(ctx, req.Key, hsm.Inbound)
	if err != nil {
		return fmt.Errorf("verify CVV: %w", err)
	}
	body := append([]byte(token(key)), cvv...)
	if _, err := c.do(ctx, "CY", cvvTail(body, req)); err != nil {
		return fmt.Errorf("verify CVV under %s: %w", key.Ref(), err)
	}
	return nil
}

// prepare normalises spec and finds the version a new key gets.
func (c *Client) prepare(ctx context.Context, spec *hsm.KeySpec) (int, error) {
	if err := spec.Normalize(); err != nil {
		return 0, err
	}
	v, t, err := c.store.NextVersion(ctx, spec.ID)
	if err != nil {
		return 0, err
	}
	if v > 1 && t != spec.Type {
		return 0, fmt.Errorf("%w: key %s is a %s; a new version must be a %s too, not a %s", hsm.ErrInput, spec.ID, t, t, spec.Type)
	}
	return v, nil
}

// put stores a key the HSM created as a new record; with unique set (an ECB
// import) the store refuses it if its KCV is that of a key of another ID.
func (c *Client) put(ctx context.Context, spec hsm.KeySpec, version int, tok, kcvHex, action, detail string, unique *hsm.UniqueValue) (hsm.KeyResult, error) {
	now := c.now().UTC()
	act := spec.ActivateAt
	if act.IsZero() {
		act = now
	}
	method := spec.Algorithm.KCVMethod()
	rec := hsm.KeyRecord{ID: spec.ID, Version: version, Type: spec.Type, Algorithm: spec.Algorithm, MACAlgorithm: spec.MACAlgorithm,
		Owner: spec.Owner, KCV: kcvHex, KCVMethod: method, Status: hsm.StatusActive, ActivateAt: act.UTC(), CreatedAt: now,
		CreatedBy: hsm.ActorFrom(ctx), Block: blockOf(tok)}
	if !spec.ExpiresAt.IsZero() {
		rec.ExpiresAt = spec.ExpiresAt.UTC()
	}
	var grace time.Time
	if version > 1 && spec.Grace > 0 {
		start := now
		if act.After(start) {
			start = act
		}
		grace = start.Add(spec.Grace)
	}
	ev := hsm.AuditEvent{Actor: hsm.ActorFrom(ctx), Action: action, KeyID: spec.ID, Version: version, KeyType: string(spec.Type), KCV: kcvHex, Detail: detail + " (payShield)"}
	if err := c.store.Put(ctx, hsm.PutRequest{Record: rec, SupersedeGraceUntil: grace, Event: ev, Unique: unique}); err != nil {
		return hsm.KeyResult{}, err
	}
	c.opts.Logger.Info().Str("key", rec.Ref().String()).Str("type", string(rec.Type)).Str("kcv", rec.KCV).Str("actor", ev.Actor).Str("action", action).Msg("key stored")
	return hsm.KeyResult{Ref: rec.Ref(), Type: rec.Type, Algorithm: rec.Algorithm, KCV: rec.KCV, KCVMethod: method}, nil
}

func exportScheme(f hsm.ExportFormat) (byte, error) {
	switch f {
	case hsm.ExportTR31:
		return 'R', nil
	case hsm.ExportECB:
		return 'X', nil
	}
	return 0, fmt.Errorf("%w: unknown export format %q (want tr31 or ecb)", hsm.ErrInput, f)
}

// GenerateKey implements hsm.HSM with A0, retried like the software HSM's (hsm.GenerateRetries).
func (c *Client) GenerateKey(ctx context.Context, req hsm.GenerateKeyRequest) (hsm.KeyResult, error) {
	return hsm.GenerateRetries(ctx, req, c.generateKey)
}

func (c *Client) generateKey(ctx context.Context, req hsm.GenerateKeyRequest) (hsm.KeyResult, error) {
	// A single-length key (a TDES-2KEY key of equal halves, which the software HSM
	// makes for cup sign-in schemes 001 and 003) is none a payShield makes: A0
	// draws both halves at random, and a key of equal halves is the "single length
	// key masquerading as double" it refuses (error 75). Until 6 December 2026 the
	// flag was ignored: the terminal got the first half of a double-length key as
	// its 8-byte key, and no MAC or PIN block of it could be read.
	if req.SingleLength {
		return hsm.KeyResult{}, fmt.Errorf("generate key %s: %w: a payShield generates no single-length key (a TDES-2KEY key of equal halves): cup sign-in schemes 001 and 003 need the software backend; terminals on a payShield sign in with scheme 004", req.ID, hsm.ErrPolicy)
	}
	version, err := c.prepare(ctx, &req.KeySpec)
	if err != nil {
		return hsm.KeyResult{}, fmt.Errorf("generate key: %w", err)
	}
	body := []byte("0FFFS")
	if c.variantLMK() {
		h, err := variantHeader(req.KeySpec)
		if err != nil {
			return hsm.KeyResult{}, fmt.Errorf("generate key %s: %w", req.ID, err)
		}
		body = append([]byte("0"), h...)
	}
	var krec hsm.KeyRecord
	if req.Export != nil {
		body[0] = '1'
		if krec, err = c.rec(ctx, req.Export.KEK, hsm.Outbound); err != nil {
			return hsm.KeyResult{}, fmt.Errorf("generate key %s: export KEK: %w", req.ID, err)
		}
		if err := hsm.CheckKEKStrength(req.Algorithm, krec, "exported"); err != nil {
			return hsm.KeyResult{}, fmt.Errorf("generate key %s: %w", req.ID, err)
		}
		if err := hsm.CheckGenerateWrap(ctx, c.store, req.KeySpec, version, krec); err != nil {
			return hsm.KeyResult{}, fmt.Errorf("generate key %s: %w", req.ID, err)
		}
		sc, err := exportScheme(req.Export.Format)
		if err != nil {
			return hsm.KeyResult{}, fmt.Errorf("generate key %s: %w", req.ID, err)
		}
		body = append(append(append(append(body, ';'), kekFlag(krec)...), token(krec)...), sc)
	}
	if !c.variantLMK() {
		if body, err = appendSpec(body, req.KeySpec, version); err != nil {
			return hsm.KeyResult{}, fmt.Errorf("generate key %s: %w", req.ID, err)
		}
	}
	resp, err := c.do(ctx, "A0", body)
	if err != nil {
		return hsm.KeyResult{}, fmt.Errorf("generate key %s: %w", req.ID, err)
	}
	fs := NewFields(resp.Body)
	tok := fs.Key("key under LMK", 0)
	var exported string
	if req.Export != nil {
		exported = fs.readVar("key under KEK")
	}
	k := fs.Hex("KCV", 6)
	fs.End()
	if err := fs.Err(); err != nil {
		return hsm.KeyResult{}, fmt.Errorf("generate key %s: answer A1: %w", req.ID, err)
	}
	action, detail := "generate", "random"
	if version > 1 {
		action = "rotate"
	}
	if req.Export != nil {
		detail = fmt.Sprintf("random, exported under %s as %s", krec.Ref(), req.Export.Format)
	}
	// A TDES key exported in ECB form goes to a terminal that checks it by its
	// check value, which UnionPay sign-ins carry in 8 digits (KeyResult.CheckValue4)
	// where A1 gives 6: BU gives the 16, before the key is stored. Until 6
	// December 2026 CheckValue4 was left empty and every cup sign-in on a payShield
	// failed.
	// A HSM that gives no 16-digit check value (an error code, 6 digits, or 6
	// padded with zeros) leaves CheckValue4 empty, and the key is stored: the
	// ASCII dialect's key change (WP/WM, 6-digit KCVs) needs none, and a cup
	// sign-in then fails on the missing check value, as this warning says. A check
	// value of another key, or no answer, fails the generation: nothing stored.
	var cv4 string
	if req.Export != nil && req.Export.Format == hsm.ExportECB && !req.Algorithm.IsAES() {
		full, err := c.checkValue16(ctx, hsm.KeyRecord{ID: req.ID, Type: req.Type, Block: tok}, k)
		switch {
		case err == nil:
			cv4 = full[:8]
		case errors.Is(err, hsm.ErrKCVMismatch), errors.Is(err, hsm.ErrUnavailable):
			return hsm.KeyResult{}, fmt.Errorf("generate key %s: not stored: %w", req.ID, err)
		default:
			c.opts.Logger.Warn().Err(err).Str("key", req.ID).Msg("payShield: no 16-digit check value for a key exported in ECB form: stored without the 4-byte check value a cup (UnionPay) sign-in sends, so cup sign-ins on this HSM fail; allow BU to answer 16-digit check values (docs/hsm.md)")
		}
	}
	res, err := c.put(ctx, req.KeySpec, version, tok, k, action, detail, nil)
	if err != nil {
		return hsm.KeyResult{}, fmt.Errorf("generate key %s: %w", req.ID, err)
	}
	res.Exported = exported
	res.CheckValue4 = cv4
	return res, nil
}

// checkValue16 asks BU for the 16-digit check value of a TDES key (KCV type 0:
// the key encrypting a block of zeros, whose first 6 digits are its KCV) and checks
// it against kcv6, the KCV the HSM reported with the key. A HSM that answers 6
// digits only, or 6 digits padded with zeros (payShield restricts BU to 6-digit
// KCVs by a security setting, and with a key-block LMK, by its manual, may give
// only 6 valid digits), is refused: UnionPay terminals check 8.
func (c *Client) checkValue16(ctx context.Context, rec hsm.KeyRecord, kcv6 string) (string, error) {
	head, trailer, err := buTypeField(rec)
	if err != nil {
		return "", fmt.Errorf("check value: %w", err)
	}
	if head == "FFF" {
		trailer = ";FFF" // a key block: the 3-digit key type the code FF asks for
	}
	// ";", key scheme (ZMK) and (LMK), reserved here, and KCV type 0: 16 digits.
	body := append(append(append([]byte(head), token(rec)...), trailer...), ";000"...)
	resp, err := c.do(ctx, "BU", body)
	if err != nil {
		return "", fmt.Errorf("16-digit check value (BU): %w", err)
	}
	full := strings.ToUpper(string(NewFields(resp.Body).Rest()))
	if len(full) != 16 {
		return "", fmt.Errorf("%w: the HSM answered BU with a check value of %d digits, not 16: a 4-byte (UnionPay) check value needs BU's 16-digit check value (KCV type 0), which this payShield's security settings may restrict to 6 digits", hsm.ErrKeyNotUsable, len(full))
	}
	if _, err := hex.DecodeString(full); err != nil {
		return "", fmt.Errorf("%w: BU answered check value %q, not hex", hsm.ErrKeyNotUsable, clip(full))
	}
	if strings.HasSuffix(full, "0000000000") {
		return "", fmt.Errorf("%w: BU answered check value %s, 6 digits padded with zeros: this payShield gives no 16-digit check value (a 4-byte UnionPay check value needs one)", hsm.ErrKeyNotUsable, full)
	}
	if subtle.ConstantTimeCompare([]byte(full[:6]), []byte(kcv6)) != 1 {
		return "", fmt.Errorf("%w: BU computes check value %s for the key A0 reported with KCV %s", hsm.ErrKCVMismatch, full, kcv6)
	}
	return full, nil
}

// FormKey implements hsm.HSM with FK: the clear components travel to the HSM, so use
// it only on a connection that is as trusted as the key ceremony's console (TLS on a
// dedicated network).
func (c *Client) FormKey(ctx context.Context, req hsm.FormKeyRequest) (hsm.KeyResult, error) {
	version, err := c.prepare(ctx, &req.KeySpec)
	if err != nil {
		return hsm.KeyResult{}, fmt.Errorf("form key: %w", err)
	}
	// The software HSM's checks, before the clear components are sent: a payShield's
	// FK forms whatever it is given.
	if err := hsm.CheckComponents(req.Algorithm, req.Components, req.SingleLength); err != nil {
		return hsm.KeyResult{}, fmt.Errorf("form key %s: %w", req.ID, err)
	}
	n := req.Algorithm.KeyLength()
	// Sized so that nothing reallocates: the one buffer with the clear components is
	// wiped below.
	head := "FFFS"
	if c.variantLMK() {
		if head, err = variantHeader(req.KeySpec); err != nil {
			return hsm.KeyResult{}, fmt.Errorf("form key %s: %w", req.ID, err)
		}
	}
	body := fmt.Appendf(make([]byte, 0, 1024), "%s%d%02d", head, len(req.Components), n)
	for i, comp := range req.Components {
		if len(comp) != n {
			return hsm.KeyResult{}, fmt.Errorf("form key %s: %w: component %d is %d bytes, a %s key needs %d", req.ID, hsm.ErrInput, i+1, len(comp), req.Algorithm, n)
		}
		body = append(body, strings.ToUpper(hex.EncodeToString(comp))...)
	}
	defer func() { clear(body[:cap(body)]) }()
	if !c.variantLMK() {
		if body, err = appendSpec(body, req.KeySpec, version); err != nil {
			return hsm.KeyResult{}, fmt.Errorf("form key %s: %w", req.ID, err)
		}
	}
	resp, err := c.do(ctx, "FK", body)
	if err != nil {
		return hsm.KeyResult{}, fmt.Errorf("form key %s: %w", req.ID, err)
	}
	fs := NewFields(resp.Body)
	tok := fs.Key("key under LMK", 0)
	k := fs.Hex("KCV", 6)
	var kcvs []string
	for range req.Components {
		kcvs = append(kcvs, fs.Hex("component KCV", 6))
	}
	fs.End()
	if err := fs.Err(); err != nil {
		return hsm.KeyResult{}, fmt.Errorf("form key %s: answer FL: %w", req.ID, err)
	}
	// As the software HSM: a formed key's value is not one stored under another key
	// ID (hsm.UniqueValue); the HSM does not compare values, so the KCV stands for it.
	var unique *hsm.UniqueValue
	if !req.AllowStoredValue {
		unique = &hsm.UniqueValue{KCVs: []string{k}, Formed: true}
	}
	res, err := c.put(ctx, req.KeySpec, version, tok, k, "form", fmt.Sprintf("from %d components, KCVs %s", len(kcvs), strings.Join(kcvs, " ")), unique)
	if err != nil {
		return hsm.KeyResult{}, fmt.Errorf("form key %s: %w", req.ID, err)
	}
	res.ComponentKCVs = kcvs
	return res, nil
}

// masquerading reports whether the hex ECB form of a TDES key (8-byte blocks under
// a TDES KEK) has the equal parts of a single-length key: a TDES-2KEY key's two
// halves (unless single), a TDES-3KEY key's middle and first or last parts.
func masquerading(alg hsm.Algorithm, h string, single bool) bool {
	switch {
	case alg == hsm.TDES2KEY && len(h) == 32:
		return !single && h[:16] == h[16:]
	case alg == hsm.TDES3KEY && len(h) == 48:
		return h[16:32] == h[:16] || h[16:32] == h[32:]
	}
	return false
}

// ImportKey implements hsm.HSM with A6.
func (c *Client) ImportKey(ctx context.Context, req hsm.ImportKeyRequest) (hsm.KeyResult, error) {
	version, err := c.prepare(ctx, &req.KeySpec)
	if err != nil {
		return hsm.KeyResult{}, fmt.Errorf("import key: %w", err)
	}
	if (req.TR31 == "") == (req.ECB == "") {
		return hsm.KeyResult{}, fmt.Errorf("import key %s: %w: give exactly one of a TR-31 block and an ECB hex key", req.ID, hsm.ErrInput)
	}
	if req.ECB != "" {
		if err := hsm.CheckECBImport(req.Type); err != nil {
			return hsm.KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
		}
	}
	krec, err := c.rec(ctx, req.KEK, hsm.Inbound)
	if err != nil {
		return hsm.KeyResult{}, fmt.Errorf("import key %s: KEK: %w", req.ID, err)
	}
	if err := hsm.CheckKEKStrength(req.Algorithm, krec, "imported"); err != nil {
		return hsm.KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
	}
	// As the software HSM, before A6: a key comes in under a TMK only where it
	// could leave under it (a payShield imports under a TMK what it is given).
	if err := hsm.CheckImportWrap(ctx, c.store, req.KeySpec, version, krec); err != nil {
		return hsm.KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
	}
	wrapped, form := strings.TrimSpace(req.ECB), "ecb"
	if req.TR31 != "" {
		wrapped, form = "R"+strings.TrimSpace(req.TR31), "tr31"
		// The header is in the clear: a key component's block is refused here,
		// as the software HSM refuses it, whatever the HSM would do with it.
		h, _, err := tr31.ParseHeader(strings.TrimSpace(req.TR31))
		if err != nil {
			return hsm.KeyResult{}, fmt.Errorf("import key %s: %w: %w", req.ID, hsm.ErrInput, err)
		}
		if err := hsm.CheckTR31Import(h); err != nil {
			return hsm.KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
		}
	}
	want := strings.ToUpper(strings.TrimSpace(req.KCV))
	if form == "ecb" {
		// As the software HSM: an ECB key needs its KCV (the one guard against a
		// key spliced from halves of ECB forms), given after a colon or in KCV, and
		// the HSM gets the hex key alone.
		hexKey, kcvPart, found := strings.Cut(wrapped, ":")
		if found {
			kcvPart = strings.ToUpper(strings.TrimSpace(kcvPart))
			if want != "" && kcvPart != want {
				return hsm.KeyResult{}, fmt.Errorf("import key %s: %w: the ECB form says KCV %s, the request %s", req.ID, hsm.ErrKCVMismatch, kcvPart, want)
			}
			want, wrapped = kcvPart, strings.TrimSpace(hexKey)
		}
		if want == "" {
			return hsm.KeyResult{}, fmt.Errorf("import key %s: %w: an ECB import needs the key's KCV (\"HEXKEY:KCV\" or the kcv field)", req.ID, hsm.ErrInput)
		}
		// Under the KEK's ECB, equal clear parts give equal enciphered ones: a
		// single-length key masquerading as a longer one is seen without the
		// HSM (hsm.CheckKeyHalves; a payShield would answer 75).
		if masquerading(req.Algorithm, strings.ToUpper(wrapped), req.SingleLength) {
			return hsm.KeyResult{}, fmt.Errorf("import key %s: %w: the %s key's ECB form has equal 16-digit parts: a single-length DES key masquerading as a longer one", req.ID, hsm.ErrInput, req.Algorithm)
		}
	}
	if len(want) > 99 || want != "" && (len(want) < 6 || !isHex(want)) {
		return hsm.KeyResult{}, fmt.Errorf("import key %s: %w: expected KCV %q is not 6 to 99 hex digits", req.ID, hsm.ErrInput, want)
	}
	head := "FFFS"
	if c.variantLMK() {
		if head, err = variantHeader(req.KeySpec); err != nil {
			return hsm.KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
		}
	}
	body := append([]byte(head[:3]), token(krec)...)
	body = appendVar(body, wrapped)
	body = fmt.Appendf(body, "%c%02d%s", head[3], len(want), want)
	if c.variantLMK() {
		body = append(append(body, ';'), kekFlag(krec)...)
	} else if body, err = appendSpec(body, req.KeySpec, version); err != nil {
		return hsm.KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
	}
	resp, err := c.do(ctx, "A6", body)
	if err != nil {
		return hsm.KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
	}
	fs := NewFields(resp.Body)
	tok := fs.Key("key under LMK", 0)
	k := fs.Hex("KCV", 6)
	fs.End()
	if err := fs.Err(); err != nil {
		return hsm.KeyResult{}, fmt.Errorf("import key %s: answer A7: %w", req.ID, err)
	}
	// The switch checks the KCV itself: a HSM that does not read the KCV field
	// (the layout is this project's reading) would otherwise import an unchecked key.
	if want != "" && k != want[:6] {
		return hsm.KeyResult{}, fmt.Errorf("import key %s: %w: the HSM imported a key of KCV %s, expected %s (wrong KEK, damaged or spliced key); not stored", req.ID, hsm.ErrKCVMismatch, k, want[:6])
	}
	// An ECB form brings no key type: the key store refuses the key if its KCV is
	// that of a key stored under another ID (hsm.UniqueValue). The HSM does not
	// compare key values for the switch, so the KCV stands for the value.
	var unique *hsm.UniqueValue
	if form == "ecb" {
		unique = &hsm.UniqueValue{KCVs: []string{k}}
	}
	res, err := c.put(ctx, req.KeySpec, version, tok, k, "import", fmt.Sprintf("%s under %s", form, krec.Ref()), unique)
	if err != nil {
		return hsm.KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
	}
	return res, nil
}

// ExportKey implements hsm.HSM with A8.
func (c *Client) ExportKey(ctx context.Context, req hsm.ExportKeyRequest) (string, error) {
	rec, err := c.rec(ctx, req.Key, hsm.Distribute)
	if err != nil {
		return "", fmt.Errorf("export key: %w", err)
	}
	krec, err := c.rec(ctx, req.KEK, hsm.Outbound)
	if err != nil {
		return "", fmt.Errorf("export key %s: KEK: %w", rec.Ref(), err)
	}
	if krec.ID == rec.ID {
		return "", fmt.Errorf("export key %s: %w: a key may not be exported under itself", rec.Ref(), hsm.ErrPolicy)
	}
	if err := hsm.CheckKEKStrength(rec.Algorithm, krec, "exported"); err != nil {
		return "", fmt.Errorf("export key %s: %w", rec.Ref(), err)
	}
	if err := hsm.CheckWrap(rec.Type, rec.ID, rec.Owner, krec); err != nil {
		return "", fmt.Errorf("export key %s: %w", rec.Ref(), err)
	}
	sc, err := exportScheme(req.Format)
	if err != nil {
		return "", fmt.Errorf("export key %s: %w", rec.Ref(), err)
	}
	kt, err := keyTypeField(rec)
	if err != nil {
		return "", fmt.Errorf("export key: %w", err)
	}
	body := append([]byte(kt), token(krec)...)
	body = append(append(body, token(rec)...), sc)
	if isVariantToken(token(krec)) {
		body = append(append(body, ';'), kekFlag(krec)...)
	}
	resp, err := c.do(ctx, "A8", body)
	if err != nil {
		return "", fmt.Errorf("export key %s: %w", rec.Ref(), err)
	}
	fs := NewFields(resp.Body)
	out := fs.readVar("key under KEK")
	fs.Hex("KCV", 6)
	fs.End()
	if err := fs.Err(); err != nil {
		return "", fmt.Errorf("export key %s: answer A9: %w", rec.Ref(), err)
	}
	ev := hsm.AuditEvent{Actor: hsm.ActorFrom(ctx), Action: "export", KeyID: rec.ID, Version: rec.Version, KeyType: string(rec.Type), KCV: rec.KCV,
		Detail: fmt.Sprintf("under %s as %s (payShield)", krec.Ref(), req.Format)}
	if err := c.store.Audit(ctx, ev); err != nil {
		return "", fmt.Errorf("export key %s: audit: %w", rec.Ref(), err)
	}
	return out, nil
}

// KCV implements hsm.HSM with BU; it checks the HSM's answer against the record.
func (c *Client) KCV(ctx context.Context, ref hsm.KeyRef) (hsm.KeyCheck, error) {
	rec, err := c.rec(ctx, ref, hsm.Distribute)
	if err != nil {
		return hsm.KeyCheck{}, fmt.Errorf("KCV: %w", err)
	}
	head, trailer, err := buTypeField(rec)
	if err != nil {
		return hsm.KeyCheck{}, fmt.Errorf("KCV: %w", err)
	}
	resp, err := c.do(ctx, "BU", append(append([]byte(head), token(rec)...), trailer...))
	if err != nil {
		return hsm.KeyCheck{}, fmt.Errorf("KCV of %s: %w", rec.Ref(), err)
	}
	fs := NewFields(resp.Body)
	k := fs.Hex("KCV", 6)
	fs.Rest() // payShield may answer 16 digits with the variant LMK
	if err := fs.Err(); err != nil {
		return hsm.KeyCheck{}, fmt.Errorf("KCV of %s: answer BV: %w", rec.Ref(), err)
	}
	if subtle.ConstantTimeCompare([]byte(k), []byte(rec.KCV)) != 1 {
		return hsm.KeyCheck{}, fmt.Errorf("KCV of %s: %w: the HSM computes %s, the record says %s", rec.Ref(), hsm.ErrKCVMismatch, k, rec.KCV)
	}
	return hsm.KeyCheck{Ref: rec.Ref(), KCV: k, Method: rec.KCVMethod}, nil
}
