package cup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/mac"
	"github.com/switchyard/switchyard/internal/sym"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// versionedHSM keeps every version of every key it makes, as the switch's key store
// does (shared by the nodes of a cluster): working keys are exported under one TMK,
// MACs are CUP ECB under the version asked for, or under the current one and then
// the older ones (their grace) when none is.
type versionedHSM struct {
	tmk  []byte
	mu   sync.Mutex
	keys map[string][][]byte
}

func (h *versionedHSM) version(id string) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.keys[id]) == 0 {
		return 0, hsm.ErrKeyNotFound
	}
	return len(h.keys[id]), nil
}

func (h *versionedHSM) GenerateKey(_ context.Context, r hsm.GenerateKeyRequest) (hsm.KeyResult, error) {
	key := make([]byte, 16)
	if _, err := rand.Read(key); err != nil {
		return hsm.KeyResult{}, err
	}
	if r.SingleLength {
		copy(key[8:], key[:8])
	}
	tmk, _ := sym.NewTDES(h.tmk)
	enc := make([]byte, 16)
	tmk.Encrypt(enc[:8], key[:8])
	tmk.Encrypt(enc[8:], key[8:])
	c, _ := sym.NewTDES(key)
	var z [8]byte
	c.Encrypt(z[:], z[:])
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.keys == nil {
		h.keys = map[string][][]byte{}
	}
	h.keys[r.ID] = append(h.keys[r.ID], key)
	return hsm.KeyResult{Ref: hsm.KeyRef{ID: r.ID, Version: len(h.keys[r.ID])}, CheckValue4: strings.ToUpper(hex.EncodeToString(z[:4])),
		Exported: strings.ToUpper(hex.EncodeToString(enc)) + ":000000"}, nil
}

func (h *versionedHSM) sum(ref hsm.KeyRef, v int, data []byte) ([]byte, error) {
	h.mu.Lock()
	vs := h.keys[ref.ID]
	h.mu.Unlock()
	if v < 1 || v > len(vs) {
		return nil, hsm.ErrKeyNotFound
	}
	c, err := sym.NewTDES(vs[v-1])
	if err != nil {
		return nil, err
	}
	return mac.CUPECB(nil, c, data), nil
}

func (h *versionedHSM) GenerateMAC(_ context.Context, r hsm.MACRequest) ([]byte, error) {
	v := r.Key.Version
	if v == 0 {
		v, _ = h.version(r.Key.ID)
	}
	return h.sum(r.Key, v, r.Data)
}

func (h *versionedHSM) VerifyMAC(_ context.Context, r hsm.MACRequest, m []byte) error {
	versions := []int{r.Key.Version}
	if r.Key.Version == 0 {
		cur, err := h.version(r.Key.ID)
		if err != nil {
			return err
		}
		versions = nil
		for v := cur; v >= 1; v-- {
			versions = append(versions, v)
		}
	}
	for _, v := range versions {
		s, err := h.sum(r.Key, v, r.Data)
		if err != nil {
			return err
		}
		if mac.Equal(s, m) {
			return nil
		}
	}
	return hsm.ErrMACMismatch
}

func (h *versionedHSM) DecryptData(context.Context, hsm.KeyRef, []byte) ([]byte, error) {
	return nil, errors.New("not in this test")
}

func (h *versionedHSM) TranslatePIN(context.Context, hsm.TranslatePINRequest) ([]byte, error) {
	return nil, errors.New("not in this test")
}

// TestSignedInOnAnotherNode: two switches share the key store, each with its own
// sessions (the nodes of a cluster). The terminal signs in on the first, then on the
// second, which makes new working keys. Its next sale reaches the first, whose
// session still names the MAK version of the first sign-in: the MAC verifies under
// the current version, the one the terminal holds, so the answer carries F64 and asks
// nothing. (It was taken for a MAC under a previous version: the answer went without
// F64, which a terminal takes for a MAC failure and reverses the sale, and asked for
// yet another sign-in, which made the other node's session stale in turn.)
func TestSignedInOnAnotherNode(t *testing.T) {
	tmk, _ := hex.DecodeString("2315208C9110AD40F5B83C4A6E1D7F92")
	h := &versionedHSM{tmk: tmk}
	now := func() time.Time { return time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC) }
	node := func() *Adapter {
		// SingleLengthMAC: the terminal signs in with scheme 003 (an 8-byte MAK).
		return NewAdapter(Config{HSM: h, Terminals: fakeTerminals{}, KeyVersion: h.version, Now: now, SingleLengthMAC: true}, &fakePipeline{})
	}
	nodeA, nodeB := node(), node()
	term := &Terminal{TID: "T0000001", MID: "000000000000001", TMK: tmk, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	exchange := func(a *Adapter, f *Frame, macf MACFunc) (*Frame, []byte) {
		t.Helper()
		body, err := f.Encode(macf)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := a.Process(context.Background(), conn, body)
		if err != nil {
			t.Fatal(err)
		}
		ans, err := Decode(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return ans, resp.Body
	}
	signIn := func(a *Adapter) {
		t.Helper()
		f := NewFrame(term.TPDU, term.Header, "0800").Set(11, term.NextSTAN()).Set(41, term.TID).Set(42, term.MID).Set(60, "00"+term.batch+"003")
		ans, _ := exchange(a, f, nil)
		if ans.Str(39) != "00" {
			t.Fatalf("sign-in: %s", Summary(ans))
		}
		if err := term.installKeys("003", ans.Bytes(62)); err != nil {
			t.Fatal(err)
		}
	}
	sale := func(a *Adapter) *Frame {
		t.Helper()
		f, err := term.Build(Txn{Kind: "sale", PAN: "4761739001010119", Expiry: "2912", Amount: 100})
		if err != nil {
			t.Fatal(err)
		}
		ans, raw := exchange(a, f, term.MACOf)
		if ans.Has(64) && string(term.mustMAC(t, MACInput(raw, ans))) != string(ans.Bytes(64)) {
			t.Fatalf("the answer's MAC does not verify under the terminal's MAK")
		}
		return ans
	}
	signIn(nodeA)
	if ans := sale(nodeA); !ans.Has(64) || ans.Header.ProcessingRequirement() != ReqNone {
		t.Fatalf("sale on the node of the sign-in: %s, F64 %v", Summary(ans), ans.Has(64))
	}
	firstMAK := term.mak
	signIn(nodeB)
	ans := sale(nodeA)
	if !ans.Has(64) || ans.Header.ProcessingRequirement() != ReqNone {
		t.Errorf("sale on the first node after a sign-in on the second: %s, F64 %v; want F64 and no request to sign in", Summary(ans), ans.Has(64))
	}
	// A terminal that still holds the MAK of the first sign-in (it missed the
	// second's answer) is in its grace on either node: answered without F64, asked
	// to sign in again.
	term.mak = firstMAK
	for name, a := range map[string]*Adapter{"first": nodeA, "second": nodeB} {
		if ans := sale(a); ans.Has(64) || ans.Header.ProcessingRequirement() != ReqSignIn {
			t.Errorf("sale under the previous MAK on the %s node: %s, F64 %v; want no F64 and a request to sign in", name, Summary(ans), ans.Has(64))
		}
	}
}
