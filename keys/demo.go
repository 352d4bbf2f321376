package keys

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
)

// DemoIssuer is the issuer ID of the built-in demo issuer zone.
const DemoIssuer = "demo"

// DemoKey is one public test key of the demo fleet (docs: shared/spec/demo-fleet.md).
type DemoKey struct {
	ID           string           // key ID in the store
	Type         hsm.KeyType      // key type
	MACAlgorithm hsm.MACAlgorithm // TAK only
	Owner        string           // terminal ID, issuer ID, or KSN prefix for the BDK
	Hex          string           // the clear key (public!)
	KCV          string           // its KCV (TDES method), for recognising it
}

// The demo fleet's keys, all double-length TDES. The terminal keys, TAK and BDK are
// those of the demo fleet spec; the issuer zone keys (issuer "demo") were chosen for
// Switchyard and are public too:
//
//	demo.ZMK  9BB091DF6B6162D3947AA46EDCFB312A  KCV 384BF4
//	demo.ZPK  0DCE67517CFD3467CD514FFD137AEA20  KCV 782780
//	demo.CVK  B0A71C200275EC8604A8CD235D2CEFAB  KCV 427655 (CVK A | CVK B)
//
// The TPKs and TAK of the terminals are stored as if delivered under their TMK; the
// load terminals LT000001..LT002000 share the TPK LT.TPK and the TMK LT.TMK (the
// same public values as T0000001's initial ones: see DemoKeyFor), under which a cup
// sign-in sends their own working keys. LT.TPK is a key of its own, so that
// T0000001's key changes and sign-ins, which move T0000001.TPK, leave the load
// terminals' PINs alone.
var DemoKeys = []DemoKey{
	{ID: "T0000001.TMK", Type: hsm.TMK, Owner: "T0000001", Hex: "2315208C9110AD40F5B83C4A6E1D7F92", KCV: "43B6DA"},
	{ID: "T0000001.TPK", Type: hsm.TPK, Owner: "T0000001", Hex: "C1D0F8FB4958670DBA40AB1F3752EF0D", KCV: "2DAF03"},
	{ID: "T0000003.TMK", Type: hsm.TMK, Owner: "T0000003", Hex: "2315208C9110AD40F5B83C4A6E1D7F92", KCV: "43B6DA"},
	{ID: "T0000003.TPK", Type: hsm.TPK, Owner: "T0000003", Hex: "C1D0F8FB4958670DBA40AB1F3752EF0D", KCV: "2DAF03"},
	{ID: "T0000009.TMK", Type: hsm.TMK, Owner: "T0000009", Hex: "2315208C9110AD40F5B83C4A6E1D7F92", KCV: "43B6DA"},
	{ID: "T0000009.TPK", Type: hsm.TPK, Owner: "T0000009", Hex: "C1D0F8FB4958670DBA40AB1F3752EF0D", KCV: "2DAF03"},
	// The load terminals' TMK (the same public value as T0000001's), for the
	// UnionPay-style sign-in of the bench's cup share.
	{ID: "LT.TMK", Type: hsm.TMK, Owner: "LT", Hex: "2315208C9110AD40F5B83C4A6E1D7F92", KCV: "43B6DA"},
	{ID: "LT.TPK", Type: hsm.TPK, Owner: "LT", Hex: "C1D0F8FB4958670DBA40AB1F3752EF0D", KCV: "2DAF03"},
	{ID: "T0000002.TAK", Type: hsm.TAK, MACAlgorithm: hsm.MACRetail, Owner: "T0000002", Hex: "404142434445464748494A4B4C4D4E4F", KCV: "8BAF47"},
	{ID: "BDK.FFFF9876543210E", Type: hsm.BDK, Owner: "FFFF9876543210E", Hex: "0123456789ABCDEFFEDCBA9876543210", KCV: "08D7B4"},
	{ID: DemoIssuer + ".ZMK", Type: hsm.ZMK, Owner: DemoIssuer, Hex: "9BB091DF6B6162D3947AA46EDCFB312A", KCV: "384BF4"},
	{ID: DemoIssuer + ".ZPK", Type: hsm.ZPK, Owner: DemoIssuer, Hex: "0DCE67517CFD3467CD514FFD137AEA20", KCV: "782780"},
	{ID: DemoIssuer + ".CVK", Type: hsm.CVK, Owner: DemoIssuer, Hex: "B0A71C200275EC8604A8CD235D2CEFAB", KCV: "427655"},
}

var demoByKCV = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	for _, k := range DemoKeys {
		if m[k.KCV] == "" {
			m[k.KCV] = k.ID
		} else if !strings.Contains(m[k.KCV], k.ID) {
			m[k.KCV] += ", " + k.ID
		}
	}
	return m
})

// DemoKeyByKCV reports whether kcv (6 hex digits, TDES method) is that of a public
// demo key, and names the key(s).
func DemoKeyByKCV(kcv string) (string, bool) {
	n, ok := demoByKCV()[strings.ToUpper(kcv)]
	return n, ok
}

// DemoKeyFor returns the demo key of type t that terminal uses: its own key
// ("T0000001.TPK"), or for the load terminals LT000001..LT002000 their shared
// LT.TPK (T0000001's initial value). It reports false when the terminal has no such demo key (T0000002's
// PINs are under DUKPT, found by KSN prefix).
func DemoKeyFor(terminal string, t hsm.KeyType) (hsm.KeyRef, bool) {
	if t == hsm.TPK && isLoadTerminal(terminal) {
		return hsm.KeyRef{ID: "LT.TPK"}, true
	}
	id := terminal + "." + string(t)
	for _, k := range DemoKeys {
		if k.ID == id {
			return hsm.KeyRef{ID: id}, true
		}
	}
	return hsm.KeyRef{}, false
}

func isLoadTerminal(id string) bool {
	if len(id) != 8 || !strings.HasPrefix(id, "LT") {
		return false
	}
	n := 0
	for _, c := range id[2:] {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= 2000
}

// LoadDemo loads the demo keys into store through h, each formed from two random
// components whose XOR is the demo key. Keys already present are checked (their
// first version's KCV must be the demo KCV) and left alone, rotated ones included,
// so LoadDemo is idempotent and demo mode restarts on its own data. It refuses a
// store that is not in demo mode.
func LoadDemo(ctx context.Context, store *Store, h hsm.HSM) error {
	if !store.Demo() {
		return fmt.Errorf("load demo keys: %w: the key store is not in demo mode", hsm.ErrDemoKey)
	}
	ctx = hsm.WithActor(ctx, "demo-loader")
	for _, d := range DemoKeys {
		// A key ID already in the store was loaded by an earlier start: its first
		// version must be the demo key. Later versions are the operator's (keys
		// rotate, a terminal's key change) and are left alone, as are its statuses.
		// Once rotated past its grace window, a working key's version 1 is destroyed
		// (see prunable), and nothing is left to check.
		vs, err := store.Versions(d.ID)
		if err == nil && len(vs) > 0 {
			if vs[0].Version == 1 && vs[0].KCV != d.KCV {
				return fmt.Errorf("load demo keys: %s version 1 is in the store with KCV %s, the demo key has KCV %s: this data directory was not made by demo mode; use a fresh one", d.ID, vs[0].KCV, d.KCV)
			}
			continue
		}
		if err != nil && !errors.Is(err, hsm.ErrKeyNotFound) {
			return fmt.Errorf("load demo keys: %s: %w", d.ID, err)
		}
		key, _ := hex.DecodeString(d.Hex)
		c1 := make([]byte, len(key))
		if _, err := rand.Read(c1); err != nil {
			return fmt.Errorf("load demo keys: %w", err)
		}
		c2 := make([]byte, len(key))
		for i := range c2 {
			c2[i] = key[i] ^ c1[i]
		}
		res, err := h.FormKey(ctx, hsm.FormKeyRequest{
			KeySpec:    hsm.KeySpec{ID: d.ID, Type: d.Type, Algorithm: hsm.TDES2KEY, MACAlgorithm: d.MACAlgorithm, Owner: d.Owner},
			Components: [][]byte{c1, c2},
			// The demo keys share public values (T0000001.TMK is LT.TMK, ...).
			AllowStoredValue: true,
		})
		clear(key)
		clear(c1)
		clear(c2)
		if err != nil {
			return fmt.Errorf("load demo keys: %s: %w", d.ID, err)
		}
		if res.KCV != d.KCV {
			return fmt.Errorf("load demo keys: %s formed with KCV %s, want %s", d.ID, res.KCV, d.KCV)
		}
	}
	return nil
}

// demoKCV computes the KCV of a demo key (used by tests to check the table).
func demoKCV(d DemoKey) string {
	b, _ := hex.DecodeString(d.Hex)
	k, _ := kcv.TDES(b)
	return k.String()
}
