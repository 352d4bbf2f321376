package server

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/config"
)

// cardHashKey is what the switch knows of its card hash key besides the key itself:
// where it came from, its check value, and its TR-31 block under the LMK (the
// configured block, or the clear key wrapped at start; "" with a payShield, which
// leaves the switch no LMK, with noBlock saying why).
type cardHashKey struct {
	source, kcv, block, noBlock string
}

// openCardHashKey returns the card hash key (keys.CardHashKeyLabel's doc): opened
// under lmk from security.card_hash_key_block, or taken in the clear from
// security.card_hash_key_hex or _file, which it warns of outside demo mode (keys at
// rest belong under the LMK). With the software HSM (lmk not nil) it keeps the key's
// LMK block for POST /api/v1/keys/card-hash-key/export: an operator moves a clear key
// under the LMK by putting that block in the configuration. The caller wipes lmk.
func (s *Server) openCardHashKey(lmk []byte) ([]byte, error) {
	cfg := s.cfg
	src := cfg.CardHashKeySource()
	if b := strings.TrimSpace(cfg.Security.CardHashKeyBlock); b != "" {
		key, err := OpenCardHashKeyBlock(cfg, lmk)
		if err != nil {
			return nil, err
		}
		s.cardHash = cardHashKey{source: src, kcv: keys.CardHashKeyKCV(key), block: b}
		s.log.Info().Str("source", src).Str("kcv", s.cardHash.kcv).Msg("card hash key opened under the LMK")
		return key, nil
	}
	key, err := cfg.CardHashKey()
	if err != nil {
		return nil, err
	}
	s.cardHash = cardHashKey{source: src, kcv: keys.CardHashKeyKCV(key)}
	switch {
	case lmk == nil:
		s.cardHash.noBlock = "with hsm.backend payshield the switch holds no LMK to keep the card hash key under"
	case len(key) > keys.MaxCardHashKey:
		s.cardHash.noBlock = fmt.Sprintf("the card hash key is %d bytes; its TR-31 block holds at most %d", len(key), keys.MaxCardHashKey)
	default:
		if s.cardHash.block, err = keys.WrapCardHashKey(lmk, key, nil); err != nil {
			clear(key)
			return nil, err
		}
	}
	if !cfg.Demo {
		next := "take its block under the LMK with `switchyard keys card-hash-key`, put it in security.card_hash_key_block and remove the clear key (README, Keys)"
		if s.cardHash.noBlock != "" {
			next = s.cardHash.noBlock + ": keep it in a file of mode 600 (docs/hsm.md)"
		}
		s.log.Warn().Str("source", src).Str("kcv", s.cardHash.kcv).
			Msg("the card hash key is in the clear in the configuration, where keys at rest belong under the LMK (PCI DSS 3.5): " + next)
	}
	return key, nil
}

// OpenCardHashKeyBlock opens cfg's security.card_hash_key_block under lmk (nil
// with a payShield, which leaves the switch no LMK) as the start does, and refuses
// the public demo card hash key outside demo mode; the errors name the key. The
// start and `switchyard config check` share it, so that the check refuses the
// blocks the start refuses. The caller wipes the key it returns, and lmk.
func OpenCardHashKeyBlock(cfg *config.Config, lmk []byte) ([]byte, error) {
	src := cfg.CardHashKeySource()
	if lmk == nil {
		return nil, fmt.Errorf("%s: needs the software HSM's LMK (hsm.backend software)", src)
	}
	key, err := keys.UnwrapCardHashKey(lmk, strings.TrimSpace(cfg.Security.CardHashKeyBlock))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	if demo, _ := hex.DecodeString(config.DemoCardHashKey); !cfg.Demo && subtle.ConstantTimeCompare(key, demo) == 1 {
		clear(key)
		return nil, fmt.Errorf("%s: %w: it holds the public demo card hash key; refusing outside demo mode", src, hsm.ErrDemoKey)
	}
	return key, nil
}

// exportCardHashKey answers POST /api/v1/keys/card-hash-key/export: the card hash
// key under the LMK, audited in the key store as an export by the actor in ctx.
func (s *Server) exportCardHashKey(ctx context.Context) (any, error) {
	c := s.cardHash
	if c.block == "" {
		return nil, api.WithStatus(http.StatusConflict, errors.New(c.noBlock))
	}
	ev := hsm.AuditEvent{Actor: hsm.ActorFrom(ctx), Action: "export", KeyID: keys.CardHashKeyLabel, KCV: c.kcv,
		Detail: fmt.Sprintf("the card hash key (from %s) under the LMK as a TR-31 block", c.source)}
	if err := s.Keys.Audit(ctx, ev); err != nil {
		return nil, fmt.Errorf("card hash key: audit: %w", err)
	}
	s.log.Info().Str("actor", ev.Actor).Str("kcv", c.kcv).Msg("card hash key exported under the LMK")
	return keys.CardHashKeyBlock{Source: c.source, KCV: c.kcv, Block: c.block}, nil
}
