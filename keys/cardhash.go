package keys

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/switchyard/switchyard/hsm/tr31"
	"github.com/switchyard/switchyard/internal/sym"
)

// The card hash key keys the HMAC that stands for PANs (the card hash) and, through
// derived keys, seals the webhook secrets, the stand-in PANs and the apps' download
// token key. It is not a key of the key store: the switch computes card hashes in its
// own memory on every transaction, so it needs the clear key there, and it never
// changes (a new one would change every card hash in the journal, the lists and the
// profiles). At rest it is a TR-31 version D key block under the LMK, like the keys
// of the store: an HMAC key (usage M7, algorithm H), generate only, not exportable,
// labelled "card-hash-key" (security.card_hash_key_block). Before 5 December 2026 it
// could only be given in the clear (security.card_hash_key_hex or _file), which the
// switch still accepts with a warning at start.

// CardHashKeyLabel is the LB optional block of the card hash key's LMK block: it says
// what the block is for, so that no other HMAC key's block is taken for it.
const CardHashKeyLabel = "card-hash-key"

// The card hash key's lengths: at least 16 bytes (the configuration's rule), at most
// 64 (the HMAC-SHA256 block size, and TR-31's limit for algorithm H).
const (
	MinCardHashKey = 16
	MaxCardHashKey = 64
)

// CardHashKeyKCV returns the check value of a card hash key: the first 3 bytes of
// HMAC-SHA256 under the key of 32 zero bytes, as 6 upper-case hex digits (TR-31 and
// X9.24 define no check value for HMAC keys; this one is the switch's own). A card
// hash is the HMAC of a PAN, never of 32 zero bytes.
func CardHashKeyKCV(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(make([]byte, 32))
	return strings.ToUpper(hex.EncodeToString(m.Sum(nil)[:3]))
}

// WrapCardHashKey returns the card hash key as a TR-31 version D block under the LMK
// (the form of security.card_hash_key_block). The payload padding comes from rnd
// (nil: crypto/rand), so two blocks of one key differ and both open.
func WrapCardHashKey(lmk, key []byte, rnd io.Reader) (string, error) {
	if len(key) < MinCardHashKey || len(key) > MaxCardHashKey {
		return "", fmt.Errorf("card hash key: %d bytes, want %d to %d", len(key), MinCardHashKey, MaxCardHashKey)
	}
	h := tr31.Header{Version: tr31.VersionD, Usage: tr31.UsageHMAC, Algorithm: tr31.AlgHMAC, ModeOfUse: tr31.ModeGenerate,
		KeyVersion: "00", Exportability: tr31.ExportNone, Blocks: []tr31.OptionalBlock{{ID: "LB", Data: CardHashKeyLabel}}}
	block, err := tr31.Wrap(lmk, h, key, rnd)
	if err != nil {
		return "", fmt.Errorf("card hash key: wrap under the LMK: %w", err)
	}
	return block, nil
}

// UnwrapCardHashKey opens a card hash key block under the LMK and checks that its
// authenticated header is that of WrapCardHashKey. The caller wipes the key.
func UnwrapCardHashKey(lmk []byte, block string) ([]byte, error) {
	h, key, err := tr31.Unwrap(lmk, strings.TrimSpace(block))
	if err != nil {
		return nil, fmt.Errorf("card hash key block: does not open under this LMK (a block made under another LMK, or damaged): %w", err)
	}
	lb, _ := h.Block("LB")
	if h.Version != tr31.VersionD || h.Usage != tr31.UsageHMAC || h.Algorithm != tr31.AlgHMAC || lb != CardHashKeyLabel {
		sym.Wipe(key)
		return nil, fmt.Errorf("card hash key block: the block is version %c usage %s algorithm %c labelled %q, not a card hash key (version D, usage %s, algorithm %c, label %q)",
			h.Version, h.Usage, h.Algorithm, lb, tr31.UsageHMAC, tr31.AlgHMAC, CardHashKeyLabel)
	}
	if len(key) < MinCardHashKey || len(key) > MaxCardHashKey {
		sym.Wipe(key)
		return nil, fmt.Errorf("card hash key block: the key is %d bytes, want %d to %d", len(key), MinCardHashKey, MaxCardHashKey)
	}
	return key, nil
}

// CardHashKeyBlock is the answer of POST /api/v1/keys/card-hash-key/export: the
// card hash key the switch runs with, under its LMK.
type CardHashKeyBlock struct {
	// Source is where the running switch took the key from: the configuration key
	// that held it (security.card_hash_key_hex, _file or _block).
	Source string `json:"source"`
	KCV    string `json:"kcv"`   // CardHashKeyKCV of the key
	Block  string `json:"block"` // the key under the LMK, for security.card_hash_key_block
}
