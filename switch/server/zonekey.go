package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/hsm"
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
// ZPK is generated in the HSM, sent under the ZMK in an 0800 with DE 70 = 161 (DE 48
// WP = HEXKEY:KCV), and used for PIN translation once the issuer acknowledged it;
// the previous version stays valid for the grace period. Its errors carry the admin
// API's status (api.WithStatus): 404 no such issuer, 409 no ZMK, 502 the issuer did
// not take the key.
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
	res, err := s.HSM.GenerateKey(hctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: zpk, Type: hsm.ZPK, Owner: id, Grace: grace},
		Export: &hsm.ExportSpec{KEK: hsm.KeyRef{ID: zmk}, Format: hsm.ExportECB}})
	if err != nil {
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
	resp, err := link.Send(ctx, m, 10*time.Second)
	if err != nil {
		return nil, api.WithStatus(http.StatusBadGateway, fmt.Errorf("issuer %s did not take the new key (the switch uses it already; the previous stays valid for %s): %w", id, grace, err))
	}
	if rc, _ := resp.GetString(39); rc != message.RCApproved {
		return nil, api.WithStatus(http.StatusBadGateway, fmt.Errorf("issuer %s refused the new key with %s (the previous stays valid for %s)", id, rc, grace))
	}
	s.log.Info().Str("issuer", id).Str("kcv", res.KCV).Int("version", res.Ref.Version).Str("by", actor).Msg("zone PIN key changed")
	return &ZoneKeyChange{Issuer: id, ZPK: res.Ref, KCV: res.KCV, GraceTo: time.Now().Add(grace).UTC()}, nil
}
