package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/message"
)

// ZoneKeyChange is the answer of POST /api/v1/issuers/{id}/key-change.
type ZoneKeyChange struct {
	Issuer  string     `json:"issuer"`
	ZPK     hsm.KeyRef `json:"zpk"`
	KCV     string     `json:"kcv"`
	GraceTo time.Time  `json:"previous_valid_until"`
}

// ChangeZoneKey gives issuer id a new zone PIN key, as actor: a new version of its
// ZPK is generated in the HSM, pending (keys.PendingActivation: PINs are still
// translated under the current version), sent under the ZMK in an 0800 with DE 70 =
// 161 (DE 48 WP = HEXKEY:KCV), and activated for PIN translation only once the issuer
// acknowledged it (RC 00); the previous version stays valid for the grace period.
// When the issuer does not answer or refuses, the new version is revoked and PINs
// stay under the current one. Its errors carry the admin API's status
// (api.WithStatus): 404 no such issuer, 409 no ZMK, 502 the issuer did not take the
// key, 500 the key store failed.
//
// Until 8 December 2026 the new version was current as soon as it was generated:
// PINs went under a key the issuer did not have while it was asked, and for good
// (until a later change succeeded) when it did not answer or refused, every one
// declined 55 by the issuer (found by a trial).
func (s *Server) ChangeZoneKey(ctx context.Context, id, actor string) (*ZoneKeyChange, error) {
	link, ok := s.links[id]
	if !ok {
		return nil, api.WithStatus(http.StatusNotFound, fmt.Errorf("no issuer %q", id))
	}
	zpk, zmk := id+".ZPK", id+".ZMK"
	for _, ic := range s.cfg.Issuers {
		if ic.ID == id {
			if ic.ZPK != "" {
				zpk = ic.ZPK
			}
			if ic.ZMK != "" {
				zmk = ic.ZMK
			}
		}
	}
	hctx := hsm.WithActor(ctx, actor)
	grace := s.cfg.Security.KeyGrace.D()
	// Pending, and without a grace for the current version: Activate sets it.
	res, err := s.HSM.GenerateKey(hctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: zpk, Type: hsm.ZPK, Owner: id, ActivateAt: keys.PendingActivation},
		Export: &hsm.ExportSpec{KEK: hsm.KeyRef{ID: zmk}, Format: hsm.ExportECB}})
	if err != nil {
		if res.Ref.Version > 0 { // stored, not exported
			s.retireZoneKey(hctx, id, res.Ref, "its export under "+zmk+" failed")
		}
		status := http.StatusInternalServerError
		if errors.Is(err, hsm.ErrKeyNotFound) {
			status = http.StatusConflict
		}
		return nil, api.WithStatus(status, fmt.Errorf("new ZPK for %s: %w", id, err))
	}
	m := iso8583.NewMessage(message.SpecASCII)
	m.MTI("0800")
	_ = m.Field(7, message.FormatDE7(time.Now()))
	_ = m.Field(11, link.NextSTAN())
	_ = m.Field(70, message.NMKeyChange)
	de48, _ := message.AppendTLV(nil, message.TagPINKey, res.Exported)
	_ = m.Field(48, string(de48))
	// Not cut short by the caller (an admin request whose client went away, a
	// task stopped by a shutdown): the issuer may install the key whatever the
	// caller does, and the answer decides which key PINs go under.
	resp, err := link.Send(context.WithoutCancel(ctx), m, 10*time.Second)
	if err != nil {
		s.retireZoneKey(hctx, id, res.Ref, "the issuer did not answer the key change")
		return nil, api.WithStatus(http.StatusBadGateway, fmt.Errorf("issuer %s did not take the new key %s: no answer, so in doubt (the issuer may hold it); PINs stay under the current version and the new one is revoked: change the key again: %w", id, res.Ref, err))
	}
	if rc, _ := resp.GetString(39); rc != message.RCApproved {
		s.retireZoneKey(hctx, id, res.Ref, "the issuer refused the key change with "+rc)
		return nil, api.WithStatus(http.StatusBadGateway, fmt.Errorf("issuer %s refused the new key %s with %s (PINs stay under the current version, the new one is revoked)", id, res.Ref, rc))
	}
	rec, err := s.Keys.Activate(context.WithoutCancel(hctx), res.Ref, grace, "issuer "+id+" acknowledged the key change")
	if err != nil {
		// The issuer has the new key; PINs stay under the previous one, which it
		// keeps for its own grace period: a new change is needed before that ends.
		s.log.Error().Err(err).Str("issuer", id).Str("key", res.Ref.String()).Msg("ALERT: issuer took the new zone PIN key but the switch could not activate it; PINs stay under the previous version: change the key again")
		return nil, api.WithStatus(http.StatusInternalServerError, fmt.Errorf("issuer %s took the new key %s, but activating it failed (PINs stay under the previous version; change the key again): %w", id, res.Ref, err))
	}
	s.log.Info().Str("issuer", id).Str("kcv", res.KCV).Int("version", res.Ref.Version).Str("by", actor).Msg("zone PIN key changed")
	return &ZoneKeyChange{Issuer: id, ZPK: res.Ref, KCV: res.KCV, GraceTo: rec.ActivateAt.Add(grace).UTC()}, nil
}

// retireZoneKey revokes ref, a pending zone PIN key of issuer id that the issuer did
// not take (why), so that it is never activated; it logs a failure to, which leaves
// the version pending (never used either).
func (s *Server) retireZoneKey(ctx context.Context, id string, ref hsm.KeyRef, why string) {
	ctx = context.WithoutCancel(ctx) // a change cut short by its caller still revokes
	if _, err := s.Keys.SetStatus(ctx, ref, hsm.StatusRevoked, "zone key change with issuer "+id+" failed: "+why); err != nil {
		s.log.Error().Err(err).Str("issuer", id).Str("key", ref.String()).Msg("pending zone PIN key not revoked (it stays pending, never used)")
		return
	}
	s.log.Warn().Str("issuer", id).Str("key", ref.String()).Str("reason", why).Msg("zone PIN key change failed: the new version is revoked, PINs stay under the current one")
}
