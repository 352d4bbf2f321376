package hsm

import (
	"crypto/subtle"
	"fmt"
	"slices"

	"github.com/switchyard/switchyard/hsm/kcv"
)

// An ECB form (a key encrypted under a KEK, block by block) carries no key type, so
// whoever holds one key's ECB form can ask for it to be imported as another type.
// CheckECBImport keeps key-encrypting, derivation, card and data keys out of ECB
// imports; what is left is a swap among the working keys that may come in ECB: a
// TPK's value imported as a TAK makes MAC generation an encryption oracle under the
// PIN key (a retail MAC of one block is the TDES encryption of that block, so a
// chosen clear PIN block comes back enciphered under the TPK), and a ZAK's value
// imported as a ZPK turns PIN translation into a decryption under a MAC key. Thales
// and Atalla HSMs close this with key variants or key blocks; a key manager on top of
// an ECB exchange closes it by refusing a key value it already holds under another
// name, which is what UniqueValue asks of the key store: an ECB import is refused
// when its value is stored, in any version and any status, under another key ID,
// whatever that key's type. Versions of the ID being imported are exempt (the same
// key re-sent, or re-imported as a new version, is still one key with one type).
//
// A key formed from clear components (FormKey) is checked the same way, since 8
// December 2026: components carry no key type either, and the same components
// entered again formed the same key value under another ID and type (a ZMK that was
// also a TAK and a TPK: MAC generation under the TAK enciphers under the ZMK). The
// public demo keys, which share values (keys.DemoKeys), are formed with
// FormKeyRequest.AllowStoredValue. A TR-31 import is not checked: its block binds
// the key's usage, and one key may legitimately come as blocks under two IDs (a key
// sent to two zones).
//
// The check is on values the key store holds. A key the switch exported in ECB form
// and later destroyed (a terminal's working key past its grace window) is no longer
// found, but it no longer serves anything here either: a MAC key made of a dead PIN
// key's value enciphers PIN blocks that no key of the switch decrypts.

// UniqueValue asks the key store (PutRequest.Unique) to refuse a new key version
// whose value is already stored under another key ID. The store makes the check in
// the same write as the Put (and, in a cluster, against every change ordered before
// it), so that two imports of one value at once cannot both pass.
type UniqueValue struct {
	// KCVs are the check values of the new key's value under each method it can be
	// read with: its own, and for a 16 or 24-byte value the other cipher family's
	// too (a TDES KCV and an AES CMAC KCV), so that the same bytes stored as a key
	// of the other family are found. Only records with one of these KCVs are
	// compared.
	KCVs []string
	// Same reports whether a stored record holds the new key's value (the software
	// HSM unwraps it under the LMK and compares in constant time). Nil means that a
	// matching KCV counts as the same value: an HSM that does not compare key values
	// for the switch (payShield) refuses a different key that shares a 6-digit KCV
	// too, about one import in 16.7 million per stored key version.
	Same func(KeyRecord) (bool, error)
	// Formed says the new key was formed from clear components (FormKey) rather
	// than imported from an ECB form: it words the error.
	Formed bool
}

// Matches reports whether a stored record's KCV is one of u's, so that it must be
// compared.
func (u *UniqueValue) Matches(rec KeyRecord) bool { return slices.Contains(u.KCVs, rec.KCV) }

// Clash compares the new record r with candidates (the stored versions of other key
// IDs for which Matches holds) and returns an error wrapping ErrPolicy naming the
// first that holds the same key value (its ID, never the value), or nil.
func (u *UniqueValue) Clash(r KeyRecord, candidates []KeyRecord) error {
	from, carries, verb, who := "from an ECB form", "an ECB form carries", "import", "the sender"
	if u.Formed {
		from, carries, verb, who = "formed from components", "components carry", "form", "the custodians"
	}
	for _, c := range candidates {
		if c.ID == r.ID || !u.Matches(c) {
			continue
		}
		if u.Same == nil {
			return fmt.Errorf("%w: %s (a %s %s) has KCV %s, that of %s, a %s: %s no key type, so one key value is never stored under two key IDs (this HSM compares check values, not values: a different key sharing the 6-digit KCV is refused too); ask %s for a new key",
				ErrPolicy, r.Ref(), r.Type, from, r.KCV, c.Ref(), c.Type, carries, who)
		}
		same, err := u.Same(c)
		if err != nil {
			return fmt.Errorf("%w: %s (a %s %s) has KCV %s, that of %s, and the two values could not be compared: %w", ErrPolicy, r.Ref(), r.Type, from, r.KCV, c.Ref(), err)
		}
		if same {
			return fmt.Errorf("%w: %s (a %s %s, KCV %s) is the key already stored as %s, a %s: %s no key type, so one key value is never stored under two key IDs, where it would serve two purposes or two owners; if it is that key, %s it as a new version of %s, otherwise ask %s for a new key",
				ErrPolicy, r.Ref(), r.Type, from, r.KCV, c.Ref(), c.Type, carries, verb, c.ID, who)
		}
	}
	return nil
}

// valueKCVs returns the check values of key under both cipher families where its
// length allows (UniqueValue.KCVs).
func valueKCVs(key []byte) []string {
	var out []string
	if n := len(key); n == 16 || n == 24 {
		if k, err := kcv.TDES(key); err == nil {
			out = append(out, k.String())
		}
	}
	if k, err := kcv.AES(key); err == nil {
		out = append(out, k.String())
	}
	return out
}

// sameKeyValue reports, in constant time for keys of one length, whether key a (of
// algorithm algA) and key b are the same key. Two TDES keys are compared as the
// cipher sees them: a double-length key K1|K2 is the triple-length K1|K2|K1, and the
// parity bits do not count (an ECB import can splice the halves of a double-length
// key's ECB form into a triple-length one, whose KCV is the same). Otherwise the
// bytes are compared.
func sameKeyValue(algA Algorithm, a []byte, algB Algorithm, b []byte) bool {
	if algA.IsAES() || algB.IsAES() {
		return subtle.ConstantTimeCompare(a, b) == 1
	}
	var x, y [24]byte
	defer clear(x[:])
	defer clear(y[:])
	if !tdesTriple(&x, a) || !tdesTriple(&y, b) {
		return false
	}
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1
}

// tdesTriple writes the triple-length form of a 16 or 24-byte TDES key without its
// parity bits to dst, and reports false for another length.
func tdesTriple(dst *[24]byte, k []byte) bool {
	switch len(k) {
	case 16:
		copy(dst[:], k)
		copy(dst[16:], k[:8])
	case 24:
		copy(dst[:], k)
	default:
		return false
	}
	for i := range dst {
		dst[i] &^= 1
	}
	return true
}
