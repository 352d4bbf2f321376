package hsm

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/tr31"
	"github.com/switchyard/switchyard/internal/sym"
)

// kek resolves a KEK for wrapping (export) or unwrapping (import).
func (s *Software) kek(ctx context.Context, ref KeyRef, wrap bool) (KeyRecord, *loaded, error) {
	p, modes, what := Inbound, "BD", "unwrap keys"
	if wrap {
		p, modes, what = Outbound, "BE", "wrap keys"
	}
	rec, l, err := s.key(ctx, ref, p)
	if err != nil {
		return rec, nil, err
	}
	if (l.header.Usage != tr31.UsageKEK && l.header.Usage != tr31.UsageKBPK) || !modeIn(l.header.ModeOfUse, modes) || l.raw == nil {
		return rec, nil, usageErr(rec, l, what)
	}
	return rec, l, nil
}

// newRecord wraps key under the LMK and stores it as version version of spec.ID.
// With unique set (an ECB import) the store refuses it if its value is stored under
// another key ID.
func (s *Software) newRecord(ctx context.Context, spec KeySpec, version int, key []byte, exportability byte, action, detail string, unique *UniqueValue) (KeyResult, KeyRecord, error) {
	prof, err := ProfileFor(spec.Type, spec.Algorithm, spec.MACAlgorithm)
	if err != nil {
		return KeyResult{}, KeyRecord{}, err
	}
	if exportability == 0 {
		exportability = prof.Exportability
	}
	k, err := kcv.Compute(key, spec.Algorithm.KCVMethod())
	if err != nil {
		return KeyResult{}, KeyRecord{}, err
	}
	h := tr31.Header{
		Version: tr31.VersionD, Usage: prof.Usage, Algorithm: prof.Algorithm, ModeOfUse: prof.ModeOfUse,
		KeyVersion: fmt.Sprintf("%02d", version%100), Exportability: exportability,
		Blocks: []tr31.OptionalBlock{{ID: "KC", Data: kcBlock(k)}, {ID: "LB", Data: label(spec.ID, version, spec.Type)}},
	}
	block, err := tr31.Wrap(s.lmk, h, key, s.opts.Rand)
	if err != nil {
		return KeyResult{}, KeyRecord{}, fmt.Errorf("wrap under the LMK: %w", err)
	}
	now := s.now().UTC()
	act := spec.ActivateAt
	if act.IsZero() {
		act = now
	}
	rec := KeyRecord{
		ID: spec.ID, Version: version, Type: spec.Type, Algorithm: spec.Algorithm, MACAlgorithm: spec.MACAlgorithm,
		Owner: spec.Owner, KCV: k.String(), KCVMethod: k.Method, Status: StatusActive,
		ActivateAt: act.UTC(), ExpiresAt: spec.ExpiresAt.UTC(), CreatedAt: now, CreatedBy: ActorFrom(ctx), Block: block,
	}
	if spec.ExpiresAt.IsZero() {
		rec.ExpiresAt = time.Time{}
	}
	var grace time.Time
	if version > 1 && spec.Grace > 0 {
		start := now
		if act.After(start) {
			start = act
		}
		grace = start.Add(spec.Grace)
	}
	ev := AuditEvent{Actor: ActorFrom(ctx), Action: action, KeyID: spec.ID, Version: version, KeyType: string(spec.Type), KCV: rec.KCV, Detail: detail}
	if err := s.store.Put(ctx, PutRequest{Record: rec, SupersedeGraceUntil: grace, Event: ev, Unique: unique}); err != nil {
		return KeyResult{}, KeyRecord{}, err
	}
	s.log.Info().Str("key", rec.Ref().String()).Str("type", string(rec.Type)).Str("kcv", rec.KCV).Str("actor", ev.Actor).Str("action", action).Msg("key stored")
	return KeyResult{Ref: rec.Ref(), Type: rec.Type, Algorithm: rec.Algorithm, KCV: rec.KCV, KCVMethod: rec.KCVMethod}, rec, nil
}

// prepare normalises spec and finds the version a new key gets.
func (s *Software) prepare(ctx context.Context, spec *KeySpec) (int, error) {
	if err := spec.Normalize(); err != nil {
		return 0, err
	}
	v, t, err := s.store.NextVersion(ctx, spec.ID)
	if err != nil {
		return 0, err
	}
	if v > 1 && t != spec.Type {
		return 0, fmt.Errorf("%w: key %s is a %s; a new version must be a %s too, not a %s", ErrInput, spec.ID, t, t, spec.Type)
	}
	return v, nil
}

func (s *Software) randomKey(alg Algorithm) ([]byte, error) {
	key := make([]byte, alg.KeyLength())
	if _, err := io.ReadFull(s.opts.Rand, key); err != nil {
		return nil, fmt.Errorf("random key: %w", err)
	}
	if !alg.IsAES() {
		sym.SetOddParity(key)
	}
	return key, nil
}

// GenerateKey implements HSM. When another writer stored the version it was about to
// store (two sign-ins of one terminal at once, or two nodes of a cluster), it makes
// a new key for the next version (see GenerateRetries).
func (s *Software) GenerateKey(ctx context.Context, req GenerateKeyRequest) (KeyResult, error) {
	return GenerateRetries(ctx, req, s.generateKey)
}

func (s *Software) generateKey(ctx context.Context, req GenerateKeyRequest) (KeyResult, error) {
	version, err := s.prepare(ctx, &req.KeySpec)
	if err != nil {
		return KeyResult{}, fmt.Errorf("generate key: %w", err)
	}
	var kl *loaded
	var krec KeyRecord
	if req.Export != nil {
		if krec, kl, err = s.kek(ctx, req.Export.KEK, true); err != nil {
			return KeyResult{}, fmt.Errorf("generate key %s: export KEK: %w", req.ID, err)
		}
		prof, _ := ProfileFor(req.Type, req.Algorithm, req.MACAlgorithm)
		if err := checkExport(req.Algorithm, prof.Exportability, krec, req.Export.Format); err != nil {
			return KeyResult{}, fmt.Errorf("generate key %s: %w", req.ID, err)
		}
		if err := CheckGenerateWrap(ctx, s.store, req.KeySpec, version, krec); err != nil {
			return KeyResult{}, fmt.Errorf("generate key %s: %w", req.ID, err)
		}
	}
	key, err := s.randomKey(req.Algorithm)
	if err != nil {
		return KeyResult{}, fmt.Errorf("generate key %s: %w", req.ID, err)
	}
	defer sym.Wipe(key)
	if req.SingleLength {
		if req.Algorithm != TDES2KEY {
			return KeyResult{}, fmt.Errorf("generate key %s: %w: a single-length key is a TDES-2KEY key, not %s", req.ID, ErrInput, req.Algorithm)
		}
		copy(key[8:], key[:8])
	}
	detail := "random"
	if req.Export != nil {
		detail = fmt.Sprintf("random, exported under %s as %s", krec.Ref(), req.Export.Format)
	}
	action := "generate"
	if version > 1 {
		action = "rotate"
	}
	res, rec, err := s.newRecord(ctx, req.KeySpec, version, key, 0, action, detail, nil)
	if err != nil {
		return KeyResult{}, fmt.Errorf("generate key %s: %w", req.ID, err)
	}
	if !req.Algorithm.IsAES() {
		c, err := sym.NewTDES(key)
		if err != nil {
			return res, fmt.Errorf("generate key %s: check value: %w", req.ID, err)
		}
		var z [8]byte
		c.Encrypt(z[:], z[:])
		res.CheckValue4 = strings.ToUpper(hex.EncodeToString(z[:4]))
	}
	if req.Export != nil {
		h, _, _ := tr31.ParseHeader(rec.Block)
		if res.Exported, err = s.exportUnder(h, key, res.KCV, krec, kl, req.Export.Format); err != nil {
			return res, fmt.Errorf("generate key: stored as %s but the export failed: %w", res.Ref, err)
		}
	}
	return res, nil
}

// FormKey implements HSM.
func (s *Software) FormKey(ctx context.Context, req FormKeyRequest) (KeyResult, error) {
	version, err := s.prepare(ctx, &req.KeySpec)
	if err != nil {
		return KeyResult{}, fmt.Errorf("form key: %w", err)
	}
	if err := CheckComponents(req.Algorithm, req.Components, req.SingleLength); err != nil {
		return KeyResult{}, fmt.Errorf("form key %s: %w", req.ID, err)
	}
	n := req.Algorithm.KeyLength()
	key := make([]byte, n)
	defer sym.Wipe(key)
	var kcvs []string
	for i, c := range req.Components {
		ck, err := kcv.Compute(c, req.Algorithm.KCVMethod())
		if err != nil {
			return KeyResult{}, fmt.Errorf("form key %s: component %d: %w", req.ID, i+1, err)
		}
		kcvs = append(kcvs, ck.String())
		sym.XOR(key, key, c)
	}
	if !req.Algorithm.IsAES() {
		sym.SetOddParity(key)
	}
	// Components carry no key type: the same components entered again must not
	// make a second key of another ID (and type) of one value (UniqueValue).
	var unique *UniqueValue
	if !req.AllowStoredValue {
		unique = &UniqueValue{KCVs: valueKCVs(key), Same: s.sameValue(req.Algorithm, key), Formed: true}
	}
	res, _, err := s.newRecord(ctx, req.KeySpec, version, key, 0, "form", fmt.Sprintf("from %d components, KCVs %s", len(kcvs), strings.Join(kcvs, " ")), unique)
	if err != nil {
		return KeyResult{}, fmt.Errorf("form key %s: %w", req.ID, err)
	}
	res.ComponentKCVs = kcvs
	return res, nil
}

// modeAllows reports whether a key that a TR-31 block authorises for mode of use
// have may be stored with mode want: the same, N (no restriction), or a narrower
// mode (B covers encrypt-only E and decrypt-only D; C covers generate-only G and
// verify-only V). A key sent as verify-only or unwrap-only must not become able to
// generate MACs or wrap keys here.
func modeAllows(have, want byte) bool {
	switch have {
	case want, tr31.ModeAny:
		return true
	case tr31.ModeEncDec:
		return want == tr31.ModeEncrypt || want == tr31.ModeDecrypt
	case tr31.ModeMAC:
		return want == tr31.ModeGenerate || want == tr31.ModeVerify
	}
	return false
}

var exportRank = map[byte]int{tr31.ExportNone: 0, tr31.ExportTrusted: 1, tr31.ExportSensitive: 2}

// ImportKey implements HSM.
func (s *Software) ImportKey(ctx context.Context, req ImportKeyRequest) (KeyResult, error) {
	version, err := s.prepare(ctx, &req.KeySpec)
	if err != nil {
		return KeyResult{}, fmt.Errorf("import key: %w", err)
	}
	if (req.TR31 == "") == (req.ECB == "") {
		return KeyResult{}, fmt.Errorf("import key %s: %w: give exactly one of a TR-31 block and an ECB hex key", req.ID, ErrInput)
	}
	krec, kl, err := s.kek(ctx, req.KEK, false)
	if err != nil {
		return KeyResult{}, fmt.Errorf("import key %s: KEK: %w", req.ID, err)
	}
	// Since 6 December 2026 (an AES-256 BDK came in from a version D block under
	// a TDES-2KEY TMK, its bytes taken as an AES-128 key).
	if err := CheckKEKStrength(req.Algorithm, krec, "imported"); err != nil {
		return KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
	}
	// Since 8 December 2026: the hierarchy of exports (a ZMK of the importer's
	// choice came in under a terminal's TMK, and the dual-control ZMK left under it).
	if err := CheckImportWrap(ctx, s.store, req.KeySpec, version, krec); err != nil {
		return KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
	}
	prof, _ := ProfileFor(req.Type, req.Algorithm, req.MACAlgorithm)
	var key []byte
	exportability := prof.Exportability
	wantKCV := strings.ToUpper(strings.TrimSpace(req.KCV))
	form := "tr31"
	if req.TR31 != "" {
		// A block's version is its KEK's algorithm: D (AES) under an AES KEK, A, B
		// or C (TDES) under a TDES one; else the KEK's bytes serve another cipher.
		if hv, _, err := tr31.ParseHeader(strings.TrimSpace(req.TR31)); err == nil && (hv.Version == tr31.VersionD) != krec.Algorithm.IsAES() {
			return KeyResult{}, fmt.Errorf("import key %s: %w: a TR-31 version %c block under the %s KEK %s (version D goes with an AES KEK, A, B and C with a TDES one)", req.ID, ErrPolicy, hv.Version, krec.Algorithm, krec.Ref())
		}
		h, k, err := tr31.Unwrap(kl.raw, strings.TrimSpace(req.TR31))
		if err != nil {
			// A block that does not parse or authenticate under the KEK (altered,
			// damaged, or under another key) is bad input, as a wrong KCV is: until
			// 8 December 2026 it was answered 500 and logged as an internal error.
			if errors.Is(err, tr31.ErrHeader) || errors.Is(err, tr31.ErrBlock) || errors.Is(err, tr31.ErrMAC) {
				return KeyResult{}, fmt.Errorf("import key %s: %w: TR-31 block under %s: %w", req.ID, ErrInput, krec.Ref(), err)
			}
			return KeyResult{}, fmt.Errorf("import key %s: TR-31 block under %s: %w", req.ID, krec.Ref(), err)
		}
		key = k
		defer sym.Wipe(key)
		if err := CheckTR31Import(h); err != nil {
			return KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
		}
		if h.Usage != prof.Usage || h.Algorithm != prof.Algorithm {
			return KeyResult{}, fmt.Errorf("import key %s: %w: the TR-31 block holds usage %s algorithm %c, a %s (%s) needs usage %s algorithm %c", req.ID, ErrKeyUsage, h.Usage, h.Algorithm, req.Type, req.Algorithm, prof.Usage, prof.Algorithm)
		}
		if !modeAllows(h.ModeOfUse, prof.ModeOfUse) {
			return KeyResult{}, fmt.Errorf("import key %s: %w: the TR-31 block restricts the key to mode of use %c; a %s is stored with mode %c, which it does not allow", req.ID, ErrKeyUsage, h.ModeOfUse, req.Type, prof.ModeOfUse)
		}
		if exportRank[h.Exportability] < exportRank[exportability] {
			exportability = h.Exportability
		}
		if kc, ok := h.Block("KC"); ok && len(kc) > 2 {
			if wantKCV == "" {
				wantKCV = kc[2:]
			} else if kc[2:] != wantKCV {
				return KeyResult{}, fmt.Errorf("import key %s: %w: the TR-31 block's KC says %s, the request %s", req.ID, ErrKCVMismatch, kc[2:], wantKCV)
			}
		}
	} else {
		form = "ecb"
		if err := CheckECBImport(req.Type); err != nil {
			return KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
		}
		hexKey, kcvPart, found := strings.Cut(strings.TrimSpace(req.ECB), ":")
		if found {
			if wantKCV != "" && !strings.EqualFold(kcvPart, wantKCV) {
				return KeyResult{}, fmt.Errorf("import key %s: %w: the ECB form says KCV %s, the request %s", req.ID, ErrKCVMismatch, strings.ToUpper(kcvPart), wantKCV)
			}
			wantKCV = strings.ToUpper(kcvPart)
		}
		if wantKCV == "" {
			return KeyResult{}, fmt.Errorf("import key %s: %w: an ECB import needs the key's KCV (\"HEXKEY:KCV\" or the kcv field)", req.ID, ErrInput)
		}
		enc, err := hex.DecodeString(hexKey)
		if err != nil || len(enc) != req.Algorithm.KeyLength() || len(enc)%kl.c.BlockSize() != 0 {
			return KeyResult{}, fmt.Errorf("import key %s: %w: ECB key must be %d bytes of hex (a %s key)", req.ID, ErrInput, req.Algorithm.KeyLength(), req.Algorithm)
		}
		key = make([]byte, len(enc))
		defer sym.Wipe(key)
		for i := 0; i < len(enc); i += kl.c.BlockSize() {
			kl.c.Decrypt(key[i:], enc[i:])
		}
	}
	if len(key) != req.Algorithm.KeyLength() {
		return KeyResult{}, fmt.Errorf("import key %s: %w: the key is %d bytes, a %s key is %d", req.ID, ErrInput, len(key), req.Algorithm, req.Algorithm.KeyLength())
	}
	if err := CheckKeyHalves(req.Algorithm, key, req.SingleLength); err != nil {
		return KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
	}
	got, err := kcv.Compute(key, req.Algorithm.KCVMethod())
	if err != nil {
		return KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
	}
	// A TR-31 block authenticates its key, so its KCV check is optional; an ECB key
	// always has one (checked above).
	if wantKCV != "" {
		if len(wantKCV) < 2*kcv.Length {
			return KeyResult{}, fmt.Errorf("import key %s: %w: expected KCV %q is shorter than 6 hex digits", req.ID, ErrInput, wantKCV)
		}
		if subtle.ConstantTimeCompare([]byte(got.String()), []byte(wantKCV[:2*kcv.Length])) != 1 {
			return KeyResult{}, fmt.Errorf("import key %s: %w: the key's KCV is %s, expected %s (wrong KEK or damaged key)", req.ID, ErrKCVMismatch, got, wantKCV)
		}
	}
	// A key from an ECB form brings no type of its own: its value must not be
	// stored under another key ID already (UniqueValue). A TR-31 block binds
	// its usage, and the check would refuse legitimate copies (a key sent to
	// two zones as blocks).
	var unique *UniqueValue
	if form == "ecb" {
		unique = &UniqueValue{KCVs: valueKCVs(key), Same: s.sameValue(req.Algorithm, key)}
	}
	res, _, err := s.newRecord(ctx, req.KeySpec, version, key, exportability, "import", fmt.Sprintf("%s under %s", form, krec.Ref()), unique)
	if err != nil {
		return KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
	}
	return res, nil
}

// sameValue returns UniqueValue.Same for key (of algorithm alg): it unwraps a stored
// record under the LMK and compares the two values (sameKeyValue). key must stay
// unwiped until the Put that uses it returns.
func (s *Software) sameValue(alg Algorithm, key []byte) func(KeyRecord) (bool, error) {
	return func(rec KeyRecord) (bool, error) {
		h, other, err := tr31.Unwrap(s.lmk, rec.Block)
		if err != nil {
			return false, fmt.Errorf("unwrap %s under the LMK: %w", rec.Ref(), err)
		}
		defer sym.Wipe(other)
		if err := checkBinding(rec, h, other); err != nil {
			return false, err
		}
		return sameKeyValue(alg, key, rec.Algorithm, other), nil
	}
}

// CheckTR31Import refuses a TR-31 block that holds a key component (key version
// "c1", "c2", ...): one custodian's component imported as the key would be a key
// known to one person. Components are entered in the dual-control ceremony
// (FormKey). Both backends apply it; the payShield client before it sends A6.
func CheckTR31Import(h tr31.Header) error {
	if h.IsComponent() {
		return fmt.Errorf("%w: the TR-31 block holds key component %c (key version %q), not a key: enter components in a key ceremony, each by its custodian", ErrPolicy, h.KeyVersion[1], h.KeyVersion)
	}
	return nil
}

// checkExport checks that a key of algorithm alg with the given exportability may
// be exported under the KEK krec in format f.
func checkExport(alg Algorithm, exportability byte, krec KeyRecord, f ExportFormat) error {
	switch f {
	case ExportTR31:
		if exportability == tr31.ExportNone {
			return fmt.Errorf("%w: the key is not exportable (TR-31 exportability N)", ErrPolicy)
		}
	case ExportECB:
		if exportability != tr31.ExportSensitive {
			return fmt.Errorf("%w: only keys with TR-31 exportability S may leave in ECB form; use tr31", ErrPolicy)
		}
		if alg.IsAES() != krec.Algorithm.IsAES() {
			return fmt.Errorf("%w: ECB export of a %s key under the %s KEK %s is not supported", ErrPolicy, alg, krec.Algorithm, krec.Ref())
		}
	default:
		return fmt.Errorf("%w: unknown export format %q (want tr31 or ecb)", ErrInput, f)
	}
	return CheckKEKStrength(alg, krec, "exported")
}

// CheckKEKStrength refuses a key of algorithm alg wrapped under a weaker KEK: an AES
// key under a TDES KEK, or a longer key under a shorter KEK of its family. verb says
// which way ("exported", "imported"): a key is only as strong as the key it
// travelled under, both ways. The payShield client applies it before it sends A0,
// A6 or A8, as the software HSM does.
func CheckKEKStrength(alg Algorithm, krec KeyRecord, verb string) error {
	if alg.IsAES() && !krec.Algorithm.IsAES() {
		return fmt.Errorf("%w: an %s key may not be %s under the weaker %s KEK %s", ErrPolicy, alg, verb, krec.Algorithm, krec.Ref())
	}
	if alg.KeyLength() > krec.Algorithm.KeyLength() && alg.IsAES() == krec.Algorithm.IsAES() {
		return fmt.Errorf("%w: a %s key may not be %s under the shorter %s KEK %s", ErrPolicy, alg, verb, krec.Algorithm, krec.Ref())
	}
	return nil
}

// exportUnder wraps key (with its LMK header h) under the KEK.
func (s *Software) exportUnder(h tr31.Header, key []byte, keyKCV string, krec KeyRecord, kl *loaded, f ExportFormat) (string, error) {
	if f == ExportECB {
		bs := kl.c.BlockSize()
		if len(key)%bs != 0 {
			return "", fmt.Errorf("%w: a %d-byte key does not fill whole %d-byte blocks of the KEK", ErrPolicy, len(key), bs)
		}
		enc := make([]byte, len(key))
		for i := 0; i < len(key); i += bs {
			kl.c.Encrypt(enc[i:], key[i:])
		}
		return strings.ToUpper(hex.EncodeToString(enc)) + ":" + keyKCV, nil
	}
	v := tr31.VersionB
	if krec.Algorithm.IsAES() {
		v = tr31.VersionD
	}
	m := kcv.MethodTDES
	if h.Algorithm == tr31.AlgAES {
		m = kcv.MethodCMAC
	}
	out := tr31.Header{Version: v, Usage: h.Usage, Algorithm: h.Algorithm, ModeOfUse: h.ModeOfUse, KeyVersion: "00", Exportability: tr31.ExportNone,
		Blocks: []tr31.OptionalBlock{{ID: "KC", Data: kcBlock(kcv.KCV{Method: m, Value: mustHexKCV(keyKCV)})}}}
	return tr31.Wrap(kl.raw, out, key, s.opts.Rand)
}

func mustHexKCV(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}

// ExportKey implements HSM.
func (s *Software) ExportKey(ctx context.Context, req ExportKeyRequest) (string, error) {
	rec, err := s.store.Key(ctx, req.Key)
	if err != nil {
		return "", fmt.Errorf("export key: %w", err)
	}
	if err := rec.Usable(s.now(), Distribute); err != nil {
		return "", fmt.Errorf("export key: %w", err)
	}
	h, key, err := tr31.Unwrap(s.lmk, rec.Block)
	if err != nil {
		return "", fmt.Errorf("export key %s: unwrap under the LMK: %w", rec.Ref(), err)
	}
	defer sym.Wipe(key)
	if err := checkBinding(rec, h, key); err != nil {
		return "", fmt.Errorf("export key: %w", err)
	}
	krec, kl, err := s.kek(ctx, req.KEK, true)
	if err != nil {
		return "", fmt.Errorf("export key %s: KEK: %w", rec.Ref(), err)
	}
	if krec.ID == rec.ID {
		return "", fmt.Errorf("export key %s: %w: a key may not be exported under itself", rec.Ref(), ErrPolicy)
	}
	if err := checkExport(rec.Algorithm, h.Exportability, krec, req.Format); err != nil {
		return "", fmt.Errorf("export key %s: %w", rec.Ref(), err)
	}
	if err := CheckWrap(rec.Type, rec.ID, rec.Owner, krec); err != nil {
		return "", fmt.Errorf("export key %s: %w", rec.Ref(), err)
	}
	out, err := s.exportUnder(h, key, rec.KCV, krec, kl, req.Format)
	if err != nil {
		return "", fmt.Errorf("export key %s: %w", rec.Ref(), err)
	}
	ev := AuditEvent{Actor: ActorFrom(ctx), Action: "export", KeyID: rec.ID, Version: rec.Version, KeyType: string(rec.Type), KCV: rec.KCV,
		Detail: fmt.Sprintf("under %s as %s", krec.Ref(), req.Format)}
	if err := s.store.Audit(ctx, ev); err != nil {
		return "", fmt.Errorf("export key %s: audit: %w", rec.Ref(), err)
	}
	s.log.Info().Str("key", rec.Ref().String()).Str("kek", krec.Ref().String()).Str("format", string(req.Format)).Str("actor", ev.Actor).Msg("key exported")
	return out, nil
}

// KCV implements HSM: it recomputes the check value from the key itself.
func (s *Software) KCV(ctx context.Context, ref KeyRef) (KeyCheck, error) {
	rec, err := s.store.Key(ctx, ref)
	if err != nil {
		return KeyCheck{}, fmt.Errorf("KCV: %w", err)
	}
	if err := rec.Usable(s.now(), Distribute); err != nil {
		return KeyCheck{}, fmt.Errorf("KCV: %w", err)
	}
	l, err := s.load(rec)
	if err != nil {
		return KeyCheck{}, fmt.Errorf("KCV: %w", err)
	}
	return KeyCheck{Ref: rec.Ref(), KCV: l.kcv.String(), Method: l.kcv.Method}, nil
}

// FullCheckValue returns the 16 hex digits of a TDES key encrypting a block of
// zeros: the whole block whose first 6 digits are its KCV, as payShield's BU answers
// it with KCV type 0 (hsm serve answers BU so). UnionPay sign-ins carry its first 8
// digits (KeyResult.CheckValue4). An AES key has none (ErrInput).
func (s *Software) FullCheckValue(ctx context.Context, ref KeyRef) (string, error) {
	rec, err := s.store.Key(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("check value: %w", err)
	}
	if err := rec.Usable(s.now(), Distribute); err != nil {
		return "", fmt.Errorf("check value: %w", err)
	}
	if rec.Algorithm.IsAES() {
		return "", fmt.Errorf("check value of %s: %w: an AES key has no 16-digit TDES check value", rec.Ref(), ErrInput)
	}
	l, err := s.load(rec)
	if err != nil {
		return "", fmt.Errorf("check value: %w", err)
	}
	if l.check16 == "" {
		return "", fmt.Errorf("check value of %s: %w: not a TDES key", rec.Ref(), ErrInput)
	}
	return l.check16, nil
}

// GenerateRetries runs generate (one attempt at making and storing a new key
// version) up to ten times while it fails with ErrKeyExists: another writer stored
// the version number the attempt had taken. Each attempt makes a key of its own, so
// the retried version is never the key of the version that won. An attempt loses
// only to another's success, so up to ten writers of one ID at once all succeed.
func GenerateRetries(ctx context.Context, req GenerateKeyRequest, generate func(context.Context, GenerateKeyRequest) (KeyResult, error)) (KeyResult, error) {
	for attempt := 1; ; attempt++ {
		res, err := generate(ctx, req)
		if err == nil || attempt == 10 || !errors.Is(err, ErrKeyExists) {
			return res, err
		}
	}
}
