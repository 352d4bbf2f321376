package server

import (
	"context"
	"errors"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/switch/registry"
)

// keyInfo tells the registry about a key of the key store, for the check of the key
// references of imported terminals. The key store opens after the registry; the
// registry asks only once the admin API serves.
func (s *Server) keyInfo(id string) (registry.KeyInfo, error) {
	if s.Keys == nil {
		return registry.KeyInfo{}, errors.New("the key store is not open")
	}
	rec, err := s.Keys.Key(context.Background(), hsm.KeyRef{ID: id})
	if err != nil {
		return registry.KeyInfo{}, err
	}
	return registry.KeyInfo{Type: string(rec.Type), Owner: rec.Owner}, nil
}
