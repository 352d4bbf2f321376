package payshield

import (
	"context"
	"fmt"
	"sync"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/tr31"
	"github.com/switchyard/switchyard/internal/sym"
)

// The server runs the software HSM on the tokens each command carries. The software
// HSM reads keys by handle from a KeyStore; tokenStore is that store, holding only
// the keys of the command in progress (carried in the context), so that the server
// keeps no key state of its own: like a payShield, it knows only its LMK.

type sessionKey struct{}

// session is the key material of one command.
type session struct {
	keys    map[hsm.KeyRef]hsm.KeyRecord
	bdk     *hsm.KeyRecord
	next    int         // the version a key created by this command gets
	nextT   hsm.KeyType // and its type
	created *hsm.KeyRecord
	macAlg  hsm.MACAlgorithm // a variant TAK/ZAK's MAC algorithm (M6/M8 say it)
}

func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	if s == nil {
		return &session{}
	}
	return s
}

type tokenStore struct{}

var _ hsm.KeyStore = tokenStore{}

func (tokenStore) Key(ctx context.Context, ref hsm.KeyRef) (hsm.KeyRecord, error) {
	if rec, ok := sessionFrom(ctx).keys[ref]; ok {
		return rec, nil
	}
	return hsm.KeyRecord{}, fmt.Errorf("%w: %s is not among the command's keys", hsm.ErrKeyNotFound, ref)
}

func (tokenStore) GraceVersions(context.Context, string) ([]hsm.KeyRecord, error) { return nil, nil }

func (tokenStore) BDKForKSN(ctx context.Context, ksn string) (hsm.KeyRecord, error) {
	if b := sessionFrom(ctx).bdk; b != nil {
		return *b, nil
	}
	return hsm.KeyRecord{}, fmt.Errorf("%w: no BDK in the command for KSN %s", hsm.ErrKeyNotFound, ksn)
}

func (tokenStore) NextVersion(ctx context.Context, id string) (int, hsm.KeyType, error) {
	s := sessionFrom(ctx)
	if s.next == 0 {
		return 0, "", fmt.Errorf("%w: the command creates no key", hsm.ErrInput)
	}
	return s.next, s.nextT, nil
}

// Put keeps the command's new key for the answer. It ignores req.Unique, as a
// payShield would: the check that an ECB import's value is not stored under another
// key ID is made by the client's key store, on the KCV the answer carries.
func (tokenStore) Put(ctx context.Context, req hsm.PutRequest) error {
	rec := req.Record
	sessionFrom(ctx).created = &rec
	return nil
}

// Audit, DUKPT counters and the LMK binding are the switch's: its key store records
// them (the client calls it), as with a hardware HSM.
func (tokenStore) Audit(context.Context, hsm.AuditEvent) error               { return nil }
func (tokenStore) AdvanceDUKPTCounter(context.Context, string, uint32) error { return nil }
func (tokenStore) CheckDUKPTCounter(context.Context, string, uint32) error   { return nil }
func (tokenStore) BindLMK(context.Context, string) error                     { return nil }

// records turns tokens into key records, caching them: a token is unwrapped under
// the LMK once to learn its key's length and check value.
type records struct {
	lmk []byte
	mu  sync.Mutex
	m   map[string]hsm.KeyRecord
}

const maxRecords = 10000

// record returns the key record of a token, which must be "S" and a TR-31 version D
// key block under the LMK labelled with its key ID, version and type.
func (r *records) record(tok string) (hsm.KeyRecord, error) {
	r.mu.Lock()
	rec, ok := r.m[tok]
	r.mu.Unlock()
	if ok {
		return rec, nil
	}
	if len(tok) < 2 || tok[0] != 'S' {
		return rec, fmt.Errorf("%w: key scheme of %s: hsm serve holds a key-block LMK and takes S tokens only", errScheme, tokenShape(tok))
	}
	block := tok[1:]
	h, key, err := tr31.Unwrap(r.lmk, block)
	if err != nil {
		return rec, fmt.Errorf("key block under the LMK: %w", err)
	}
	defer sym.Wipe(key)
	lb, _ := h.Block("LB")
	id, version, t, err := parseLabel(lb)
	if err != nil {
		return rec, err
	}
	var alg hsm.Algorithm
	switch {
	case h.Algorithm == tr31.AlgTDES && len(key) == 16:
		alg = hsm.TDES2KEY
	case h.Algorithm == tr31.AlgTDES && len(key) == 24:
		alg = hsm.TDES3KEY
	case h.Algorithm == tr31.AlgAES && len(key) == 16:
		alg = hsm.AES128
	case h.Algorithm == tr31.AlgAES && len(key) == 24:
		alg = hsm.AES192
	case h.Algorithm == tr31.AlgAES && len(key) == 32:
		alg = hsm.AES256
	default:
		return rec, fmt.Errorf("%w: key block of algorithm %c holds a %d-byte key", hsm.ErrInput, h.Algorithm, len(key))
	}
	var macAlg hsm.MACAlgorithm
	if t == hsm.TAK || t == hsm.ZAK {
		macAlg = hsm.MACRetail
		if h.Usage == tr31.UsageMACCMAC {
			macAlg = hsm.MACCMAC
		}
	}
	k, err := kcv.Compute(key, alg.KCVMethod())
	if err != nil {
		return rec, err
	}
	rec = hsm.KeyRecord{ID: id, Version: version, Type: t, Algorithm: alg, MACAlgorithm: macAlg, KCV: k.String(), KCVMethod: k.Method,
		Status: hsm.StatusActive, Block: block}
	r.mu.Lock()
	if len(r.m) >= maxRecords {
		clear(r.m)
	}
	r.m[tok] = rec
	r.mu.Unlock()
	return rec, nil
}
