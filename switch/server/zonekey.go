package server

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/message"
)

// ZoneKeyChange is the answer of POST /api/v1/issuers/{id}/key-change.
type ZoneKeyChange struct {
	Issuer  string     `json:"issuer"`
	ZPK     hsm.KeyRef `json:"zpk"`
	KCV     string     `json:"kcv"`
	GraceTo time.Time  `json:"previous_valid_until"`
}

// zoneKeyChange gives an issuer a new zone PIN key: a new version of its ZPK is
// generated in the HSM, sent under the ZMK in an 0800 with DE 70 = 161 (DE 48 WP =
// HEXKEY:KCV), and used for PIN translation once the issuer acknowledged it; the
// previous version stays valid for the grace period.
func (s *Server) zoneKeyChange(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	link, ok := s.links[id]
	if !ok {
		admin.WriteError(w, http.StatusNotFound, fmt.Errorf("no issuer %q", id))
		return
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
	p, _ := admin.PrincipalFrom(r.Context())
	ctx := hsm.WithActor(r.Context(), p.Name)
	grace := s.cfg.Security.KeyGrace.D()
	res, err := s.HSM.GenerateKey(ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: zpk, Type: hsm.ZPK, Owner: id, Grace: grace},
		Export: &hsm.ExportSpec{KEK: hsm.KeyRef{ID: zmk}, Format: hsm.ExportECB}})
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, hsm.ErrKeyNotFound) {
			status = http.StatusConflict
		}
		admin.WriteError(w, status, fmt.Errorf("new ZPK for %s: %w", id, err))
		return
	}
	m := iso8583.NewMessage(message.SpecASCII)
	m.MTI("0800")
	_ = m.Field(7, message.FormatDE7(time.Now()))
	_ = m.Field(11, link.NextSTAN())
	_ = m.Field(70, message.NMKeyChange)
	de48, _ := message.AppendTLV(nil, message.TagPINKey, res.Exported)
	_ = m.Field(48, string(de48))
	resp, err := link.Send(r.Context(), m, 10*time.Second)
	if err != nil {
		admin.WriteError(w, http.StatusBadGateway, fmt.Errorf("issuer %s did not take the new key (the switch uses it already; the previous stays valid for %s): %w", id, grace, err))
		return
	}
	if rc, _ := resp.GetString(39); rc != message.RCApproved {
		admin.WriteError(w, http.StatusBadGateway, fmt.Errorf("issuer %s refused the new key with %s (the previous stays valid for %s)", id, rc, grace))
		return
	}
	s.log.Info().Str("issuer", id).Str("kcv", res.KCV).Int("version", res.Ref.Version).Str("by", p.Name).Msg("zone PIN key changed")
	admin.WriteJSON(w, http.StatusOK, ZoneKeyChange{Issuer: id, ZPK: res.Ref, KCV: res.KCV, GraceTo: time.Now().Add(grace).UTC()})
}
